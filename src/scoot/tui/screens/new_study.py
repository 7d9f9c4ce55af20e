"""Create a study from a study file and hand it to the workers."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from scoot.jobs import control
from scoot.jobs.store import StoreError
from scoot.stress.traces import TraceError, read_trace
from scoot.study import StudyError, load_study


class NewStudyScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Close", id="new.close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="new-box"):
            yield Static("New study: path of a study file (TOML), then Enter", classes="title")
            yield Input(placeholder="examples/p95_latency.toml", id="path")
            yield Static("", id="error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        path = Path(event.value.strip()).expanduser()
        try:
            spec = load_study(path)
            read_trace(spec.trace.file)
            app = self.app
            store = app.open_store()  # type: ignore[attr-defined]
            try:
                study, _ = store.open_study(spec.name, spec.to_json(), spec.source)
                from scoot.jobs.worker import Queue

                queue = Queue(app.queue_url, app.data_dir)  # type: ignore[attr-defined]
                queued = control.start(store, study.id, queue.enqueue)
            finally:
                store.close()
        except (StudyError, TraceError, StoreError, OSError) as exc:
            self.query_one("#error", Static).update(f"[red]{exc}[/]")
            return
        self.dismiss(f"study {spec.name} handed to the workers ({len(queued)} trials queued)")
