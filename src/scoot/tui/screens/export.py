"""Export a configuration: ``vllm serve`` line, ``--config`` YAML, ``docker run`` line, JSON."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static, TabbedContent, TabPane, TextArea

from scoot.domain import TrialState
from scoot.jobs.store import TrialRow
from scoot.jobs.views import StudySpec, exports, write_exports


class ExportScreen(ModalScreen[None]):
    """Every deployable form of one trial's config; ``w`` writes them to ``exports/``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="export.close", tooltip="close"),
        Binding(
            "w", "write", "Write files", id="export.write", tooltip="write every form to exports/"
        ),
    ]

    def __init__(self, trial: TrialRow, spec: StudySpec, data_dir: Path) -> None:
        super().__init__()
        self.trial = trial
        self.spec = spec
        self.folder = data_dir / "exports"

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box"):
            yield Static(
                f"trial #{self.trial.number}: select text to copy; w writes every form to "
                "exports/ in the data directory",
                classes="title",
                id="export-title",
                markup=False,
            )
            if self.trial.state is not TrialState.COMPLETED:
                why = f" ({self.trial.failure_kind.value})" if self.trial.failure_kind else ""
                yield Static(
                    f"warning: trial #{self.trial.number} {self.trial.state.value}{why}: this "
                    "config was not measured serving the trace",
                    id="export-warning",
                    markup=False,
                )
            with TabbedContent():
                for name, (_, text) in exports(self.trial, self.spec).items():
                    with TabPane(name):
                        yield TextArea(text, read_only=True, soft_wrap=True)
        yield Footer()

    @work(thread=True, exclusive=True, group="export")
    def action_write(self) -> None:
        paths = write_exports(self.trial, self.spec, self.folder)
        names = ", ".join(p.name for p in paths)
        self.app.call_from_thread(
            self.query_one("#export-title", Static).update, f"written to {self.folder}: {names}"
        )
