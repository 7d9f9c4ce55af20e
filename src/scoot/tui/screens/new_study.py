"""Create a study from a study file and hand it to the workers."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from scoot.jobs import control
from scoot.jobs.store import StoreError
from scoot.tui.context import context


class NewStudyScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="new.close", tooltip="close")
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="new-box"):
            yield Static("New study: path of a study file (TOML), then Enter", classes="title")
            yield Input(placeholder="examples/p95_latency.toml", id="path")
            yield Static("", id="error", markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.submit(Path(event.value.strip()).expanduser())

    @work(thread=True, exclusive=True, group="submit")
    def submit(self, path: Path) -> None:
        """Reading the study's trace and writing the store happen off the event loop."""
        from scoot.jobs.worker import Queue

        ctx = context(self)
        store = ctx.open_store()
        try:
            name, queued = control.submit(store, path, Queue(ctx.queue_url, ctx.data_dir))
        except StoreError as exc:
            self.app.call_from_thread(self.query_one("#error", Static).update, str(exc))
            return
        finally:
            store.close()
        self.app.call_from_thread(
            self.dismiss, f"study {name} handed to the workers ({len(queued)} trials queued)"
        )
