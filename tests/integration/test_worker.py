"""`scoot worker`: real Huey consumer processes running trials of the embedded engine.

Two GPU sets run two trials at once and never two on one set; pause, resume and cancel from
the command line; SIGKILL of a worker mid-evaluation; two workers sharing a Redis queue.
"""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import (
    counted,
    engine_pids,
    looked_at_since,
    overlaps,
    redis_server,
    study_state,
    trial_rows,
    wait_for,
    worker,
)

SCOOT = [sys.executable, "-m", "scoot"]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def scoot(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*SCOOT, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


def test_two_gpu_sets_two_trials_at_once_through_the_queue(
    make_study: Callable[..., Path], scoot_home: Path, tmp_path: Path
) -> None:
    study = make_study(name="w2", budget=5, duration=1.5, robust=2, gpu_sets=("0", "1"))
    db = scoot_home / "scoot.db"
    with worker(tmp_path):
        out = scoot("tune", str(study), "--detach")
        assert "handed to the workers" in out.stdout
        wait_for(lambda: study_state(db, "w2") == "completed", 180, "the study to complete")
    trials = trial_rows(db)
    retests = [t for t in trials if t["source"].startswith("robustness ")]
    # The budget, then the winner's two re-tests, and the default's two unless it won.
    configs = {t["config_json"] for t in retests}
    assert (len(retests), len(configs)) in ((2, 1), (4, 2))
    assert counted(trials) == 5 + len(retests)
    assert all(t["state"] in ("completed", "failed") for t in retests)
    assert {t["gpu_set"] for t in trials} == {"0", "1"}
    any_overlap, clashes = overlaps(trials)
    assert any_overlap, "no two trials ever ran at the same time"
    assert not clashes


def test_pause_resume_cancel(
    make_study: Callable[..., Path], scoot_home: Path, tmp_path: Path
) -> None:
    study = make_study(name="ctl", budget=8, duration=2.0)
    db = scoot_home / "scoot.db"

    def running() -> list[sqlite3.Row]:
        return [t for t in trial_rows(db) if t["state"] == "running"]

    with worker(tmp_path):
        scoot("tune", str(study), "--detach")
        wait_for(lambda: bool(running()), 60, "a trial to start")
        first = running()[0]["number"]
        # Pause: the running trial finishes and is counted; nothing new starts.
        scoot("study", "pause", "ctl")
        wait_for(lambda: not running(), 60, "the running trial to finish")
        assert trial_rows(db)[first]["state"] in ("completed", "failed")
        ended = max(t["ended_at"] for t in trial_rows(db) if t["ended_at"])
        wait_for(looked_at_since(db, "ctl", ended), 30, "a worker to look at the paused study")
        snapshot = [dict(t) for t in trial_rows(db)]
        assert not [t for t in snapshot if t["state"] in ("queued", "running")], snapshot
        assert study_state(db, "ctl") == "paused"

        # Resume; then pause --now: the running engine is stopped, the trial abandoned.
        scoot("study", "resume", "ctl")
        wait_for(lambda: bool(running()), 60, "a trial to start after resume")
        victim = running()[0]["number"]
        scoot("study", "pause", "ctl", "--now")
        wait_for(lambda: trial_rows(db)[victim]["state"] != "running", 30, "the stopped trial")
        stopped = trial_rows(db)[victim]
        assert stopped["state"] == "abandoned", dict(stopped)
        assert stopped["failure_kind"] is None
        assert "operator" in stopped["failure_message"]

        # Resume, then cancel: everything stops, every result is kept.
        done_before = counted(trial_rows(db))
        scoot("study", "resume", "ctl")
        wait_for(lambda: bool(running()), 60, "a trial to start after the second resume")
        kept = {
            t["number"]: dict(t) for t in trial_rows(db) if t["state"] in ("completed", "failed")
        }
        scoot("study", "cancel", "ctl")
        wait_for(lambda: not running(), 30, "running trials to stop on cancel")
        final = trial_rows(db)
        assert study_state(db, "ctl") == "cancelled"
        assert not [t for t in final if t["state"] == "queued"]
        for number, before in kept.items():
            assert dict(final[number]) == before
        assert counted(final) >= done_before
        ended = max(t["ended_at"] for t in final if t["ended_at"])
        wait_for(looked_at_since(db, "ctl", ended), 30, "a worker to look at the cancelled study")
        assert [dict(t) for t in trial_rows(db)] == [dict(t) for t in final]


@pytest.mark.slow  # ~25-30 s: `make test-slow`, which CI runs
def test_sigkill_worker_mid_evaluation_then_restart(
    make_study: Callable[..., Path], scoot_home: Path, tmp_path: Path
) -> None:
    study = make_study(name="kill", budget=5, duration=2.0)
    db = scoot_home / "scoot.db"
    with worker(tmp_path, name="first") as first:
        scoot("tune", str(study), "--detach")

        def third_in_stress() -> bool:
            t = trial_rows(db)
            return len(t) >= 3 and t[2]["state"] == "running" and bool(t[2]["engine_pgid"])

        wait_for(third_in_stress, 90, "trial 2 to be running")
        first.send_signal(signal.SIGKILL)
        first.wait()
    before = trial_rows(db)
    assert before[2]["state"] == "running"
    with worker(tmp_path, name="second"):
        wait_for(lambda: study_state(db, "kill") == "completed", 180, "the study to complete")
    after = trial_rows(db)
    for old, new in zip(before[:2], after[:2], strict=True):
        assert dict(old) == dict(new)  # finished trials untouched
    assert after[2]["state"] == "abandoned"
    assert "interrupted" in after[2]["failure_message"]
    assert [t["source"] for t in after].count("retry of #2") == 1
    assert counted(after) == 5
    assert not [t for t in after if t["state"] in ("queued", "running")]
    assert engine_pids(scoot_home) == []


@pytest.mark.slow  # ~20-26 s: `make test-slow`, which CI runs
def test_two_workers_share_a_redis_queue(
    make_study: Callable[..., Path], scoot_home: Path, tmp_path: Path
) -> None:
    study = make_study(name="red", budget=6, duration=1.5, gpu_sets=("nodeA:0", "nodeB:0"))
    db = scoot_home / "scoot.db"
    with (
        redis_server(tmp_path) as url,
        worker(tmp_path, "--queue", url, "--gpu-sets", "nodeA:0", name="a"),
        worker(tmp_path, "--queue", url, "--gpu-sets", "nodeB:0", name="b"),
    ):
        scoot("tune", str(study), "--detach", "--queue", url)
        wait_for(lambda: study_state(db, "red") == "completed", 180, "the study to complete")
    trials = trial_rows(db)
    assert counted(trials) == 6
    assert {t["gpu_set"] for t in trials} == {"nodeA:0", "nodeB:0"}
    any_overlap, clashes = overlaps(trials)
    assert any_overlap and not clashes


def test_two_studies_never_share_a_gpu_set(
    make_study: Callable[..., Path], scoot_home: Path, tmp_path: Path
) -> None:
    """Both studies name GPU set 0; the worker has two threads, the set's lock serialises."""
    first = make_study(name="s1", budget=3, duration=1.5)
    second = make_study(name="s2", budget=3, duration=1.5)
    db = scoot_home / "scoot.db"
    with worker(tmp_path, "--threads", "2"):
        scoot("tune", str(first), "--detach")
        scoot("tune", str(second), "--detach")
        wait_for(
            lambda: study_state(db, "s1") == "completed" and study_state(db, "s2") == "completed",
            180,
            "both studies to complete",
        )
    trials = trial_rows(db)
    assert counted(trials) == 6
    assert {t["study_id"] for t in trials} == {1, 2}
    _, clashes = overlaps(trials)
    assert not clashes, clashes


@pytest.mark.slow  # ~20-26 s: `make test-slow`, which CI runs
def test_a_second_worker_takes_no_lock_the_first_holds(
    make_study: Callable[..., Path], scoot_home: Path, tmp_path: Path
) -> None:
    """A worker started beside a running one (same data directory, same set) flushes nothing:
    the set's flock is held by a live process, so the two never run two engines on it."""
    first = make_study(name="w1", budget=3, duration=1.5)
    second = make_study(name="w2b", budget=3, duration=1.5)
    db = scoot_home / "scoot.db"
    with worker(tmp_path, name="a"):
        scoot("tune", str(first), "--detach")
        wait_for(lambda: any(t["state"] == "running" for t in trial_rows(db)), 60, "a trial")
        with worker(tmp_path, name="b"):
            scoot("tune", str(second), "--detach")
            wait_for(
                lambda: (
                    study_state(db, "w1") == "completed" and study_state(db, "w2b") == "completed"
                ),
                180,
                "both studies to complete",
            )
    trials = trial_rows(db)
    assert counted(trials) == 6
    _, clashes = overlaps(trials)
    assert not clashes, clashes
