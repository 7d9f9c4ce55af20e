"""SIGKILL the tuner mid-evaluation, start it again: nothing lost, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import engine_pids, trial_rows, wait_for
from scoot.domain import AbandonCause, Config, TrialState
from scoot.engine.launcher import EngineProcess, ProcessRef, free_port, group_alive, host_name
from scoot.jobs.locks import foreground_lock
from scoot.jobs.store import Store
from scoot.jobs.tasks import recover


@pytest.mark.slow  # ~25-30 s: `make test-slow`, which CI runs
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
        wait_for(fourth_running, 120)  # its engine started: SIGKILL mid-evaluation
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


def dead_process() -> ProcessRef:
    """A process of this host that ran and exited: what a SIGKILLed tuner leaves recorded."""
    proc = subprocess.Popen(["sleep", "30"])
    ref = ProcessRef.of(proc.pid)
    proc.kill()
    proc.wait()
    return ref


def sleeper() -> subprocess.Popen[bytes]:
    """An unrelated process in a process group of its own."""
    return subprocess.Popen(["sleep", "120"], start_new_session=True)


def running_trial(store: Store, runner: ProcessRef, engine: ProcessRef) -> tuple[int, int]:
    study, _ = store.open_study("r", "{}")
    trial = store.add_trial(study.id, Config.of({"max_num_seqs": 8}), "sobol")
    assert store.claim(trial.id, "0", runner)
    store.mark_running(trial.id, "0", engine, "cmd", "log")
    return study.id, trial.id


def test_recovery_stops_an_engine_left_running(tmp_path: Path, scoot_home: Path) -> None:
    store = Store(scoot_home / "scoot.db")
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
    assert engine.wait_ready(30, "llama-3.1-8b") is None
    study_id, trial_id = running_trial(store, dead_process(), ProcessRef.of(engine.pgid))
    lock = foreground_lock(scoot_home, study_id)
    assert lock.acquire()
    assert not foreground_lock(scoot_home, study_id).acquire()  # one foreground run per study
    lock.release()
    abandoned = recover(store, study_id)  # at once: the recorded process is gone
    assert [t.id for t in abandoned] == [trial_id]
    assert not group_alive(engine.pgid)
    engine.proc.wait(timeout=5)
    trials = store.trials(study_id)
    assert [t.state for t in trials] == [TrialState.ABANDONED, TrialState.QUEUED]
    assert trials[0].abandon_cause is AbandonCause.INTERRUPTED
    assert "engine was still running and was stopped" in (trials[0].failure_message or "")
    assert trials[1].config == trials[0].config
    assert os.path.exists(engine.log_path)


def test_a_reused_pgid_is_left_alone(scoot_home: Path) -> None:
    """The recorded engine's pgid now belongs to another process (its start time differs):
    recovery abandons the trial and signals nothing."""
    other = sleeper()
    try:
        reused = ProcessRef(host_name(), other.pid, "another-boot/1")
        store = Store(scoot_home / "scoot.db")
        study_id, trial_id = running_trial(store, dead_process(), reused)
        assert [t.id for t in recover(store, study_id)] == [trial_id]
        assert other.poll() is None, "recovery killed a process that was not the engine"
        assert "was stopped" not in (store.trial(trial_id).failure_message or "")
    finally:
        other.kill()
        other.wait()


def test_another_hosts_trial_waits_for_its_heartbeat_and_is_never_signalled(
    scoot_home: Path,
) -> None:
    """A pid recorded on another host means nothing here: while that host's heartbeat is fresh
    the trial is left running; once stale it is abandoned, and no local process is touched."""
    local = sleeper()
    try:
        store = Store(scoot_home / "scoot.db")
        elsewhere = ProcessRef("another-host", local.pid, ProcessRef.of(local.pid).started)
        study_id, trial_id = running_trial(store, elsewhere, elsewhere)
        assert recover(store, study_id) == []  # its heartbeat is fresh
        assert store.trial(trial_id).state is TrialState.RUNNING
        assert [t.id for t in recover(store, study_id, stale_s=0.0)] == [trial_id]
        assert local.poll() is None, "a pid recorded on another host was signalled here"
        assert "on host another-host" in (store.trial(trial_id).failure_message or "")
    finally:
        local.kill()
        local.wait()
