"""The study's two tasks, run the same way by every executor: run a trial; advance a study.

A task message is an id and nothing else; the store is the source of truth. ``scoot worker``
runs these tasks from a Huey queue (:mod:`scoot.jobs.worker`); a foreground ``scoot tune``
runs them in-process (:mod:`scoot.jobs.foreground`). Both hold the same per-GPU-set locks (an
``flock`` per set in the data directory, released by the kernel when its holder dies), so two
studies, or a worker and a foreground run, never start two engines on one set.

- :func:`run_trial` claims a queued trial, takes a free GPU set of the executor, evaluates,
  records, and dispatches an advance of its study;
- :func:`advance` asks :mod:`scoot.jobs.policy` what the study does next and does it: queue the
  optimizer's suggestions (:mod:`scoot.jobs.suggest`) or the winner's re-tests, pause, or
  complete; the new trials are dispatched;
- :func:`recover` abandons trials whose process died and queues them again: on this host, at
  once when the recorded process is gone; elsewhere, when its heartbeat went stale. Only the
  host that started an engine signals it, and only if it is still the process it started.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from scoot.domain import AbandonCause, EventKind, StudyState, TrialState
from scoot.engine.launcher import ProcessRef
from scoot.jobs import policy
from scoot.jobs.evaluate import HEARTBEAT_S, Workload, build_workload, evaluate
from scoot.jobs.locks import gpu_set_lock
from scoot.jobs.store import BEHIND, Store, StoreError, TrialRow, retry_source
from scoot.optim.protocol import Suggester
from scoot.study import StudySpec

STALE_S = 5 * HEARTBEAT_S
"""A running trial of another host whose heartbeat is older than this has lost its process."""


class Dispatch(Protocol):
    """Where an executor's tasks go: a Huey queue, or the foreground's in-process queue."""

    def run(self, trial_id: int) -> None: ...

    def advance(self, study_id: int) -> None: ...


class Busy(Exception):
    """Every GPU set this executor serves for the trial's study runs an engine: try later."""


@dataclass(frozen=True, slots=True)
class Site:
    """What an executor knows that a task message does not carry: the data directory, the GPU
    sets it serves (None: any set a study names), and the study state it runs (workers run
    ``running`` studies, the foreground ``active`` ones), so one never acts for the other."""

    data_dir: Path
    runs: StudyState
    gpu_sets: tuple[str, ...] | None = None
    store: str | None = None
    """A PostgreSQL store's URL; None: the SQLite file in the data directory."""

    @property
    def store_location(self) -> str | Path:
        return self.store or self.data_dir / "scoot.db"

    def open_store(self) -> Store:
        return Store(self.store_location, self.data_dir)

    def serves(self, gpu_set: str) -> bool:
        return self.gpu_sets is None or gpu_set in self.gpu_sets

    def log_dir(self, study_id: int) -> Path:
        path = self.data_dir / "logs" / f"study-{study_id}"
        path.mkdir(parents=True, exist_ok=True)
        return path


def spec_of(store: Store, study_id: int) -> StudySpec:
    row = store.study_by_id(study_id)
    return StudySpec.from_json(row.spec_json, row.source)


def facts_of(spec: StudySpec) -> policy.StudyFacts:
    return policy.StudyFacts(
        spec.budget,
        len(spec.gpu_sets),
        spec.stress.robustness_runs,
        spec.objectives,
        spec.slo,
        spec.stress.retest_top,
        spec.variant != "paper",
    )


def workload_of(spec: StudySpec, trial: TrialRow) -> Workload:
    """A trial's stress workload: the study's, or for a re-test, its shuffled arrival order."""
    return build_workload(spec, order_seed=trial.retest or 0)


def run_trial(
    site: Site,
    trial_id: int,
    dispatch: Dispatch,
    *,
    on_start: Callable[[TrialRow], None] | None = None,
) -> TrialRow | None:
    """Run one queued trial to its outcome on a free GPU set of ``site``; then dispatch an
    advance of its study. Returns the finished trial, or None when there was nothing to run
    (finished, taken by another task, or its study not one ``site`` runs now).

    Raises:
        Busy: every GPU set of the study that ``site`` serves is running an engine.
    """
    store = site.open_store()
    try:
        trial = store.trial(trial_id)
        if trial.state is not TrialState.QUEUED:
            return None
        study = store.study_by_id(trial.study_id)
        if study.state is not site.runs:
            return None  # stays queued: paused, or run by the other kind of executor
        spec = StudySpec.from_json(study.spec_json, study.source)
        for gpu_set in (g for g in spec.gpu_sets if site.serves(g)):
            lock = gpu_set_lock(site.data_dir, gpu_set)
            if not lock.acquire():
                continue
            try:
                if not store.claim(trial_id, gpu_set, ProcessRef.of(os.getpid())):
                    return None
                claimed = store.trial(trial_id)
                if on_start is not None:
                    on_start(claimed)
                _evaluate_or_stop(store, spec, claimed, gpu_set, site.log_dir(study.id))
            finally:
                lock.release()
            done = store.trial(trial_id)
            if done.abandon_cause is AbandonCause.INVALID_RUN and done.retest is None:
                # It measured the client, not the config: the config is owed a real run. It
                # starts now unless this run is the one that pauses the study (then on resume).
                # evaluate() queued it with the outcome (Store.finish's ``retry``).
                retry = store.queued_retry(done) or queue_retry(store, done, BEHIND)
                now = store.study_by_id(study.id)
                step = policy.plan(
                    now.state, facts_of(spec), store.trials(study.id), now.state_since
                )
                if step.pause is None:
                    dispatch.run(retry.id)
            dispatch.advance(study.id)
            return done
        raise Busy(f"trial {trial.number}: no free GPU set")
    finally:
        store.close()


def _evaluate_or_stop(
    store: Store, spec: StudySpec, trial: TrialRow, gpu_set: str, log_dir: Path
) -> None:
    """Evaluate; a trial that cannot even be built (a trace unusable for its arrival mode, an
    engine command SCOOT cannot fill) would fail the same way for every config: it is
    abandoned, and the study pauses once with the reason, instead of retrying forever."""
    try:
        evaluate(store, spec, trial, gpu_set, workload_of(spec, trial), log_dir)
    except StoreError:
        raise  # the trial was settled elsewhere (an interrupted run abandoned it): not the study's
    except Exception as exc:
        message = f"trial {trial.number} could not run: {exc}"[:1000]
        with contextlib.suppress(StoreError):
            store.finish(trial.id, TrialState.ABANDONED, message=message, cause=AbandonCause.ERROR)
        if store.set_study_state(trial.study_id, StudyState.PAUSED, only_from=policy.LIVE):
            store.event(trial.study_id, trial.id, EventKind.ERROR, message + "; study paused")


def advance(
    site: Site,
    study_id: int,
    dispatch: Dispatch,
    suggester: Callable[[StudySpec], Suggester] | None = None,
) -> list[int]:
    """Do what the policy says the study does next; returns the trial ids dispatched.

    The optimizer runs here (in a worker or the foreground executor), never in the CLI or the
    TUI. ``suggester`` makes the study's optimizer (default: the paper's, SOBO or MOBO).
    """
    store = site.open_store()
    try:
        with store.study_mutex(study_id):
            new = _advance_locked(store, site, study_id, suggester)
            store.touch_advanced(study_id)  # once decided: "it was looked at since then"
    finally:
        store.close()
    for t in new:
        dispatch.run(t.id)
    return [t.id for t in new]


def _advance_locked(
    store: Store,
    site: Site,
    study_id: int,
    suggester: Callable[[StudySpec], Suggester] | None,
) -> list[TrialRow]:
    """The policy's step, done: trials dropped, the study paused or completed, re-tests and
    suggestions queued (the new trials are returned for dispatch)."""
    row = store.study_by_id(study_id)
    if row.state is not site.runs:
        return []
    spec = StudySpec.from_json(row.spec_json, row.source)
    trials = store.trials(study_id)
    step = policy.plan(row.state, facts_of(spec), trials, row.state_since)
    for tid in step.drop:
        with contextlib.suppress(StoreError):
            store.finish(
                tid,
                TrialState.ABANDONED,
                message="the budget was spent before it ran",
                cause=AbandonCause.BUDGET_SPENT,
            )
    if step.pause is not None:
        if store.set_study_state(study_id, StudyState.PAUSED, only_from=(site.runs,)):
            store.event(study_id, None, EventKind.PAUSED, step.pause)
        return []
    if step.complete:
        store.set_study_state(study_id, StudyState.COMPLETED, only_from=(site.runs,))
        store.event(study_id, None, EventKind.STUDY_COMPLETED, f"budget of {spec.budget} spent")
        return []
    new = [
        store.add_trial(study_id, r.config, r.source, retest=r.seed, retest_of=r.of)
        for r in step.retests
    ]
    if step.suggest:
        from scoot.jobs.suggest import default_suggester, enqueue_trials

        space = spec.space()
        make = suggester or (lambda s: default_suggester(s, space))
        try:
            new += enqueue_trials(
                store,
                study_id,
                spec,
                space,
                make(spec),
                trials,
                step.suggest,
                step.pending,
                first=step.first,
            )
        except StoreError as exc:  # nothing left to try: say so once, do not spin
            if store.set_study_state(study_id, StudyState.PAUSED, only_from=(site.runs,)):
                store.event(study_id, None, EventKind.ERROR, f"{exc}; study paused")
    return new


def recover(
    store: Store, study_id: int, dispatch: Dispatch | None = None, *, stale_s: float = STALE_S
) -> list[TrialRow]:
    """Abandon running trials whose process is gone, stop their engines, queue retries.

    On this host a trial's process is gone when the recorded one no longer runs (pid and
    start time); for another host's trial, when its heartbeat is older than ``stale_s``.
    A re-test is not retried here: the policy queues a missing re-test again itself.
    Returns the trials abandoned; each retry is dispatched.
    """
    out = []
    now = time.time()
    with store.study_mutex(study_id):
        for t in store.trials(study_id):
            if t.state is not TrialState.RUNNING or not _process_gone(t, now, stale_s):
                continue
            stopped = t.engine.stop_group(grace=5.0)
            where = "" if t.runner.local() else f" on host {t.runner.host}"
            try:
                store.finish(
                    t.id,
                    TrialState.ABANDONED,
                    message=f"interrupted: the process running it{where} died"
                    + ("; its engine was still running and was stopped" if stopped else ""),
                    cause=AbandonCause.INTERRUPTED,
                )
            except StoreError:
                continue  # it finished meanwhile
            store.event(study_id, t.id, EventKind.RECOVERED, f"trial {t.number} was interrupted")
            out.append(t)
            if not t.stop_requested and t.retest is None:
                retry = queue_retry(store, t)
                if dispatch is not None:
                    dispatch.run(retry.id)
    return out


def abandon_mine(
    store: Store, study_id: int, why: str, dispatch: Dispatch | None = None
) -> list[int]:
    """This process is stopping (Ctrl-C, SIGTERM, SIGHUP): its running trials are abandoned
    now (never counted), queued again, and their engines stopped, so nothing is left running
    and the next run starts clean. Returns the trial numbers abandoned."""
    me = os.getpid()
    out = []
    for t in store.trials(study_id):
        if t.state is not TrialState.RUNNING or not t.runner.local() or t.runner.pid != me:
            continue
        with contextlib.suppress(StoreError):
            store.finish(t.id, TrialState.ABANDONED, message=why, cause=AbandonCause.INTERRUPTED)
            store.event(study_id, t.id, EventKind.RECOVERED, f"trial {t.number}: {why}")
            out.append(t.number)
            if not t.stop_requested and t.retest is None:
                retry = queue_retry(store, t)
                if dispatch is not None:
                    dispatch.run(retry.id)
        t.engine.stop_group(grace=5.0)
    return out


def queue_retry(store: Store, t: TrialRow, why: str = "") -> TrialRow:
    """The same config again; a retry of the baseline is the baseline (same label)."""
    return store.add_trial(t.study_id, t.config, retry_source(t, why))


def _process_gone(t: TrialRow, now: float, stale_s: float) -> bool:
    if t.runner.local() and t.runner.started is not None:
        return not t.runner.alive()
    return t.heartbeat_at is None or now - t.heartbeat_at >= stale_s
