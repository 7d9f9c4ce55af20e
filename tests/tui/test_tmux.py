"""The TUI in a real terminal (tmux) while a worker runs a study: rows appear, pause works."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from helpers import looked_at_since, wait_for, worker
from helpers import trial_rows as store_rows


def capture(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
    ).stdout


ROW = r"^\s*\d+[*◆m]*\s+(?:-|\d+\.\d+)\s"
"""A row of the trials table: a trial number (and its marks), then req/s or ``-``."""


def trial_rows(screen: str) -> int:
    """Rows of the trials table: a trial number, its metrics and state, then a source."""
    return len(re.findall(ROW + r".*\b(default|sobol|scoot|retry)", screen, re.M))


def running_rows(screen: str) -> int:
    return len(re.findall(ROW + r".*\srunning\s", screen, re.M))


def test_tui_in_tmux_watches_a_worker_and_pauses(
    make_study: Callable[..., Path], scoot_home: Path, tmp_path: Path
) -> None:
    tmux = shutil.which("tmux")
    assert tmux, "tmux is missing: apt-get install tmux"
    study = make_study(name="live", budget=8, duration=2.0)
    session = f"scoot-test-{os.getpid()}"
    with worker(tmp_path), tmux_session(tmux, session):
        subprocess.run(
            [sys.executable, "-m", "scoot", "tune", str(study), "--detach"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                tmux, "new-session", "-d", "-s", session, "-x", "120", "-y", "32",
                "-e", f"SCOOT_HOME={scoot_home}",
                f"{sys.executable} -m scoot tui",
            ],
            check=True,
        )  # fmt: skip
        wait_for(lambda: "live" in capture(session), 30, "the study row in the TUI")
        subprocess.run([tmux, "send-keys", "-t", session, "Enter"], check=True)
        wait_for(lambda: trial_rows(capture(session)) >= 1, 30, "the trials table")
        first = trial_rows(capture(session))
        wait_for(lambda: trial_rows(capture(session)) > first + 1, 90, "the table to grow")
        # The live path of the decision banner and of the workers panel.
        wait_for(lambda: "deploy #" in capture(session), 30, "the winner's command on top")
        subprocess.run([tmux, "send-keys", "-t", session, "4"], check=True)
        wait_for(lambda: bool(re.search(r"worker \S+ serving", capture(session))), 30, "a worker")
        assert "no worker is alive" not in capture(session)
        subprocess.run([tmux, "send-keys", "-t", session, "1"], check=True)
        subprocess.run([tmux, "send-keys", "-t", session, "p"], check=True)
        wait_for(lambda: "[paused]" in capture(session), 15, "the paused state on screen")
        db = scoot_home / "scoot.db"

        def busy() -> list[Any]:
            return [t for t in store_rows(db) if t["state"] in ("queued", "running")]

        wait_for(lambda: not busy(), 60, "running trials to finish")
        ended = max(t["ended_at"] for t in store_rows(db) if t["ended_at"])
        wait_for(looked_at_since(db, "live", ended), 30, "a worker to look at the paused study")
        rows = store_rows(db)
        assert not [t for t in rows if t["state"] in ("queued", "running")]
        wait_for(lambda: trial_rows(capture(session)) == len(rows), 30, "the screen to settle")
        # A row's state cell follows on the next refresh: wait for it, not for a fixed time.
        wait_for(lambda: not running_rows(capture(session)), 30, "no row left running")
        assert "[paused]" in capture(session)


@contextmanager
def tmux_session(tmux: str, name: str) -> Iterator[None]:
    try:
        yield
    finally:
        subprocess.run([tmux, "kill-session", "-t", name], capture_output=True)
