"""Pilot tests: every screen and command against a store filled by a real short study."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
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
        assert len(list((data_dir / "exports").iterdir())) == 5  # vllm, yaml, docker, k8s, json


async def test_feasibility_tab_shows_recent_notable_events(data_dir: Path) -> None:
    store = Store(data_dir / "scoot.db")
    study = store.study("tui")
    assert study is not None
    assert store.notable_events(study.id) == []  # the real study ran without incident
    store.event(
        study.id, None, "optimizer-error", "scoot-mobo: RuntimeError('x'); Sobol this round"
    )
    store.event(study.id, None, "completed", "budget of 5 spent")  # not notable: in the title
    store.close()
    app = ScootApp(data_dir, refresh_s=0.2)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.8)
        await pilot.press("3")
        await pilot.pause(0.3)
        feas = text_of(app.screen.query_one(FeasibilityPanel))
        assert "recent events:" in feas
        assert "optimizer-error: scoot-mobo: RuntimeError('x'); Sobol this round" in feas
        assert "budget of 5 spent" not in feas


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


async def test_new_study_from_a_file_goes_to_the_workers(
    data_dir: Path, make_study: Callable[..., Path]
) -> None:
    path = make_study(name="fresh", budget=3)
    app = ScootApp(data_dir, refresh_s=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause(0.5)
        await pilot.press("n")
        await pilot.pause(0.2)
        await pilot.press(*"nope.toml", "enter")
        await pilot.pause(0.2)
        assert "nope.toml" in text_of(app.screen.query_one("#error", Static))
        box = app.screen.query_one("#path", Input)
        box.value = str(path)
        await pilot.press("enter")
        await pilot.pause(0.6)
        assert isinstance(app.screen, StudiesScreen)
        assert "handed to the workers" in text_of(app.screen.query_one("#message", Static))
        assert app.screen.query_one("#studies", DataTable).row_count == 2
    store = Store(data_dir / "scoot.db")
    fresh = store.study("fresh")
    assert fresh is not None and fresh.state == "running"
    assert [t.source for t in store.trials(fresh.id)] == ["default"]
    store.close()


async def test_bindings_are_remappable_and_listed_in_the_palette(data_dir: Path) -> None:
    (data_dir / "keys.toml").write_text('"studies.pause" = "x"\n')
    store = Store(data_dir / "scoot.db")
    store.set_study_state(store.studies()[0].id, "running")
    store.close()
    app = ScootApp(data_dir, refresh_s=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause(0.5)
        table = app.screen.query_one("#studies", DataTable)
        await pilot.press("p")  # no longer bound
        await pilot.pause(0.4)
        assert table.get_row_at(0)[4] == "running"
        await pilot.press("x")
        await pilot.pause(0.4)
        assert table.get_row_at(0)[4] == "paused"
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for words in ("Open", "New study", "Pause", "Resume", "Cancel"):
            assert any(t.startswith(words + " (") for t in titles), titles


def test_a_bad_keymap_file_is_named(tmp_path: Path) -> None:
    from scoot.tui.app import load_keymap

    bad = tmp_path / "keys.toml"
    bad.write_text('"studies.pause" = 3\n')
    with pytest.raises(ValueError, match=f"{bad}: key 'studies.pause'"):
        load_keymap(bad)
