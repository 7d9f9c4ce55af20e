"""Two trials side by side: the flags that differ and each metric's change (issue 19)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from scoot.jobs.views import Comparison


class CompareScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="compare.close", tooltip="close"),
    ]

    def __init__(self, comparison: Comparison) -> None:
        super().__init__()
        self.comparison = comparison

    def compose(self) -> ComposeResult:
        c = self.comparison
        with VerticalScroll(id="compare-box"):
            yield Static(
                f"trial #{c.a.number} ({c.a.state_label}) vs trial #{c.b.number} "
                f"({c.b.state_label})",
                classes="title",
                markup=False,
            )
            if not c.flags:
                yield Static("the same flags (a re-test, or a retry)", markup=False)
            yield DataTable(id="compare-flags", show_cursor=False)
            if not c.metrics:
                yield Static("metrics: one of them has none (failed or not run)", markup=False)
            yield DataTable(id="compare-metrics", show_cursor=False)
        yield Footer()

    def on_mount(self) -> None:
        c = self.comparison
        flags = self.query_one("#compare-flags", DataTable)
        flags.add_columns("flag", f"#{c.a.number}", f"#{c.b.number}")
        for row in c.flags:
            flags.add_row(*row)
        flags.display = bool(c.flags)
        metrics = self.query_one("#compare-metrics", DataTable)
        metrics.add_columns("metric", f"#{c.a.number}", f"#{c.b.number}", "change")
        for name, a, b in c.metrics:
            change = f"{(b - a) / a:+.1%}" if a else "-"
            metrics.add_row(name, f"{a:.4g}", f"{b:.4g}", change)
        metrics.display = bool(c.metrics)
