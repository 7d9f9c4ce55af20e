"""Every study in the store, with keys to open, create, pause, resume and cancel."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from scoot.jobs.views import StudySummary, load_studies
from scoot.tui.commands import CONFIRM, run_command
from scoot.tui.context import Context, context

COLUMNS = ("study", "objectives", "engine", "GPU sets", "state", "done", "failed", "best")


class StudiesScreen(Screen[None]):
    """The first screen: one row per study, refreshed every second."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", id="studies.open", tooltip="open the study"),
        Binding(
            "n", "new", "New study", id="studies.new", tooltip="hand a study file to the workers"
        ),
        Binding("p", "pause", "Pause", id="studies.pause", tooltip="pause: running trials finish"),
        Binding("r", "resume", "Resume", id="studies.resume", tooltip="resume on the workers"),
        Binding(
            "c", "cancel", "Cancel", id="studies.cancel", tooltip="cancel; every result is kept"
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.summaries: list[StudySummary] = []

    @property
    def scoot(self) -> Context:
        return context(self)

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="studies", cursor_type="row", zebra_stripes=True)
        yield Static("", id="message", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#studies", DataTable)
        for name in COLUMNS:
            table.add_column(name, key=name)
        self.reload()
        self.set_interval(self.scoot.refresh_s, self.reload)

    @work(thread=True, exclusive=True, group="studies")
    def reload(self) -> None:
        if not self.scoot.has_store():
            self.app.call_from_thread(self.show, [])
            return
        store = self.scoot.open_store()
        try:
            summaries = load_studies(store)
        finally:
            store.close()
        self.app.call_from_thread(self.show, summaries)

    def show(self, summaries: list[StudySummary]) -> None:
        """Update rows in place (no clearing, so nothing flickers)."""
        self.summaries = summaries
        table = self.query_one("#studies", DataTable)
        seen = set()
        for s in summaries:
            key = str(s.id)
            seen.add(key)
            cells: list[str | Text] = [
                Text(s.name),  # data, never markup (a store may predate name checks)
                s.objectives,
                s.engine,
                s.gpu_sets,
                s.state,
                f"{s.done}/{s.budget}",
                str(s.failed),
                s.best,
            ]
            if key in table.rows:
                for col, value in zip(COLUMNS, cells, strict=True):
                    if table.get_cell(key, col) != value:
                        table.update_cell(key, col, value, update_width=True)
            else:
                table.add_row(*cells, key=key)
        for key in [k.value for k in table.rows if k.value is not None and k.value not in seen]:
            table.remove_row(key)
        if not summaries:
            self.say("no study yet: press n to create one from a study file")

    def say(self, text: str) -> None:
        self.query_one("#message", Static).update(text)

    def selected(self) -> StudySummary | None:
        table = self.query_one("#studies", DataTable)
        if not self.summaries or table.cursor_row < 0 or table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((s for s in self.summaries if str(s.id) == key), None)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        from scoot.tui.screens.study import StudyScreen

        s = self.selected()
        if s is not None:
            self.app.push_screen(StudyScreen(s.id, s.name))

    def action_new(self) -> None:
        from scoot.tui.screens.new_study import NewStudyScreen

        def done(message: str | None) -> None:
            if message:
                self.say(message)

        self.app.push_screen(NewStudyScreen(), callback=done)

    def action_pause(self) -> None:
        self.command("pause")

    def action_resume(self) -> None:
        self.command("resume")

    def action_cancel(self) -> None:
        self.command("cancel")

    def command(self, verb: str) -> None:
        s = self.selected()
        if s is None:
            return
        if verb in CONFIRM:
            from scoot.tui.screens.confirm import ConfirmScreen

            def answered(yes: bool | None) -> None:
                if yes:
                    self.send(s.id, s.name, verb)

            self.app.push_screen(ConfirmScreen(CONFIRM[verb].format(name=s.name)), answered)
            return
        self.send(s.id, s.name, verb)

    @work(thread=True, group="command")
    def send(self, study_id: int, name: str, verb: str) -> None:
        """Store writes and queue dispatches off the event loop; the message comes back."""
        message = run_command(self.scoot, study_id, name, verb)
        self.app.call_from_thread(self.say, message)
        self.app.call_from_thread(self.reload)
