"""The Huey side: the queue, the one task, and the ``scoot worker`` consumer (only module that
imports huey).

A queue message is a trial id. The task that receives it claims the trial in the store, takes a
free GPU set (one Huey lock per set: a set runs one engine at a time, across every study and
every worker sharing the queue), evaluates, records, and asks :func:`control.advance` for the
next trials, one per free set. A worker serves the GPU sets it advertises (``--gpu-sets``); a
task for a study none of whose sets this worker serves, or whose sets are all busy, goes back
on the queue after a short delay, so with Redis each node runs the trials of its own sets.

Crash safety: the worker beats a heartbeat for each running trial. At start, and every few
seconds while running, it abandons trials whose heartbeat went stale (their worker died), kills
their engine process group if it is still alive, and queues a retry; locks of its own GPU sets
are flushed at start (a lock a dead worker held would block the set forever).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoot.domain import TrialState
from scoot.jobs import control
from scoot.jobs.driver import workload_of
from scoot.jobs.evaluate import HEARTBEAT_S, evaluate
from scoot.jobs.store import Store

RETRY_DELAY_S = 1.0
log = logging.getLogger("scoot.worker")


class QueueError(ValueError):
    """A ``--queue`` URL SCOOT cannot use."""


@dataclass(frozen=True)
class WorkerContext:
    """What a consumer process knows that a queue message does not carry."""

    data_dir: Path
    gpu_sets: tuple[str, ...] | None  # None: any set a study names (one machine)

    @property
    def store_path(self) -> Path:
        return self.data_dir / "scoot.db"


_context: WorkerContext | None = None


class Queue:
    """One Huey instance with SCOOT's task registered on it."""

    def __init__(self, url: str | None, data_dir: Path) -> None:
        self.huey = make_huey(url, data_dir)
        self.run_trial = self.huey.task(name="scoot.run_trial")(run_trial)

    def enqueue(self, trial_id: int) -> None:
        """Queue a task for ``trial_id`` (the :data:`control.Enqueue` callback)."""
        self.run_trial(trial_id)


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


def _lock_name(gpu_set: str) -> str:
    return f"gpu-set:{gpu_set}"


def run_trial(trial_id: int) -> str:
    """The task: evaluate one trial on a free GPU set of this worker, then queue the next."""
    from huey.exceptions import RetryTask, TaskLockedException

    ctx, queue = _context, _queue
    assert ctx is not None and queue is not None, "run_trial runs inside `scoot worker` only"
    huey = queue.huey
    store = Store(ctx.store_path)
    try:
        trial = store.trial(trial_id)
        study = store.study_by_id(trial.study_id)
        if trial.state is not TrialState.QUEUED:
            return f"trial {trial_id} is {trial.state.value}"
        if study.state != "running":
            return f"study {study.name} is {study.state}; trial {trial.number} stays queued"
        spec = control.spec_of(store, study.id)
        mine = [g for g in spec.gpu_sets if ctx.gpu_sets is None or g in ctx.gpu_sets]
        for gpu_set in mine:
            lock = huey.lock_task(_lock_name(gpu_set))
            try:
                lock.__enter__()
            except TaskLockedException:
                continue
            try:
                if not store.claim(trial_id, gpu_set):
                    return f"trial {trial_id} was taken by another task"
                log_dir = ctx.data_dir / "logs" / f"study-{study.id}"
                log_dir.mkdir(parents=True, exist_ok=True)
                claimed = store.trial(trial_id)
                state = evaluate(
                    store, spec, claimed, gpu_set, workload_of(spec, claimed), log_dir
                )
            finally:
                lock.__exit__(None, None, None)
            control.advance(store, study.id, queue.enqueue)
            return f"trial {trial.number} {state.value} on GPU set {gpu_set}"
        # Every set this worker serves is busy (or it serves none of this study's): later.
        raise RetryTask(delay=RETRY_DELAY_S)
    finally:
        store.close()


_queue: Queue | None = None


def janitor(ctx: WorkerContext, queue: Queue, stop: threading.Event) -> None:
    """Recover trials of dead workers and keep running studies fed, every few heartbeats."""
    while True:
        try:
            janitor_round(ctx.store_path, queue.enqueue)
        except Exception:  # the janitor must outlive a locked database or a bad row
            log.exception("janitor round failed")
        if stop.wait(2 * HEARTBEAT_S):
            return


def janitor_round(store_path: Path, enqueue: control.Enqueue) -> None:
    """One pass over the running studies: stale trials abandoned and retried, sets refilled."""
    store = Store(store_path)
    try:
        for study in store.studies():
            if study.state != "running":
                continue
            if control.recover_stale(store, study.id):
                log.warning("study %s: interrupted trials queued again", study.name)
                # Every queued trial gets a task; a trial is claimed once, extras are no-ops.
                for t in store.trials(study.id):
                    if t.state is TrialState.QUEUED:
                        enqueue(t.id)
            control.advance(store, study.id, enqueue)
    finally:
        store.close()


def run_worker(
    data_dir: Path,
    *,
    queue_url: str | None = None,
    gpu_sets: Sequence[str] | None = None,
    threads: int | None = None,
) -> None:
    """``scoot worker``: a Huey consumer with one thread per GPU set it serves."""
    global _context, _queue
    _context = WorkerContext(data_dir, tuple(gpu_sets) if gpu_sets else None)
    queue = _queue = Queue(queue_url, data_dir)
    huey = queue.huey
    # Locks a dead worker held on the sets this one serves; other workers' are left alone.
    huey.flush_locks(*(_lock_name(g) for g in gpu_sets or _study_gpu_sets(_context)))
    workers = threads or max(1, len(gpu_sets or ()) or int(os.environ.get("SCOOT_WORKERS", 4)))
    stop = threading.Event()
    janitor_thread = threading.Thread(target=janitor, args=(_context, queue, stop), daemon=True)
    janitor_thread.start()
    consumer = huey.create_consumer(workers=workers, worker_type="thread", periodic=False)
    try:
        consumer.run()
    finally:
        stop.set()


def _study_gpu_sets(ctx: WorkerContext) -> list[str]:
    """Every GPU set any study in the store names (a one-machine worker serves them all)."""
    if not ctx.store_path.exists():
        return []
    store = Store(ctx.store_path)
    try:
        return sorted({g for s in store.studies() for g in control.spec_of(store, s.id).gpu_sets})
    finally:
        store.close()
