"""SIGKILL the tuner mid-evaluation, start it again: nothing lost, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import engine_pids, trial_rows, wait_for
from scoot.domain import Config, TrialState
from scoot.engine.launcher import EngineProcess, free_port, group_alive
from scoot.jobs.driver import StudyLock, StudyLocked, recover
from scoot.jobs.store import Store


def test_sigkill_during_fourth_evaluation_then_continue(
    make_study: Callable[..., Path], scoot_home: Path
) -> None:
    study = make_study(name="resume", budget=6, duration=1.5)
    db = scoot_home / "scoot.db"
    cmd = [sys.executable, "-m", "scoot", "tune", str(study)]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def fourth_running() -> bool:
        if not db.exists():
            return False
        rows = trial_rows(db)
        return len(rows) >= 4 and rows[3]["state"] == "running" and rows[3]["engine_pgid"]

    try:
        wait_for(fourth_running, 120)
        time.sleep(1.0)  # into the stress test of trial 3
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    before = trial_rows(db)
    assert all(r["state"] in ("completed", "failed") for r in before[:3])
    assert before[3]["state"] == "running"
    killed_pgid = before[3]["engine_pgid"]
    # The engine of the killed driver does not outlive it.
    wait_for(lambda: not group_alive(killed_pgid), 10)

    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    after = trial_rows(db)
    # Finished trials were neither re-run nor rewritten.
    for old, new in zip(before[:3], after[:3], strict=True):
        assert dict(old) == dict(new)
    assert after[3]["state"] == "abandoned"
    assert "interrupted" in after[3]["failure_message"]
    retry = [r for r in after if r["source"] == "retry of #3"]
    assert len(retry) == 1 and retry[0]["config_json"] == after[3]["config_json"]
    counted = [r for r in after if r["state"] in ("completed", "failed")]
    assert len(counted) == 6
    assert not [r for r in after if r["state"] in ("queued", "running")]
    assert engine_pids(scoot_home) == []


def test_recovery_stops_an_engine_left_running(tmp_path: Path, scoot_home: Path) -> None:
    store = Store(scoot_home / "scoot.db")
    study, _ = store.open_study("r", "{}")
    trial = store.add_trial(study.id, Config.of({"max_num_seqs": 8}), "sobol")
    port = free_port()
    engine = EngineProcess(
        [
            sys.executable,
            "-m",
            "scoot.engine.embedded",
            "serve",
            "--port",
            str(port),
            "--startup-seconds",
            "0.1",
            "--max-model-len",
            "4096",
        ],
        gpu_set="0",
        port=port,
        log_path=tmp_path / "e.log",
    )
    assert engine.wait_ready(30, "m") is None
    store.mark_running(trial.id, "0", engine.pgid, "cmd", str(engine.log_path))
    lock = StudyLock(store.path, study.id)
    with pytest.raises(StudyLocked):
        StudyLock(store.path, study.id)  # one driver per study
    try:
        abandoned = recover(store, study.id)
    finally:
        lock.release()
    assert [t.id for t in abandoned] == [trial.id]
    assert not group_alive(engine.pgid)
    engine.proc.wait(timeout=5)
    trials = store.trials(study.id)
    assert [t.state for t in trials] == [TrialState.ABANDONED, TrialState.QUEUED]
    assert "engine was still running and was stopped" in (trials[0].failure_message or "")
    assert trials[1].config == trial.config
    assert os.path.exists(engine.log_path)
