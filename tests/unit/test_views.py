"""What the TUI is told: states an operator can act on, and who holds a GPU set."""

from __future__ import annotations

from pathlib import Path

from fake_store import RECORDED, fake_store
from scoot.domain import Config, FailureKind, StudyState, TrialState
from scoot.jobs.store import Store
from scoot.jobs.views import WORKER_SILENT_S, load_study, state_text


def test_states_say_what_an_operator_needs(store_at: str | Path) -> None:
    store = Store(store_at)
    study, _ = store.open_study("a", "{}")
    t = store.add_trial(study.id, Config.of({"max_num_seqs": 8}), "default")
    store.finish(t.id, TrialState.FAILED, failure=FailureKind.STARTUP_OOM)
    store.set_study_state(study.id, StudyState.COMPLETED)
    assert state_text(store.study_by_id(study.id), None, 0.0) == "completed: no config completed"
    store.set_study_state(study.id, StudyState.RUNNING)
    row = store.study_by_id(study.id)
    assert state_text(row, None, 0.0) == "running: no worker yet"
    store.touch_advanced(study.id)
    row = store.study_by_id(study.id)
    assert row.advanced_at is not None
    assert state_text(row, None, row.advanced_at + 1) == "running"
    late = row.advanced_at + WORKER_SILENT_S + 30
    assert state_text(row, None, late) == f"running: no worker for {WORKER_SILENT_S + 30:.0f} s"


def test_the_gpu_tab_names_another_study_on_the_set(tmp_path: Path, store_at: str | Path) -> None:
    fake_store(tmp_path / "home", store_at=store_at)
    store = Store(store_at)
    mine = store.studies()[0]
    other, _ = store.open_study("other", mine.spec_json)
    t = store.add_trial(other.id, Config.of({"max_num_seqs": 8}), "default")
    assert store.claim(t.id, "0", RECORDED)
    gpus = {r.gpu_set: r for r in load_study(store, mine.id).running}
    assert gpus["0"].trial is None and gpus["0"].other == "study other, trial #0"
    assert gpus["1"].other is None
    store.close()


def test_the_tui_says_when_no_trial_meets_the_slo(tmp_path: Path, store_at: str | Path) -> None:
    import dataclasses

    from scoot.domain import Metrics, OutcomeConstraint
    from scoot.jobs.views import summarise
    from scoot.study import StudySpec

    fake_store(tmp_path / "home", store_at=store_at)
    store = Store(store_at)
    row = store.studies()[0]
    spec = StudySpec.from_json(row.spec_json, row.source)
    assert summarise(store, row).best.startswith("#")  # no SLO: a winner
    strict = dataclasses.replace(spec, slo=(OutcomeConstraint("mean_ttft_ms", "<=", 1.0),))
    other, _ = store.open_study("strict", strict.to_json())
    t = store.add_trial(other.id, Config.of({"max_num_seqs": 8}), "default")
    store.finish(t.id, TrialState.COMPLETED, metrics=Metrics.of(completed=5, mean_ttft_ms=90.0))
    assert summarise(store, store.study_by_id(other.id)).best == "none meets the SLO"
    store.close()


def test_the_gpu_tab_lists_workers_and_warns_when_none_is_alive(
    tmp_path: Path, store_at: str | Path
) -> None:
    import dataclasses

    from scoot.jobs.views import WorkerView

    fake_store(tmp_path / "home", store_at=store_at)
    store = Store(store_at)
    study = store.studies()[0]
    store.set_study_state(study.id, StudyState.RUNNING)
    view = load_study(store, study.id)
    assert view.workers == [] and view.queued == 1
    store.worker_seen(RECORDED, ("0", "1"))
    now = store.workers()[0].seen_at
    view = load_study(store, study.id, now=now + 2)
    (w,) = view.workers
    assert w.alive and w.text() == "worker a-host:4321 serving 0 1, seen 2 s ago"
    late = load_study(store, study.id, now=now + WORKER_SILENT_S + 5).workers[0]
    assert not late.alive and "silent for" in late.text()
    store.worker_gone(RECORDED)
    assert store.workers() == []
    store.close()
    from scoot.tui.widgets.panels import GpuPanel

    lines = GpuPanel().lines(dataclasses.replace(view, workers=[]))
    assert "queued trials: 1" in lines
    assert any(line.startswith("warning: no worker is alive") for line in lines)
    alive = dataclasses.replace(view, workers=[WorkerView("h", 1, "0", 1.0)])
    assert not any(line.startswith("warning") for line in GpuPanel().lines(alive))


def test_progress_counts_from_the_engine_answering_and_eta_from_the_pace(
    tmp_path: Path, store_at: str | Path
) -> None:
    fake_store(tmp_path / "home", store_at=store_at)
    store = Store(store_at)
    study = store.studies()[0]
    store.set_study_state(study.id, StudyState.RUNNING)
    queued = next(t for t in store.trials(study.id) if t.state is TrialState.QUEUED)
    assert store.claim(queued.id, "0", RECORDED)
    store.mark_running(queued.id, "0", RECORDED, "cmd", "")
    started = store.trial(queued.id).started_at
    assert started is not None
    r = {x.gpu_set: x for x in load_study(store, study.id, now=started + 40).running}["0"]
    assert r.trial == queued.number and r.starting and r.progress == 0.0  # engine starting
    store.mark_ready(queued.id)
    ready = store.trial(queued.id).ready_at
    assert ready is not None
    r = {x.gpu_set: x for x in load_study(store, study.id, now=ready + 30).running}["0"]
    assert not r.starting and abs(r.progress - 30 / 60) < 1e-6  # of 60 s of stress, not 70
    view = load_study(store, study.id, now=ready + 30)
    assert view.eta_s is not None and view.eta_s > 0  # 2 of 14 left, at the pace so far
    store.close()


def test_a_study_whose_every_trial_failed_says_so(store_at: str | Path) -> None:
    store = Store(store_at)
    study, _ = store.open_study("a", "{}")
    for n in (8, 16):
        t = store.add_trial(study.id, Config.of({"max_num_seqs": n}), "sobol")
        store.finish(t.id, TrialState.FAILED, failure=FailureKind.STARTUP_OOM)
    row = store.study_by_id(study.id)
    assert state_text(row, None, 0.0, store.trials(study.id)) == "active: all 2 trials failed"
    store.close()


def test_the_queued_trials_pof_is_the_studys_own_forests(
    tmp_path: Path, store_at: str | Path
) -> None:
    """The feasibility tab shows the POF of the model the optimizer gates by: one forest per
    launch stage by default, the paper's single forest under ``variant = "paper"``."""
    import dataclasses

    import numpy as np

    from scoot.optim.feasibility import pof_model
    from scoot.study import StudySpec

    fake_store(tmp_path / "home", store_at=store_at)
    store = Store(store_at)
    row = store.studies()[0]
    spec = StudySpec.from_json(row.spec_json, row.source)
    paper_spec = dataclasses.replace(spec, variant="paper")
    paper_row, _ = store.open_study("paper", paper_spec.to_json())
    for t in store.trials(row.id):  # the same trials, failures of two stages among them
        if t.retest is None:
            copy = store.add_trial(paper_row.id, t.config, t.source)
            if t.state is not TrialState.QUEUED:
                store.finish(copy.id, t.state, metrics=t.metrics, failure=t.failure_kind)
    space = spec.space()
    draws = [space.decode(u) for u in np.random.default_rng(3).random((60, space.dim))]
    for config in [c for c in draws if space.allowed(c)][:20]:  # queued where forests differ
        for study_id in (row.id, paper_row.id):
            store.add_trial(study_id, config, "scoot-sobo")
    default, paper = load_study(store, row.id), load_study(store, paper_row.id)
    history = store.observations(row.id)
    queued = [t.config for t in store.trials(row.id) if t.state is TrialState.QUEUED]
    assert len(queued) > 10 and {
        t.failure_kind for t in store.trials(row.id) if t.failure_kind
    } == {
        FailureKind.KV_CACHE_TOO_SMALL,
        FailureKind.STARTUP_OOM,
    }
    u = np.array([space.encode(c) for c in queued])
    for view, kind in ((default, "staged"), (paper, "paper")):
        model = pof_model(space, history, np.random.default_rng(0), kind, n_estimators=50)
        assert [p for _, p in view.pof_next] == list(model.pof(u))
    assert default.pof_next != paper.pof_next
    assert spec.feasibility == "staged" and paper_spec.feasibility == "paper"
    store.close()
