"""One study, live: observations, objective plot, feasibility, GPU sets."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import (
    DataTable,
    Footer,
    Header,
    Input,
    Sparkline,
    Static,
    TabbedContent,
    TabPane,
)

from scoot.jobs.views import (
    METRIC_COLUMNS,
    StudyView,
    TrialView,
    compare,
    duration_text,
    load_study,
    metric_cells,
    value_text,
)
from scoot.tui.commands import CONFIRM, run_command
from scoot.tui.context import Context, context
from scoot.tui.widgets.panels import (
    FeasibilityPanel,
    GpuPanel,
    ObjectivePlot,
    WhyPanel,
    plot_caption,
)


class StudyScreen(Screen[None]):
    """Tabs keep it usable at 80x24; every tab is one key away."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="study.back", tooltip="back to the studies"),
        Binding("enter", "open", "Trial", id="study.open", show=False, tooltip="open the trial"),
        Binding("s", "sort", "Sort", id="study.sort", tooltip="sort by the next metric column"),
        Binding("slash", "filter", "Filter", id="study.filter", tooltip="filter the trials"),
        Binding("e", "export", "Export best", id="study.export", tooltip="export the winner"),
        Binding(
            "m", "mark", "Mark", id="study.mark", tooltip="mark a trial to compare with another"
        ),
        Binding(
            "d",
            "compare",
            "Compare",
            id="study.compare",
            tooltip="compare the marked trial with the one under the cursor",
        ),
        Binding("p", "pause", "Pause", id="study.pause", tooltip="pause: running trials finish"),
        Binding(
            "P",
            "pause_now",
            "Pause now",
            id="study.pause_now",
            show=False,
            tooltip="pause now: running trials are stopped",
        ),
        Binding("r", "resume", "Resume", id="study.resume", tooltip="resume on the workers"),
        Binding("c", "cancel", "Cancel", id="study.cancel", show=False, tooltip="cancel"),
        Binding(
            "1",
            "tab('trials')",
            "Trials",
            id="study.tab_trials",
            show=False,
            tooltip="show the trials table",
        ),
        Binding(
            "2",
            "tab('plot')",
            "Plot",
            id="study.tab_plot",
            show=False,
            tooltip="show the objective plot",
        ),
        Binding(
            "3",
            "tab('feasibility')",
            "Feasibility",
            id="study.tab_feas",
            show=False,
            tooltip="show feasibility: Delta, POF, failures, events",
        ),
        Binding(
            "4",
            "tab('gpus')",
            "GPU sets",
            id="study.tab_gpus",
            show=False,
            tooltip="show the GPU sets, workers and queue",
        ),
        Binding(
            "5",
            "tab('why')",
            "Why",
            id="study.tab_why",
            show=False,
            tooltip="show which flags matter and how",
        ),
    ]

    def __init__(self, study_id: int, name: str) -> None:
        super().__init__()
        self.study_id = study_id
        self.study_name = name
        self.view: StudyView | None = None
        self.sort_index = 0  # 0: by trial number; then each metric column
        self.filter_text = ""
        self.columns: list[str] = []
        self.marked: int | None = None
        """The trial number marked for a comparison (``m``), if any."""

    @property
    def scoot(self) -> Context:
        return context(self)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self.study_name, id="study-title", markup=False)
        yield Static("", id="decision", markup=False)
        with TabbedContent(initial="trials"):
            with TabPane("1 Trials", id="trials"):
                yield Input(placeholder="filter: text in any cell (Enter)", id="filter")
                yield Static("", id="flag-legend", markup=False)
                yield DataTable(id="trials-table", cursor_type="row", zebra_stripes=True)
            with TabPane("2 Plot", id="plot"):
                yield ObjectivePlot(id="objective-plot")
                yield Sparkline([], id="hv-spark")
                yield Static("", id="plot-caption", markup=False)
            with TabPane("3 Feasibility", id="feasibility"):
                yield FeasibilityPanel(id="feasibility-panel")
            with TabPane("4 GPU sets", id="gpus"):
                yield GpuPanel(id="gpu-panel")
            with TabPane("5 Why", id="why"), VerticalScroll(id="why-scroll"):
                yield WhyPanel(id="why-panel")
        yield Static("", id="message", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.reload()
        self.set_interval(self.scoot.refresh_s, self.reload)

    @work(thread=True, exclusive=True, group="study")
    def reload(self) -> None:
        store = self.scoot.open_store()
        try:
            view = load_study(store, self.study_id)
        finally:
            store.close()
        self.app.call_from_thread(self.show, view)

    def show(self, view: StudyView) -> None:
        self.view = view
        s = view.summary
        slo = ""
        if view.slo is not None:
            runs, values = view.slo
            shown = ", ".join(
                f"{o.value} {v:.4g}" for o, v in zip(view.spec.objectives, values, strict=True)
            )
            slo = f" | SLO over {runs} orders: {shown}"
        eta = f" | ETA {duration_text(view.eta_s)}" if view.eta_s is not None else ""
        self.query_one("#study-title", Static).update(
            f"{s.name} [{s.state}] {s.objectives} | {s.done}/{s.budget} done, {s.failed} failed"
            f"{eta} | best {s.best}{slo}"
        )
        self.query_one("#decision", Static).update(decision_text(view))
        self.query_one("#flag-legend", Static).update(flag_legend(view.params))
        self.fill_table(view)
        self.query_one(ObjectivePlot).view = view
        self.query_one("#plot-caption", Static).update(plot_caption(view))
        spark = self.query_one("#hv-spark", Sparkline)
        spark.data = [v for _, v in view.hypervolume]  # two objectives: its rise over trials
        spark.display = len(view.hypervolume) > 1
        self.query_one(FeasibilityPanel).view = view
        self.query_one(GpuPanel).view = view
        self.query_one(WhyPanel).view = view

    def rows(self, view: StudyView) -> list[tuple[str, list[str]]]:
        out = []
        for t in view.trials:
            row = t.row
            mark = ("*" if t.best else "") + ("◆" if t.on_front and not t.best else "")
            mark += "m" if row.number == self.marked else ""
            state = row.state.value + (f": {row.failure_kind.value}" if row.failure_kind else "")
            if row.stopped_early is not None:
                state = row.state_label
            # Metrics and state first: at 80 columns they must be on screen, flags after.
            cells = [f"{row.number}{mark}", *metric_cells(row), state, row.source[:18]]
            cells += [value_text(row.config.as_dict().get(p)) for p in view.params]
            out.append((str(row.id), cells))
        if self.filter_text:
            out = [r for r in out if any(self.filter_text in c.lower() for c in r[1])]
        if self.sort_index:
            col = self.sort_index

            def key(r: tuple[str, list[str]]) -> float:
                try:
                    return float(r[1][col])
                except ValueError:
                    return float("inf")

            out.sort(key=key)
        return out

    def fill_table(self, view: StudyView) -> None:
        """Update cells in place; rebuild only when the row order changes."""
        table = self.query_one("#trials-table", DataTable)
        if not self.columns:
            self.columns = ["#", *(label for label, _, _ in METRIC_COLUMNS), "state", "source"]
            self.columns += [short_name(p) for p in view.params]
            for i, name in enumerate(self.columns):
                table.add_column(name, key=str(i))
        rows = self.rows(view)
        order = [k for k, _ in rows]
        if order != [r.value for r in table.rows]:
            cursor = table.cursor_row
            table.clear()
            for key, cells in rows:
                table.add_row(*cells, key=key)
            if table.row_count:
                table.move_cursor(row=min(max(cursor, 0), table.row_count - 1))
            return
        for key, cells in rows:
            for i, value in enumerate(cells):
                if table.get_cell(key, str(i)) != value:
                    table.update_cell(key, str(i), value, update_width=True)

    def selected(self) -> TrialView | None:
        table = self.query_one("#trials-table", DataTable)
        if self.view is None or table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((t for t in self.view.trials if str(t.row.id) == key), None)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.filter_text = event.value.strip().lower()
        event.input.display = bool(self.filter_text)
        self.query_one("#trials-table", DataTable).focus()
        if self.view is not None:
            self.fill_table(self.view)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_open(self) -> None:
        from scoot.tui.screens.trial import TrialScreen

        t = self.selected()
        if t is not None and self.view is not None:
            self.app.push_screen(TrialScreen(t.row, self.view.spec))

    def action_mark(self) -> None:
        t = self.selected()
        if t is None:
            return
        self.marked = None if self.marked == t.number else t.number
        self.say(
            f"trial #{t.number} marked: move to another and press d to compare"
            if self.marked is not None
            else "mark cleared"
        )
        if self.view is not None:
            self.fill_table(self.view)

    def action_compare(self) -> None:
        from scoot.tui.screens.compare import CompareScreen

        t = self.selected()
        if self.view is None or t is None:
            return
        a = next((u for u in self.view.trials if u.number == self.marked), None)
        if a is None:
            self.say("mark a trial with m first, then press d on another")
            return
        self.app.push_screen(CompareScreen(compare(a.row, t.row)))

    def action_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % (len(METRIC_COLUMNS) + 1)
        label = "trial number" if not self.sort_index else METRIC_COLUMNS[self.sort_index - 1][0]
        self.say(f"sorted by {label}")
        if self.view is not None:
            self.fill_table(self.view)

    def action_filter(self) -> None:
        """Open the filter box and focus it at once: keys typed right after ``/`` go into the
        box, not to the screen's bindings (``p`` would pause the study)."""
        box = self.query_one("#filter", Input)
        box.display = True
        self.set_focus(box)

    def action_tab(self, tab: str) -> None:
        """Show a tab and focus its content (a focused widget in a hidden tab would pull the
        view back to its own tab)."""
        self.query_one(TabbedContent).active = tab
        target = {
            "trials": "#trials-table",
            "plot": "#objective-plot",
            "feasibility": "#feasibility-panel",
            "gpus": "#gpu-panel",
            "why": "#why-panel",
        }[tab]
        self.query_one(target).focus()

    def action_export(self) -> None:
        """The best configuration (a trial's own is exported from its screen)."""
        from scoot.tui.screens.export import ExportScreen

        if self.view is None:
            return
        chosen = self.view.best
        if chosen is None:
            self.say("no completed trial to export yet (open a trial to export its config)")
            return
        self.app.push_screen(ExportScreen(chosen.row, self.view.spec, self.scoot.data_dir))

    def say(self, text: str) -> None:
        self.query_one("#message", Static).update(text)

    def action_pause(self) -> None:
        self.command("pause")

    def action_pause_now(self) -> None:
        self.command("pause-now")

    def action_resume(self) -> None:
        self.command("resume")

    def action_cancel(self) -> None:
        self.command("cancel")

    def command(self, verb: str) -> None:
        if verb in CONFIRM:
            from scoot.tui.screens.confirm import ConfirmScreen

            def answered(yes: bool | None) -> None:
                if yes:
                    self.send(verb)

            question = CONFIRM[verb].format(name=self.study_name)
            self.app.push_screen(ConfirmScreen(question), answered)
            return
        self.send(verb)

    @work(thread=True, group="command")
    def send(self, verb: str) -> None:
        """Store writes and queue dispatches off the event loop; the message comes back."""
        message = run_command(self.scoot, self.study_id, self.study_name, verb)
        self.app.call_from_thread(self.say, message)


def short_name(name: str) -> str:
    """A column header: a long flag name by its initials (the legend above spells it out)."""
    return "".join(w[0] for w in name.split("_")) if len(name) > 12 else name


def flag_legend(params: list[str]) -> str:
    """The full names behind the abbreviated flag columns."""
    pairs = [f"{short_name(p)} {p}" for p in params if short_name(p) != p]
    return ("flags: " + ", ".join(pairs)) if pairs else ""


def decision_text(view: StudyView) -> str:
    """Best vs default at the top: the verdict (with the gain's spread from the re-tests, "no
    significant gain" where it includes zero) and the winner's ready-to-run command."""
    d = view.decision
    if d is None:
        return ""
    lines = [d.verdict()]
    if d.command and d.best is not None:
        lines.append(f"deploy #{d.best.number}: {d.command}")
    return "\n".join(lines)
