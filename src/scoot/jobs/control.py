"""Operator commands on a study: they change the store's state and dispatch tasks, nothing more.

The CLI and the TUI call these; none of them evaluates, runs the optimizer or signals an
engine. ``start``/``resume`` hand a study to the workers (state ``running``) and dispatch its
queued trials and one advance task, which a worker runs. ``pause --now`` and ``cancel`` flag the
running trials; the process running each one (worker or foreground, on whichever host) stops
its engine at its next heartbeat, and its trial is abandoned, never counted as a crash.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from scoot.domain import AbandonCause, EventKind, StudyState, TrialState
from scoot.jobs.locks import foreground_lock
from scoot.jobs.store import Store, StoreError, TrialRow

if TYPE_CHECKING:
    from scoot.jobs.tasks import Dispatch


def start(store: Store, study_id: int, dispatch: Dispatch) -> list[int]:
    """Hand a study to the workers (``scoot tune --detach``, ``scoot study resume``): every
    queued trial gets a task again (duplicates are harmless: a trial is claimed once), and an
    advance task fills the free GPU sets. Returns the queued trial ids dispatched."""
    row = store.study_by_id(study_id)
    if row.state is StudyState.CANCELLED:
        raise StoreError(f"study '{row.name}' was cancelled; start it again with --new")
    fg = foreground_lock(store.data_dir, study_id)
    if not fg.acquire():
        raise StoreError(
            f"study '{row.name}' is being run in the foreground by `scoot tune` (process "
            f"{fg.holder()}); pause it, or let it finish, before handing it to the workers"
        )
    try:
        if row.state is not StudyState.COMPLETED:
            store.set_study_state(study_id, StudyState.RUNNING)
    finally:
        fg.release()
    queued = [t.id for t in store.trials(study_id) if t.state is TrialState.QUEUED]
    for tid in queued:
        dispatch.run(tid)
    dispatch.advance(study_id)
    return queued


def submit(store: Store, path: Path, dispatch: Dispatch) -> tuple[str, list[int]]:
    """A study file handed to the workers (the TUI's new study): the file and its trace are
    validated before anything is recorded. Returns the study's name and the trials queued.

    Raises:
        StoreError: the file, its trace or the store refuses it (the message names which).
    """
    from scoot.jobs.evaluate import build_workload
    from scoot.study import load_study

    try:
        spec = load_study(path)
        build_workload(spec)  # reads the trace, and checks it replays as the study says
    except (ValueError, OSError) as exc:  # StudyError and TraceError are ValueErrors
        raise StoreError(str(exc)) from None
    study, _ = store.open_study(spec.name, spec.to_json(), spec.source)
    return spec.name, start(store, study.id, dispatch)


def resume(store: Store, study_id: int, dispatch: Dispatch) -> list[int]:
    row = store.study_by_id(study_id)
    if row.state is StudyState.COMPLETED:
        raise StoreError(f"study '{row.name}' is completed; there is nothing to resume")
    queued = start(store, study_id, dispatch)
    store.event(study_id, None, EventKind.RESUMED, f"study '{row.name}' resumed on the workers")
    return queued


def pause(store: Store, study_id: int, *, now: bool = False) -> list[TrialRow]:
    """No new trials start; running ones finish, or with ``now`` are stopped and abandoned
    (never counted as crashes). Returns the running trials asked to stop."""
    row = store.study_by_id(study_id)
    if row.state in (StudyState.CANCELLED, StudyState.COMPLETED):
        raise StoreError(f"study '{row.name}' is {row.state}; there is nothing to pause")
    store.set_study_state(study_id, StudyState.PAUSED)
    stopped = _request_stop(store, study_id) if now else []
    how = "; running trials stopped" if now else "; running trials will finish"
    store.event(study_id, None, EventKind.PAUSED, f"study '{row.name}' paused{how}")
    return stopped


def cancel(store: Store, study_id: int) -> list[TrialRow]:
    """Stop everything and keep every result: running trials are stopped and abandoned,
    queued ones dropped."""
    row = store.study_by_id(study_id)
    store.set_study_state(study_id, StudyState.CANCELLED)
    stopped = _request_stop(store, study_id)
    for t in store.trials(study_id):
        if t.state is TrialState.QUEUED:
            store.request_stop(t.id)
            # A task may claim it meanwhile; its stop flag abandons it then.
            with contextlib.suppress(StoreError):
                store.finish(
                    t.id,
                    TrialState.ABANDONED,
                    message="study cancelled",
                    cause=AbandonCause.OPERATOR,
                )
    store.event(study_id, None, EventKind.CANCELLED, f"study '{row.name}' cancelled; results kept")
    return stopped


def _request_stop(store: Store, study_id: int) -> list[TrialRow]:
    running = [t for t in store.trials(study_id) if t.state is TrialState.RUNNING]
    for t in running:
        store.request_stop(t.id)
    return running
