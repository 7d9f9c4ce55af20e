"""Studies run by workers: what to queue next, operator commands, and crash recovery.

Everything here reads and writes the store only; queueing is a callback (``enqueue(trial_id)``)
so this module does not know Huey. The store is the source of truth: a queue message carries a
trial id and nothing else, and any state the queue loses (a worker killed, a Redis flushed) is
rebuilt from the store by :func:`resume`.

Study states: ``active`` (run in the foreground by ``scoot tune``), ``running`` (by workers),
``paused``, ``cancelled``, ``completed``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from scoot.domain import TrialState
from scoot.engine.launcher import group_alive, kill_group
from scoot.jobs.driver import add_retests, default_suggester, enqueue_trials, space_of
from scoot.jobs.evaluate import HEARTBEAT_S
from scoot.jobs.store import Store, StoreError, TrialRow
from scoot.study import StudySpec

STALE_S = 5 * HEARTBEAT_S
"""A running trial whose heartbeat is older than this has lost its worker."""

Enqueue = Callable[[int], None]


@contextmanager
def study_mutex(store_path: Path, study_id: int) -> Iterator[None]:
    """A short exclusive section per study (deciding what to queue next), across processes.

    Not :class:`scoot.jobs.driver.StudyLock`, which a foreground driver holds for its whole run:
    this one waits, and a worker holds it only while it reads the store and queues trials.
    """
    path = store_path.parent / "locks" / f"study-{study_id}.advance"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def spec_of(store: Store, study_id: int) -> StudySpec:
    row = store.study_by_id(study_id)
    return StudySpec.from_json(row.spec_json, row.source)


def counted(trials: list[TrialRow]) -> int:
    return sum(t.counts for t in trials)


def advance(store: Store, study_id: int, enqueue: Enqueue) -> list[int]:
    """Queue trials for the study's free GPU sets (k = number of sets, §4.6) until the budget
    is spent; mark the study completed when it is. Returns the trial ids queued."""
    with study_mutex(store.path, study_id):
        row = store.study_by_id(study_id)
        if row.state != "running":
            return []
        spec = StudySpec.from_json(row.spec_json, row.source)
        trials = store.trials(study_id)
        done = counted(trials)
        in_flight = [t for t in trials if t.state in (TrialState.QUEUED, TrialState.RUNNING)]
        if done >= spec.budget and not in_flight:
            retests = add_retests(store, study_id, spec, trials)
            if not retests:
                store.set_study_state(study_id, "completed")
                store.event(study_id, None, "completed", f"budget of {spec.budget} spent")
                return []
            new = retests
        else:
            new = _next_trials(store, study_id, spec, trials, done, in_flight)
    for t in new:
        enqueue(t.id)
    return [t.id for t in new]


def _next_trials(
    store: Store,
    study_id: int,
    spec: StudySpec,
    trials: list[TrialRow],
    done: int,
    in_flight: list[TrialRow],
) -> list[TrialRow]:
    want = min(len(spec.gpu_sets), spec.budget - done) - len(in_flight)
    if want <= 0:
        return []
    space = space_of(spec)
    return enqueue_trials(
        store,
        study_id,
        spec,
        space,
        default_suggester(spec, space),
        trials,
        want,
        [t.config for t in in_flight],
    )


def recover_stale(store: Store, study_id: int, stale_s: float = STALE_S) -> list[TrialRow]:
    """Abandon running trials whose worker stopped beating, stop their engines, queue retries."""
    out = []
    now = time.time()
    with study_mutex(store.path, study_id):
        for t in store.trials(study_id):
            if t.state is not TrialState.RUNNING:
                continue
            if t.heartbeat_at is not None and now - t.heartbeat_at < stale_s:
                continue
            killed = bool(t.engine_pgid) and group_alive(t.engine_pgid or 0)
            if killed and t.engine_pgid:
                kill_group(t.engine_pgid, grace=5.0)
            try:
                store.finish(
                    t.id,
                    TrialState.ABANDONED,
                    message="interrupted: the worker running it stopped beating"
                    + ("; its engine was still running and was stopped" if killed else ""),
                )
            except StoreError:
                continue  # it finished meanwhile
            store.event(study_id, t.id, "recovered", f"trial {t.number} was interrupted")
            if not t.stop_requested:
                store.add_trial(study_id, t.config, f"retry of #{t.number}")
            out.append(t)
    return out


def start(store: Store, study_id: int, enqueue: Enqueue) -> list[int]:
    """Hand a study to the workers (``scoot tune --detach``, ``scoot study resume``): every
    queued trial gets a task again (duplicates are harmless: a trial is claimed once), and free
    GPU sets get new ones."""
    row = store.study_by_id(study_id)
    if row.state == "cancelled":
        raise StoreError(f"study '{row.name}' was cancelled; start it again with --new")
    recover_stale(store, study_id)
    if row.state != "completed":
        store.set_study_state(study_id, "running")
    queued = [t.id for t in store.trials(study_id) if t.state is TrialState.QUEUED]
    for tid in queued:
        enqueue(tid)
    return queued + advance(store, study_id, enqueue)


def resume(store: Store, study_id: int, enqueue: Enqueue) -> list[int]:
    row = store.study_by_id(study_id)
    store.event(study_id, None, "resumed", f"study '{row.name}' resumed")
    return start(store, study_id, enqueue)


def pause(store: Store, study_id: int, *, now: bool = False) -> list[TrialRow]:
    """No new trials start; running ones finish, or with ``now`` are stopped and abandoned
    (never counted as crashes). Returns the trials stopped."""
    row = store.study_by_id(study_id)
    if row.state in ("cancelled", "completed"):
        raise StoreError(f"study '{row.name}' is {row.state}; there is nothing to pause")
    store.set_study_state(study_id, "paused")
    stopped = _stop_running(store, study_id) if now else []
    how = "; running trials stopped" if now else "; running trials will finish"
    store.event(study_id, None, "paused", f"study '{row.name}' paused{how}")
    return stopped


def cancel(store: Store, study_id: int) -> list[TrialRow]:
    """Stop everything and keep every result: running trials are stopped and abandoned,
    queued ones dropped."""
    row = store.study_by_id(study_id)
    store.set_study_state(study_id, "cancelled")
    stopped = _stop_running(store, study_id)
    for t in store.trials(study_id):
        if t.state is TrialState.QUEUED:
            store.request_stop(t.id)
            # A worker may claim it meanwhile; its stop flag abandons it then.
            with contextlib.suppress(StoreError):
                store.finish(t.id, TrialState.ABANDONED, message="study cancelled")
    store.event(study_id, None, "cancelled", f"study '{row.name}' cancelled; results kept")
    return stopped


def _stop_running(store: Store, study_id: int) -> list[TrialRow]:
    stopped = []
    for t in store.trials(study_id):
        if t.state is TrialState.RUNNING:
            store.request_stop(t.id)
            if t.engine_pgid and group_alive(t.engine_pgid):
                kill_group(t.engine_pgid, grace=3.0)
            stopped.append(t)
    return stopped
