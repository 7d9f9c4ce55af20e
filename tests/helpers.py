"""Helpers shared by the integration tests: the store's rows, waiting, engine processes."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path


def engine_pids(home: Path) -> list[int]:
    """Embedded-engine processes started for this test's SCOOT_HOME."""
    found = []
    marker = f"SCOOT_HOME={home}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            env = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"scoot.engine.embedded" in cmd and marker in env.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def trial_rows(db: Path) -> list[sqlite3.Row]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM trials ORDER BY number").fetchall()
    finally:
        conn.close()


def wait_for(pred: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {what}")
