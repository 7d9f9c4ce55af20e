"""One study loop: a foreground `scoot tune` obeys pause and cancel typed elsewhere, shares GPU-set
locks with other runs, and workers pause a study whose client falls behind, as the foreground does.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers import counted, engine_pids, overlaps, study_state, trial_rows, wait_for, worker

SCOOT = [sys.executable, "-m", "scoot"]


def scoot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SCOOT, *args], capture_output=True, text=True, timeout=240)


@contextmanager
def tune(*args: str) -> Iterator[subprocess.Popen[str]]:
    """A foreground `scoot tune` in the background of the test."""
    proc = subprocess.Popen(
        [*SCOOT, "tune", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def event_times(db: Path, kind: str) -> list[float]:
    conn = sqlite3.connect(db, timeout=10)
    try:
        rows = conn.execute("SELECT ts FROM events WHERE kind = ? ORDER BY id", (kind,))
        return [float(r[0]) for r in rows]
    finally:
        conn.close()


def running_rows(db: Path) -> list[sqlite3.Row]:
    return [t for t in trial_rows(db) if t["state"] == "running"]


def running(db: Path) -> list[int]:
    return [t["number"] for t in running_rows(db)]


def test_a_foreground_run_obeys_pause_then_resume_here(
    make_study: Callable[..., Path], scoot_home: Path
) -> None:
    study = make_study(name="fg", budget=4, duration=2.0)
    db = scoot_home / "scoot.db"
    with tune(str(study)) as fg:
        wait_for(lambda: bool(running(db)), 60, "a trial to run")
        victim = running(db)[0]
        assert scoot("study", "pause", "fg").returncode == 0
        _, err = fg.communicate(timeout=60)
        assert fg.returncode == 2, err
        assert "study 'fg' is paused" in err
    rows = trial_rows(db)
    # The trial running at the pause finished and counts; nothing started after the pause.
    assert rows[victim]["state"] in ("completed", "failed")
    assert all(t["state"] in ("completed", "failed") for t in rows if t["started_at"])
    paused_at = event_times(db, "paused")[0]
    assert all(t["started_at"] < paused_at for t in rows if t["started_at"])
    again = scoot("tune", str(study))
    assert again.returncode == 2 and "--resume" in again.stderr
    done = scoot("tune", str(study), "--resume")
    assert done.returncode == 0, done.stderr
    assert study_state(db, "fg") == "completed"
    assert counted(trial_rows(db)) == 4


def test_a_foreground_run_obeys_cancel(make_study: Callable[..., Path], scoot_home: Path) -> None:
    study = make_study(name="fgc", budget=6, duration=4.0)
    db = scoot_home / "scoot.db"
    with tune(str(study)) as fg:
        wait_for(lambda: bool(running(db)), 60, "a trial to run")
        victim = running(db)[0]
        assert scoot("study", "cancel", "fgc").returncode == 0
        _, err = fg.communicate(timeout=60)
        assert fg.returncode == 2 and "is cancelled" in err, err
    stopped = trial_rows(db)[victim]
    assert stopped["state"] == "abandoned" and stopped["abandon_cause"] == "operator"
    assert not [t for t in trial_rows(db) if t["state"] in ("queued", "running")]
    refused = scoot("tune", str(study))
    assert refused.returncode == 2 and "cancelled" in refused.stderr


def test_two_foreground_studies_never_share_a_gpu_set(
    make_study: Callable[..., Path], scoot_home: Path
) -> None:
    """Both name GPU set 0 and run at once in two processes: the set's lock serialises."""
    first, second = make_study(name="a", budget=3), make_study(name="b", budget=3)
    db = scoot_home / "scoot.db"
    with tune(str(first)) as one, tune(str(second)) as two:
        for proc in (one, two):
            _, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err
    trials = trial_rows(db)
    assert counted(trials) == 6 and {t["study_id"] for t in trials} == {1, 2}
    _, clashes = overlaps(trials)
    assert not clashes, clashes


def test_workers_pause_a_study_whose_client_falls_behind(
    make_study: Callable[..., Path], scoot_home: Path, tmp_path: Path
) -> None:
    """The same policy as the foreground: three invalid runs in a row pause the study."""
    study = make_study(name="slow", budget=6, duration=1.0, lateness=0.0001)
    db = scoot_home / "scoot.db"
    with worker(tmp_path):
        assert scoot("tune", str(study), "--detach").returncode == 0
        wait_for(lambda: study_state(db, "slow") == "paused", 120, "the study to pause")
        wait_for(lambda: not running(db), 60, "running trials to finish")
    rows = trial_rows(db)
    invalid = [t for t in rows if t["abandon_cause"] == "invalid_run"]
    assert len(invalid) == 3, [dict(t) for t in rows]
    assert counted(rows) == 0  # an invalid run measured the client, not the config
    # The config is owed a real run: queued again, for when the study resumes.
    queued = [t for t in rows if t["state"] == "queued"]
    assert len(queued) == 1 and queued[0]["config_json"] == invalid[-1]["config_json"]
    status = scoot("study", "status", "slow")
    assert "fell behind its schedule in 3 runs in a row" in status.stdout


def test_sigterm_leaves_nothing_running_and_nothing_to_recover(
    make_study: Callable[..., Path], scoot_home: Path
) -> None:
    """A stopped foreground run abandons its trial at once (never counted), queues it again
    and stops its engine: no engine process is left, and the store holds no running trial."""
    study = make_study(name="term", budget=4, duration=4.0)
    db = scoot_home / "scoot.db"
    with tune(str(study)) as fg:
        wait_for(lambda: any(t["engine_pgid"] for t in running_rows(db)), 60, "an engine")
        victim = running(db)[0]
        fg.send_signal(signal.SIGTERM)
        _, err = fg.communicate(timeout=60)
        assert fg.returncode == 130, err
    rows = trial_rows(db)
    assert rows[victim]["state"] == "abandoned"
    assert rows[victim]["abandon_cause"] == "interrupted"
    assert not [t for t in rows if t["state"] == "running"]
    assert [t["config_json"] for t in rows if t["state"] == "queued"] == [
        rows[victim]["config_json"]
    ]
    assert engine_pids(scoot_home) == []


def test_a_study_where_every_config_failed_is_not_a_success(
    make_study: Callable[..., Path], scoot_home: Path
) -> None:
    path = make_study(name="allfail", budget=2)
    # No KV cache fits a million-token context: every launch fails at start-up.
    path.write_text(path.read_text().replace('"4096"', '"1000000"'))
    out = scoot("tune", str(path))
    assert out.returncode == 1, out.stderr
    assert "no configuration completed its stress test" in out.stdout
