"""Pilot tests: every screen and command against a store filled by a real short study."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Input, Static, TabbedContent, TextArea

from scoot.jobs.store import Store
from scoot.tui.app import ScootApp
from scoot.tui.screens.export import ExportScreen
from scoot.tui.screens.studies import StudiesScreen
from scoot.tui.screens.study import StudyScreen
from scoot.tui.screens.trial import TrialScreen
from scoot.tui.widgets.panels import FeasibilityPanel, GpuPanel


def text_of(widget: Static) -> str:
    return str(widget.render())


async def test_studies_screen_lists_the_study(data_dir: Path) -> None:
    app = ScootApp(data_dir, refresh_s=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause(0.5)
        assert isinstance(app.screen, StudiesScreen)
        table = app.screen.query_one("#studies", DataTable)
        assert table.row_count == 1
        row = table.get_row_at(0)
        assert row[0] == "tui" and row[1] == "ttft+tpot" and row[3] == "0 1"
        assert row[4] == "completed" and row[5] == "5/5"
        assert row[7].startswith("#")


async def test_study_screen_trials_plot_panels_and_trial(data_dir: Path) -> None:
    app = ScootApp(data_dir, refresh_s=0.2)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.8)
        screen = app.screen
        assert isinstance(screen, StudyScreen)
        table = screen.query_one("#trials-table", DataTable)
        assert table.row_count == 6  # five trials and one re-test of the winner
        marks = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert sum("*" in m for m in marks) == 1, marks  # the incumbent
        states = [str(table.get_row_at(i)[-1]) for i in range(table.row_count)]
        assert all(s.startswith(("completed", "failed")) for s in states)
        # Sorting by a metric column reorders rows; filtering keeps matching ones.
        await pilot.press("s")
        await pilot.pause(0.1)
        assert "sorted by" in text_of(screen.query_one("#message", Static))
        await pilot.press("slash")
        box = screen.query_one("#filter", Input)
        assert box.display
        for ch in "robust":
            await pilot.press(ch)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert table.row_count == 1
        # The other tabs.
        await pilot.press("3")
        await pilot.pause(0.2)
        assert screen.query_one(TabbedContent).active == "feasibility"
        feas = text_of(screen.query_one(FeasibilityPanel))
        assert "Delta now" in feas and "failures by kind" in feas
        await pilot.press("4")
        await pilot.pause(0.2)
        gpus = text_of(screen.query_one(GpuPanel))
        assert "GPU set" in gpus and "idle" in gpus
        await pilot.press("1")
        await pilot.pause(0.1)
        table.focus()
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, TrialScreen)
        body = " ".join(text_of(w) for w in app.screen.query(Static))
        assert "launch command" in body and "engine log" in body
        await pilot.press("e")
        await pilot.pause(0.3)
        assert isinstance(app.screen, ExportScreen)
        texts = [t.text for t in app.screen.query(TextArea)]
        assert any(t.startswith("vllm serve llama-3.1-8b") for t in texts)
        assert any("docker run" in t for t in texts)
        assert len(list((data_dir / "exports").iterdir())) == 4


async def test_pause_and_resume_from_the_studies_screen(data_dir: Path) -> None:
    store = Store(data_dir / "scoot.db")
    study = store.studies()[0]
    store.set_study_state(study.id, "running")
    store.close()
    app = ScootApp(data_dir, refresh_s=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause(0.5)
        await pilot.press("p")
        await pilot.pause(0.5)
        table = app.screen.query_one("#studies", DataTable)
        assert table.get_row_at(0)[4] == "paused"
        await pilot.press("c")
        await pilot.pause(0.5)
        assert table.get_row_at(0)[4] == "cancelled"
    store = Store(data_dir / "scoot.db")
    assert store.studies()[0].state == "cancelled"
    store.close()
