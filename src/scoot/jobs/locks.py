"""Locks shared by every executor and command: ``flock`` files in the data directory's ``locks/``.

The kernel releases an ``flock`` when its holder dies, so a lock is never stale and never needs
flushing: a second ``scoot worker`` starting beside a first one takes nothing from it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class FileLock:
    """An exclusive ``flock`` on a file of the data directory's ``locks/``: the kernel releases
    it when its holder dies, so a lock is never stale and never needs flushing."""

    def __init__(self, data_dir: Path, name: str) -> None:
        self.path = data_dir / "locks" / f"{name}.lock"
        self.fd: int | None = None

    def acquire(self, *, wait: bool = False) -> bool:
        """Take the lock (or wait for it); False if another open file holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def holder(self) -> str:
        """The pid written by the holder ('' if none is known)."""
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""


def gpu_set_lock(data_dir: Path, gpu_set: str) -> FileLock:
    """The lock of one GPU set: one engine at a time, over every study and executor."""
    return FileLock(data_dir, "gpu-set-" + gpu_set.replace("/", "_"))


def foreground_lock(data_dir: Path, study_id: int) -> FileLock:
    """Held by the one foreground ``scoot tune`` of a study for its whole run."""
    return FileLock(data_dir, f"study-{study_id}")


@contextmanager
def study_mutex(data_dir: Path, study_id: int) -> Iterator[None]:
    """A short exclusive section per study (deciding what to queue next), across processes
    and threads (each entry opens its own file, and flock is per open file)."""
    lock = FileLock(data_dir, f"study-{study_id}.advance")
    lock.acquire(wait=True)
    try:
        yield
    finally:
        lock.release()
