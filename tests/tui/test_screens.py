"""Pilot tests: every screen and command against a store filled by a real short study."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static, TabbedContent, TextArea

from helpers import until
from scoot.domain import EventKind, StudyState, TrialState
from scoot.jobs.store import Store, TrialRow
from scoot.jobs.worker import Queue
from scoot.tui.app import ScootApp
from scoot.tui.screens.confirm import ConfirmScreen
from scoot.tui.screens.export import ExportScreen
from scoot.tui.screens.new_study import NewStudyScreen
from scoot.tui.screens.studies import StudiesScreen
from scoot.tui.screens.study import StudyScreen
from scoot.tui.screens.trial import TrialScreen
from scoot.tui.widgets.panels import FeasibilityPanel, GpuPanel


def text_of(widget: Static) -> str:
    return str(widget.render())


def studies_table(app: ScootApp) -> DataTable[str]:
    return app.screen.query_one("#studies", DataTable)


def state_cell(app: ScootApp) -> str:
    return str(studies_table(app).get_row_at(0)[4])


def message(screen: Screen[Any]) -> str:
    return text_of(screen.query_one("#message", Static))


def error_text(app: ScootApp) -> str:
    return text_of(app.screen.query_one("#error", Static))


def tab_of(screen: Screen[Any]) -> str:
    return str(screen.query_one(TabbedContent).active)


def feasibility(screen: Screen[Any]) -> str:
    return text_of(screen.query_one(FeasibilityPanel))


def stored_trials(data_dir: Path) -> list[TrialRow]:
    """The real study's trials as the store holds them: which configs get re-tested depends
    on which one won (the default is re-tested too when it did not win), so the tests count
    against this rather than a fixed number."""
    store = Store(data_dir / "scoot.db")
    try:
        return store.trials(store.studies()[0].id)
    finally:
        store.close()


def handed_to_workers(data_dir: Path) -> int:
    """Mark the store's study as run by workers (none runs here); returns its id."""
    store = Store(data_dir / "scoot.db")
    study_id = store.studies()[0].id
    store.set_study_state(study_id, StudyState.RUNNING)
    store.close()
    return study_id


async def open_study(pilot: Any, app: ScootApp) -> StudyScreen:
    """From the studies screen, open the first study and wait for its first view."""
    await until(pilot, lambda: studies_table(app).row_count >= 1, "the studies table")
    await pilot.press("enter")
    await until(
        pilot,
        lambda: isinstance(app.screen, StudyScreen) and app.screen.view is not None,
        "the study screen's first load",
    )
    assert isinstance(app.screen, StudyScreen)
    return app.screen


async def test_studies_screen_lists_the_study(data_dir: Path) -> None:
    app = ScootApp(data_dir, refresh_s=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: studies_table(app).row_count == 1, "the study's row")
        assert isinstance(app.screen, StudiesScreen)
        table = studies_table(app)
        row = table.get_row_at(0)
        assert str(row[0]) == "tui" and row[1] == "ttft+tpot" and row[3] == "0 1"
        assert row[4] == "completed" and row[5] == "5/5"
        assert row[7].startswith("#")


async def test_study_screen_trials_plot_panels_and_trial(data_dir: Path) -> None:
    app = ScootApp(data_dir, refresh_s=0.2)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_study(pilot, app)
        table = screen.query_one("#trials-table", DataTable)
        trials = stored_trials(data_dir)
        retests = [t for t in trials if t.retest is not None]
        assert len(trials) - len(retests) == 5  # the budget
        assert 1 <= len(retests) <= 2  # the winner's re-test, and the default's if it lost
        assert table.row_count == len(trials)
        marks = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert sum("*" in m for m in marks) == 1, marks  # the incumbent
        # Metrics and state come before the flags (at 80 columns they stay on screen).
        headers = [str(c.label) for c in table.columns.values()]
        assert headers[:7] == ["#", "req/s", "p95 ms", "TTFT ms", "TPOT ms", "state", "source"]
        states = [str(table.get_row_at(i)[5]) for i in range(table.row_count)]
        assert all(s.startswith(("completed", "failed")) for s in states), states
        # Best vs default at the top, with the winner's command.
        decision = text_of(screen.query_one("#decision", Static))
        assert "deploy #" in decision and "vllm serve llama-3.1-8b" in decision
        # Sorting by a metric column reorders rows; filtering keeps matching ones.
        await pilot.press("s")
        await until(pilot, lambda: "sorted by" in message(screen), "the sort message")
        await pilot.press("slash")
        box = screen.query_one("#filter", Input)
        assert box.display
        for ch in "robust":
            await pilot.press(ch)
        await pilot.press("enter")
        await until(pilot, lambda: table.row_count == len(retests), "the filtered table")
        # The other tabs.
        await pilot.press("3")
        await until(pilot, lambda: tab_of(screen) == "feasibility", "the feasibility tab")
        feas = text_of(screen.query_one(FeasibilityPanel))
        assert "Delta now" in feas and "failures by kind" in feas
        await pilot.press("4")
        await until(pilot, lambda: tab_of(screen) == "gpus", "the GPU sets tab")
        gpus = text_of(screen.query_one(GpuPanel))
        assert "GPU set" in gpus and "idle" in gpus
        await pilot.press("1")
        await until(pilot, lambda: tab_of(screen) == "trials", "the trials tab")
        table.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TrialScreen), "the trial screen")
        body = " ".join(text_of(w) for w in app.screen.query(Static))
        assert "launch command" in body and "engine log" in body
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ExportScreen), "the export screen")
        texts = [t.text for t in app.screen.query(TextArea)]
        assert any("vllm serve llama-3.1-8b" in t for t in texts)
        assert any("docker run" in t for t in texts)
        assert not (data_dir / "exports").exists()  # opening writes nothing
        await pilot.press("w")
        exports = data_dir / "exports"
        await until(pilot, lambda: exports.exists() and len(list(exports.iterdir())) == 5, "w")
        # vllm, yaml, docker, k8s, json


async def test_feasibility_tab_shows_recent_notable_events(data_dir: Path) -> None:
    store = Store(data_dir / "scoot.db")
    study = store.study("tui")
    assert study is not None
    assert store.notable_events(study.id) == []  # the real study ran without incident
    store.event(
        study.id,
        None,
        EventKind.OPTIMIZER_ERROR,
        "scoot-mobo: RuntimeError('x'); Sobol this round",
    )
    # Not notable: the study's state is in the title.
    store.event(study.id, None, EventKind.STUDY_COMPLETED, "budget of 5 spent")
    store.close()
    app = ScootApp(data_dir, refresh_s=0.2)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_study(pilot, app)
        await pilot.press("3")
        await until(pilot, lambda: "recent events:" in feasibility(screen), "the events")
        feas = feasibility(screen)
        assert "recent events:" in feas
        assert "optimizer-error: scoot-mobo: RuntimeError('x'); Sobol this round" in feas
        assert "budget of 5 spent" not in feas


async def test_pause_and_resume_from_the_studies_screen(data_dir: Path) -> None:
    store = Store(data_dir / "scoot.db")
    study = store.studies()[0]
    store.set_study_state(study.id, StudyState.RUNNING)
    before = len(store.trials(study.id))
    store.close()
    app = ScootApp(data_dir, refresh_s=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: state_cell(app).startswith("running"), "the study's row")
        await pilot.press("p")
        await until(pilot, lambda: state_cell(app) == "paused", "the paused state")
        await pilot.press("r")
        await until(pilot, lambda: "resumed" in message(app.screen), "the resume message")
        assert state_cell(app).startswith("running")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, StudiesScreen), "the answer")
        assert state_cell(app).startswith("running")  # no: nothing happened
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.press("y")
        await until(pilot, lambda: state_cell(app) == "cancelled", "the cancelled state")
    store = Store(data_dir / "scoot.db")
    assert store.studies()[0].state is StudyState.CANCELLED
    # Resume only handed the study to the workers: no suggestion was computed in the TUI.
    assert len(store.trials(study.id)) == before
    store.close()


async def test_new_study_from_a_file_goes_to_the_workers(
    data_dir: Path, make_study: Callable[..., Path]
) -> None:
    path = make_study(name="fresh", budget=3)
    app = ScootApp(data_dir, refresh_s=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: studies_table(app).row_count == 1, "the study's row")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewStudyScreen), "the new-study box")
        await pilot.press(*"nope.toml", "enter")
        await until(pilot, lambda: "nope.toml" in error_text(app), "the error")
        box = app.screen.query_one("#path", Input)
        box.value = str(path)
        await pilot.press("enter")
        await until(pilot, lambda: "handed to the workers" in message(app.screen), "handed")
        assert isinstance(app.screen, StudiesScreen)
        await until(pilot, lambda: studies_table(app).row_count == 2, "the new study's row")
    store = Store(data_dir / "scoot.db")
    fresh = store.study("fresh")
    assert fresh is not None and fresh.state is StudyState.RUNNING
    # The TUI only enqueued: the default config is the workers' first advance, not its own.
    assert store.trials(fresh.id) == []
    store.close()
    assert Queue(None, data_dir).huey.pending_count() == 1  # that advance task


async def test_bindings_are_remappable_and_listed_in_the_palette(data_dir: Path) -> None:
    (data_dir / "keys.toml").write_text('"studies.pause" = "x"\n')
    study_id = handed_to_workers(data_dir)
    app = ScootApp(data_dir, refresh_s=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: state_cell(app).startswith("running"), "the study's row")
        await pilot.press("p")  # no longer bound
        await pilot.press("x")
        await until(pilot, lambda: state_cell(app) == "paused", "the paused state")
        store = Store(data_dir / "scoot.db")
        paused = [e for e in store.events(study_id) if e["kind"] == EventKind.PAUSED]
        store.close()
        assert len(paused) == 1, paused  # from "x" only
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for words in ("Open (⏎)", "New study (n)", "Pause (x)", "Resume (r)", "Cancel (c)"):
            assert words in titles, titles  # the remapped key, not the default's
        helps = [c.help for c in app.get_system_commands(app.screen)]
        assert "Pause: running trials finish (binding studies.pause)" in helps
        assert not any("runs '" in h for h in helps)  # words, not action strings


def test_a_bad_keymap_file_is_named(tmp_path: Path) -> None:
    from scoot.tui.app import load_keymap

    bad = tmp_path / "keys.toml"
    bad.write_text('"studies.pause" = 3\n')
    with pytest.raises(ValueError, match=f"{bad}: key 'studies.pause'"):
        load_keymap(bad)
    # A typo in a binding id would remap nothing: it is named, with the close ids.
    bad.write_text('"study.pase" = "x"\n')
    with pytest.raises(ValueError, match=r"key 'study.pase': no binding has this id \(did you"):
        load_keymap(bad)
    bad.write_text('"study.pause" = "x"\n"app.help" = "f1"\n')
    assert load_keymap(bad) == {"study.pause": "x", "app.help": "f1"}


async def test_help_lists_every_key_of_the_screen_as_remapped(data_dir: Path) -> None:
    from scoot.tui.screens.help import HelpScreen

    (data_dir / "keys.toml").write_text('"study.pause" = "z"\n')
    app = ScootApp(data_dir, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_study(pilot, app)
        bound = {b.id for b in screen.BINDINGS if isinstance(b, Binding)}
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        table = app.screen.query_one("#help-keys", DataTable)
        rows = {str(table.get_row_at(i)[2]): table.get_row_at(i) for i in range(table.row_count)}
        assert bound | {"app.quit", "app.help"} <= set(rows)  # every key of the screen
        assert rows["study.pause"][0] == "z"
        assert rows["study.tab_feas"][1] == "show feasibility: Delta, POF, failures, events"
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, StudyScreen), "back")


async def test_keys_typed_ahead_after_slash_never_pause_or_cancel(data_dir: Path) -> None:
    """Over a slow link `/ p c` arrive together: the box takes the focus at once, so they
    never pause or cancel the study."""
    study_id = handed_to_workers(data_dir)
    app = ScootApp(data_dir, refresh_s=0.2)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_study(pilot, app)
        # All three queued before the app handles the first, as a burst from the terminal.
        driver = app._driver
        assert driver is not None
        for key, char in (("slash", "/"), ("p", "p"), ("c", "c")):
            burst = events.Key(key, char)
            burst.set_sender(app)
            driver.send_message(burst)  # as Pilot does, without waiting between keys
        box = screen.query_one("#filter", Input)
        await until(pilot, lambda: app.focused is box, "the filter box's focus")
        assert isinstance(app.screen, StudyScreen)  # `c` asked nothing: it never reached it
    store = Store(data_dir / "scoot.db")
    assert store.study_by_id(study_id).state is StudyState.RUNNING
    store.close()


def test_a_capacity_trial_shows_every_step_of_its_rate_search() -> None:
    from scoot.domain import Metrics
    from scoot.tui.screens.trial import rate_steps_text

    m = Metrics.of(capacity=12.0, rate_steps=((8.0, 1.0), (16.0, 0.62), (12.0, 0.995)))
    lines = rate_steps_text(m).splitlines()
    assert lines[0].startswith("capacity 12 req/s")
    assert lines[1:] == [
        "  8 req/s -> SLO attainment 100.0%",
        "  16 req/s -> SLO attainment 62.0%",
        "  12 req/s -> SLO attainment 99.5%",
    ]


async def test_why_tab_compare_and_plot_caption_on_a_ten_flag_study(tmp_path: Path) -> None:
    from fake_store import fake_store
    from scoot.tui.screens.compare import CompareScreen
    from scoot.tui.widgets.panels import WhyPanel

    home = fake_store(tmp_path / "home", two_objectives=False)
    app = ScootApp(home, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_study(pilot, app)
        decision = text_of(screen.query_one("#decision", Static))
        assert decision.startswith("trial 7 beats the default: p95_latency +14.6%")
        legend = text_of(screen.query_one("#flag-legend", Static))
        assert "mnbt max_num_batched_tokens" in legend  # the abbreviations spelled out
        await pilot.press("5")
        await until(pilot, lambda: tab_of(screen) == "why", "the why tab")
        why = text_of(screen.query_one(WhyPanel))
        assert "what moves p95_latency (forest importance over 10 trials):" in why
        assert "p95_latency by " in why
        await pilot.press("2")
        await until(pilot, lambda: tab_of(screen) == "plot", "the plot tab")
        caption = text_of(screen.query_one("#plot-caption", Static))
        assert "best so far (steps)" in caption and "failed, not drawn: #1 #5" in caption
        # Compare: mark the default (first row), move to trial 7, press d.
        await pilot.press("1")
        await until(pilot, lambda: tab_of(screen) == "trials", "the trials tab")
        table = screen.query_one("#trials-table", DataTable)
        await pilot.press("d")
        await until(pilot, lambda: "mark a trial with m first" in message(screen), "the hint")
        await pilot.press("m")
        await until(pilot, lambda: "trial #0 marked" in message(screen), "the mark")
        for _ in range(7):
            await pilot.press("down")
        assert str(table.get_row_at(table.cursor_row)[0]).startswith("7")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen), "the comparison")
        flags = app.screen.query_one("#compare-flags", DataTable)
        rows = [tuple(map(str, flags.get_row_at(i))) for i in range(flags.row_count)]
        assert ("max_num_seqs", "256", "96") in rows
        metrics = app.screen.query_one("#compare-metrics", DataTable)
        p95 = next(
            metrics.get_row_at(i)
            for i in range(metrics.row_count)
            if metrics.get_row_at(i)[0] == "p95_e2el_ms"
        )
        assert list(map(str, p95)) == ["p95_e2el_ms", "5400", "4550", "-15.7%"]


async def test_the_trial_screen_follows_a_running_trial(tmp_path: Path) -> None:
    from fake_store import RECORDED, fake_store, metrics

    home = fake_store(tmp_path / "home", two_objectives=False)
    store = Store(home / "scoot.db")
    study = store.studies()[0]
    queued = next(t for t in store.trials(study.id) if t.state.value == "queued")
    log = tmp_path / "engine.log"
    log.write_text("INFO starting\n")
    assert store.claim(queued.id, "0", RECORDED)
    store.mark_running(queued.id, "0", RECORDED, "vllm serve x", str(log))
    store.close()
    app = ScootApp(home, refresh_s=0.2)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_study(pilot, app)
        table = screen.query_one("#trials-table", DataTable)
        row = next(
            i for i in range(table.row_count) if str(table.get_row_at(i)[0]) == str(queued.number)
        )
        table.move_cursor(row=row)
        table.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TrialScreen), "the trial screen")
        trial = app.screen

        def shown(widget: str) -> str:
            return text_of(trial.query_one(widget, Static))

        assert "running" in shown("#trial-title") and "INFO starting" in shown("#engine-log")
        with log.open("a") as f:
            f.write("INFO Application startup complete.\n")
        await until(pilot, lambda: "startup complete" in shown("#engine-log"), "the log's end")
        store = Store(home / "scoot.db")
        engine = {"preemptions": 3.0, "kv_cache_usage_peak": 0.87}
        done = dataclasses.replace(metrics(90.0, 25.0, 4400.0, 7.99), engine=engine)
        store.finish(queued.id, TrialState.COMPLETED, metrics=done)
        store.close()
        await until(pilot, lambda: "completed" in shown("#trial-title"), "the finished state")
        assert "engine: preemptions 3, peak KV-cache use 87.0%" in shown("#engine-metrics")
        assert "client lateness p99" in shown("#trial-summary")
        assert trial.query_one("#percentiles", DataTable).row_count == 4
