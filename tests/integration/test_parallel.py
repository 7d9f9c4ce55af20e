"""Two GPU sets: two trials at once (the paper's parallel suggestion), never two on one set."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from scoot.jobs.store import Store, TrialRow


def test_two_gpu_sets_run_two_trials_at_once(
    make_study: Callable[..., Path], scoot_home: Path
) -> None:
    study = make_study(name="par", budget=5, duration=1.5, gpu_sets=("0", "1"))
    done = subprocess.run(
        [sys.executable, "-m", "scoot", "tune", str(study)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    store = Store(scoot_home / "scoot.db")
    study_row = store.study("par")
    assert study_row is not None
    trials = [t for t in store.trials(study_row.id) if t.started_at and t.ended_at]
    assert len(trials) == 5
    assert {t.gpu_set for t in trials} == {"0", "1"}

    def overlap(a: TrialRow, b: TrialRow) -> bool:
        assert a.started_at and a.ended_at and b.started_at and b.ended_at
        return a.started_at < b.ended_at and b.started_at < a.ended_at

    pairs = [(a, b) for i, a in enumerate(trials) for b in trials[i + 1 :]]
    assert any(overlap(a, b) for a, b in pairs), "no two trials ever ran at the same time"
    for a, b in pairs:
        if a.gpu_set == b.gpu_set:
            assert not overlap(a, b), (
                f"trials {a.number} and {b.number} shared GPU set {a.gpu_set}"
            )
