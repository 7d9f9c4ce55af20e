"""One trial: its full config, metrics with percentiles, the launch command, the log's tail."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from scoot.domain import Metrics
from scoot.jobs.store import TrialRow
from scoot.jobs.views import StudySpec, percentiles, value_text
from scoot.tui.context import context

LOG_LINES = 12


class TrialScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="trial.close"),
        Binding("e", "export", "Export", id="trial.export"),
    ]

    def __init__(self, trial: TrialRow, spec: StudySpec) -> None:
        super().__init__()
        self.trial = trial
        self.spec = spec

    def compose(self) -> ComposeResult:
        t = self.trial
        with VerticalScroll(id="trial-box"):
            yield Static(f"trial #{t.number} — {t.source} — {t.state_label}", classes="title")
            if t.stopped_early is not None:
                yield Static(f"stopped early: {t.stopped_early} (its latencies are bounds)")
            config = "\n".join(f"  {k} = {value_text(v)}" for k, v in t.config.as_dict().items())
            yield Static(f"config (GPU set {t.gpu_set or '-'}):\n{config}")
            if t.failure_message:
                yield Static(f"message: {t.failure_message}", classes="failure")
            table: DataTable[str] = DataTable(id="percentiles", show_cursor=False)
            yield table
            if t.metrics is not None:
                m = t.metrics
                yield Static(
                    f"{m.completed} completed, {m.failed} failed in {m.duration_s:.1f} s; "
                    f"{m.request_throughput:.2f} req/s, {m.output_throughput:.0f} tok/s out"
                )
                if m.rate_steps:
                    yield Static(rate_steps_text(m), id="rate-steps")
            yield Static(f"launch command:\n  {t.command or '-'}", id="command")
            yield Static(f"engine log ({t.log_path or '-'}), last lines:\n{self.log_tail()}")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#percentiles", DataTable)
        table.add_columns("metric", "mean", "p50", "p95", "p99")
        for row in percentiles(self.trial):
            table.add_row(*row)
        table.display = bool(table.row_count)

    def log_tail(self) -> str:
        if not self.trial.log_path:
            return "  (no log)"
        path = Path(self.trial.log_path)
        if not path.exists():
            return f"  (log {path} is gone)"
        lines = path.read_text(errors="replace").splitlines()[-LOG_LINES:]
        return "\n".join(f"  {line[:150]}" for line in lines) or "  (empty)"

    def action_export(self) -> None:
        from scoot.tui.screens.export import ExportScreen

        self.app.push_screen(ExportScreen(self.trial, self.spec, context(self).data_dir))


def rate_steps_text(m: Metrics) -> str:
    """A capacity trial's rate search, one line per step (issue 17: every step shown)."""
    lines = [f"capacity {m.capacity or 0:.3g} req/s; rate search, in the order run:"]
    lines += [f"  {rate:.3g} req/s -> SLO attainment {att:.1%}" for rate, att in m.rate_steps]
    return "\n".join(lines)
