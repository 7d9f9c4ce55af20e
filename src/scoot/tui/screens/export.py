"""Export a configuration: ``vllm serve`` line, ``--config`` YAML, ``docker run`` line, JSON."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static, TabbedContent, TabPane, TextArea

from scoot.jobs.store import TrialRow
from scoot.jobs.views import StudySpec, exports, write_exports


class ExportScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="export.close")
    ]

    def __init__(self, trial: TrialRow, spec: StudySpec, data_dir: Path) -> None:
        super().__init__()
        self.trial = trial
        self.spec = spec
        self.paths = write_exports(trial, spec, data_dir / "exports")

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box"):
            names = ", ".join(p.name for p in self.paths)
            yield Static(
                f"trial #{self.trial.number}: written to exports/ in the data directory "
                f"({names}); select text to copy",
                classes="title",
            )
            with TabbedContent():
                for name, (_, text) in exports(self.trial, self.spec).items():
                    with TabPane(name):
                        yield TextArea(text, read_only=True, soft_wrap=True)
        yield Footer()
