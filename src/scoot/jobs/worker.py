"""The Huey side: the queue, its two tasks, and the ``scoot worker`` consumer (the only module
that imports huey).

A queue message is an id. ``scoot.run_trial`` runs :func:`scoot.jobs.tasks.run_trial` (claim,
take a free GPU set of this worker under its ``flock``, evaluate, record, dispatch an advance);
``scoot.advance`` runs :func:`scoot.jobs.tasks.advance` (the policy and the optimizer). A
worker serves the GPU sets it advertises (``--gpu-sets``); a trial none of whose sets this
worker serves, or whose sets are all busy, goes back on the queue after a short delay, so with
Redis each node runs the trials of its own sets.

Crash safety: the worker beats a heartbeat for each running trial. Every few seconds it
abandons trials whose process died (on this host: the recorded pid and start time; on another:
a stale heartbeat), stops their engines where they run here, and queues a retry. GPU-set locks
are ``flock`` files: the kernel releases a dead worker's, and a new worker flushes nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scoot.domain import StudyState
from scoot.engine.launcher import ProcessRef
from scoot.jobs import tasks
from scoot.jobs.evaluate import HEARTBEAT_S

RETRY_DELAY_S = 1.0
log = logging.getLogger("scoot.worker")


class QueueError(ValueError):
    """A ``--queue`` URL SCOOT cannot use."""


_site: tasks.Site | None = None


class Queue:
    """One Huey instance with SCOOT's two tasks registered on it: a :class:`tasks.Dispatch`."""

    def __init__(self, url: str | None, data_dir: Path) -> None:
        self.huey = make_huey(url, data_dir)
        self._run = self.huey.task(name="scoot.run_trial")(run_trial_task)
        self._advance = self.huey.task(name="scoot.advance")(advance_task)

    def run(self, trial_id: int) -> None:
        self._run(trial_id)

    def advance(self, study_id: int) -> None:
        self._advance(study_id)


def make_huey(url: str | None, data_dir: Path) -> Any:
    """SqliteHuey in the data directory by default; RedisHuey for ``redis://host:port/db``."""
    from huey import RedisHuey, SqliteHuey

    if url is None or url == "sqlite":
        data_dir.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey("scoot", filename=str(data_dir / "queue.db"))
    elif url.startswith("sqlite:///"):
        huey = SqliteHuey("scoot", filename=url.removeprefix("sqlite:///"))
    elif url.startswith("redis://"):
        try:
            huey = RedisHuey("scoot", url=url)
        except ImportError as exc:
            raise QueueError(f"--queue {url}: the redis package is missing ({exc})") from None
    else:
        raise QueueError(
            f"--queue {url!r}: expected redis://HOST:PORT/DB or sqlite:///PATH (default: "
            "a SQLite queue in the data directory)"
        )
    return huey


def run_trial_task(trial_id: int) -> str:
    """The task: evaluate one trial on a free GPU set of this worker."""
    from huey.exceptions import RetryTask

    site, queue = _site, _queue
    assert site is not None and queue is not None, "tasks run inside `scoot worker` only"
    try:
        done = tasks.run_trial(site, trial_id, queue)
    except tasks.Busy:
        # Every set this worker serves is busy (or it serves none of this study's): later.
        raise RetryTask(delay=RETRY_DELAY_S) from None
    if done is None:
        return f"trial {trial_id}: nothing to run"
    return f"trial {done.number} {done.state.value} on GPU set {done.gpu_set}"


def advance_task(study_id: int) -> str:
    """The task: what the study does next (the optimizer runs here, on a worker)."""
    site, queue = _site, _queue
    assert site is not None and queue is not None, "tasks run inside `scoot worker` only"
    return f"study {study_id}: queued {tasks.advance(site, study_id, queue)}"


_queue: Queue | None = None


def janitor(site: tasks.Site, queue: Queue, stop: threading.Event) -> None:
    """Recover trials of dead processes and keep running studies fed, every few heartbeats."""
    while True:
        try:
            janitor_round(site, queue)
        except Exception:  # the janitor must outlive a locked database or a bad row
            log.exception("janitor round failed")
        if stop.wait(2 * HEARTBEAT_S):
            return


def janitor_round(site: tasks.Site, queue: tasks.Dispatch) -> None:
    """One pass over the studies the workers run: interrupted trials abandoned and retried,
    and an advance (a no-op unless a GPU set is free: it rebuilds what a lost message held)."""
    store = site.open_store()
    try:
        store.worker_seen(ProcessRef.of(os.getpid()), site.gpu_sets or ())
        running = [s for s in store.studies() if s.state is StudyState.RUNNING]
        for study in running:
            if tasks.recover(store, study.id, queue):
                log.warning("study %s: interrupted trials queued again", study.name)
    finally:
        store.close()
    for study in running:
        tasks.advance(site, study.id, queue)


def run_worker(
    data_dir: Path,
    *,
    queue_url: str | None = None,
    gpu_sets: Sequence[str] | None = None,
    threads: int | None = None,
    store: str | None = None,
) -> None:
    """``scoot worker``: a Huey consumer with one thread per GPU set it serves (and one more,
    so an advance task never waits behind evaluations). ``store``: a PostgreSQL store's URL
    (default: the SQLite file in ``data_dir``)."""
    global _site, _queue
    sets = tuple(gpu_sets) if gpu_sets else None
    _site = tasks.Site(data_dir, StudyState.RUNNING, sets, store)
    _site.open_store().close()  # an unreachable store fails here, in one line
    queue = _queue = Queue(queue_url, data_dir)
    workers = threads or 1 + max(1, len(gpu_sets or ()) or int(os.environ.get("SCOOT_WORKERS", 4)))
    stop = threading.Event()
    janitor_thread = threading.Thread(target=janitor, args=(_site, queue, stop), daemon=True)
    janitor_thread.start()
    consumer = queue.huey.create_consumer(workers=workers, worker_type="thread", periodic=False)
    try:
        consumer.run()
    finally:
        stop.set()
        janitor_thread.join(timeout=10)
        last = _site.open_store()
        try:
            last.worker_gone(ProcessRef.of(os.getpid()))
        finally:
            last.close()
