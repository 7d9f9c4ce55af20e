"""A study with ``[stress] early_stop`` on the embedded engine: a config surely worse than the
incumbent is stopped mid-test and recorded as a censored observation, shown as such."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from scoot.domain import Config, Metrics, TrialState
from scoot.jobs.evaluate import build_workload, evaluate
from scoot.jobs.policy import best_trial
from scoot.jobs.store import Store
from scoot.study import load_study


def test_a_hopeless_trial_is_stopped_early_and_never_wins(
    make_study: Callable[..., Path], scoot_home: Path
) -> None:
    path = make_study(name="es", duration=6.0)
    path.write_text(path.read_text().replace("[stress]\n", "[stress]\nearly_stop = true\n"))
    spec = load_study(path)
    scoot_home.mkdir(parents=True, exist_ok=True)
    store = Store(scoot_home / "scoot.db")
    row, _ = store.open_study(spec.name, spec.to_json(), str(path))
    assert spec.defaults is not None
    # An incumbent no real run can beat: a p95 of 1 ms.
    incumbent = store.add_trial(row.id, Config.of(spec.defaults), "default")
    store.finish(
        incumbent.id, TrialState.COMPLETED, metrics=Metrics.of(p95_e2el_ms=1.0, completed=48)
    )
    trial = store.add_trial(row.id, Config.of({**spec.defaults, "max_num_seqs": 8}), "manual")
    state = evaluate(store, spec, trial, "0", build_workload(spec), scoot_home / "logs")
    assert state is TrialState.COMPLETED  # censored, not a crash: the forest never sees it
    done = store.trial(trial.id)
    assert done.stopped_early is not None and done.stopped_early.startswith("p95 latency >= ")
    assert done.metrics is not None and done.metrics.p95_e2el_ms > 1.0
    assert done.metrics.completed < 48  # it did not run to its end
    obs = done.observation()
    assert obs is not None and obs.feasible  # the surrogate reads the bound
    best = best_trial(store.trials(row.id), spec.objectives)
    assert best is not None and best.id == incumbent.id
    store.close()
    out = subprocess.run(
        [sys.executable, "-m", "scoot", "study", "status", "es"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "stopped early" in out.stdout
