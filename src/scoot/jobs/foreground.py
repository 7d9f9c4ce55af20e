"""``scoot tune`` in the foreground: an in-process executor of the same two tasks workers run.

One thread per GPU set of the study takes task messages from an in-process queue: run a trial
(:func:`scoot.jobs.tasks.run_trial`, under the same per-GPU-set lock a worker takes) or advance
the study (:func:`scoot.jobs.tasks.advance`, which asks the policy and the optimizer). The study
is ``active`` while it runs so; a ``pause``, ``pause --now`` or ``cancel`` typed anywhere is seen
at the next task: running trials finish (or are stopped by their heartbeat thread), nothing new
starts, and :func:`run_foreground` returns the study's new state.

A foreground run killed at any instant leaves nothing inconsistent: the next run finds the
trials it left ``running`` with their recorded process gone, abandons them (never counted),
stops their engines if still alive, and queues them again.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scoot.domain import EventKind, StudyState, TrialState
from scoot.jobs import policy, tasks
from scoot.jobs.locks import foreground_lock
from scoot.jobs.store import Store, StoreError, TrialRow
from scoot.optim.protocol import Suggester
from scoot.study import StudySpec

BUSY_RETRY_S = 0.5
"""How soon a slot whose GPU set another process holds looks again."""
ELSEWHERE_POLL_S = 1.0
"""How often to look while a trial of this study runs in another process (a worker that was
running it when the study was paused, then resumed here)."""


class StudyLocked(StoreError):
    """Another live process is already running this study in the foreground."""


@dataclass(frozen=True, slots=True)
class Progress:
    """What the executor reports after each state change."""

    done: int
    budget: int
    trial: TrialRow | None
    phase: str


def run_foreground(
    store: Store,
    study_id: int,
    data_dir: Path,
    *,
    resume: bool = False,
    on_progress: Callable[[Progress], None] = lambda p: None,
    suggester: Callable[[StudySpec], Suggester] | None = None,
) -> StudyState:
    """Run the study here until it completes, is paused or is cancelled; returns that state.

    Raises:
        StudyLocked: another foreground run of this study is alive.
        StoreError: the study is run by workers, was cancelled, or is paused (and not
            ``resume``); or a task failed (its message).
    """
    lock = foreground_lock(data_dir, study_id)
    if not lock.acquire():
        raise StudyLocked(
            f"study {study_id} is being run in the foreground by process {lock.holder()}"
        )
    try:
        row = store.study_by_id(study_id)
        if row.state is StudyState.RUNNING:
            raise StoreError(
                f"study '{row.name}' is being run by workers; watch it with `scoot study "
                f"status {row.name}` or stop it with `scoot study pause {row.name}`"
            )
        if row.state is StudyState.CANCELLED:
            raise StoreError(f"study '{row.name}' was cancelled; start it again with --new")
        if row.state is StudyState.PAUSED:
            if not resume:
                raise StoreError(
                    f"study '{row.name}' is paused; continue it here with `scoot tune FILE "
                    f"--resume`, or on the workers with `scoot study resume {row.name}`"
                )
            store.set_study_state(study_id, StudyState.ACTIVE)
            store.event(study_id, None, EventKind.RESUMED, f"study '{row.name}' resumed here")
        if row.state is StudyState.COMPLETED:
            return StudyState.COMPLETED
        return _Executor(data_dir, store, study_id, on_progress, suggester).serve()
    finally:
        lock.release()


class _Executor:
    """The in-process queue and its slot threads (one per GPU set); a :class:`tasks.Dispatch`."""

    def __init__(
        self,
        data_dir: Path,
        store: Store,
        study_id: int,
        on_progress: Callable[[Progress], None],
        suggester: Callable[[StudySpec], Suggester] | None,
    ) -> None:
        self.data_dir = data_dir
        self.store = store
        self.study_id = study_id
        self.spec = tasks.spec_of(store, study_id)
        self.on_progress = on_progress
        self.suggester = suggester
        self.inbox: queue.Queue[tuple[str, int]] = queue.Queue()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []

    # -- tasks.Dispatch ------------------------------------------------------------------------
    def run(self, trial_id: int) -> None:
        self.inbox.put(("run", trial_id))

    def advance(self, study_id: int) -> None:
        self.inbox.put(("advance", study_id))

    # -- the loop ------------------------------------------------------------------------------
    def serve(self) -> StudyState:
        for t in tasks.recover(self.store, self.study_id, self):
            self.report(self.store.trial(t.id), "finished")
        slots = [
            threading.Thread(target=self.slot, args=(g,), name=f"slot-{g}", daemon=True)
            for g in self.spec.gpu_sets
        ]
        for s in slots:
            s.start()
        try:
            return self.loop()
        except (KeyboardInterrupt, SystemExit):
            # Ctrl-C, SIGTERM, SIGHUP: leave nothing running and nothing to recover.
            tasks.abandon_mine(self.store, self.study_id, "interrupted: scoot tune was stopped")
            raise
        finally:
            self.stop.set()

    def loop(self) -> StudyState:
        """Dispatch, let the slots drain the inbox, look at the study; until it is not ours."""
        while True:
            self.dispatch_queued()
            self.advance(self.study_id)
            self.inbox.join()
            if self.errors:
                raise self.errors[0]
            row = self.store.study_by_id(self.study_id)
            if row.state is not StudyState.ACTIVE:
                return row.state
            trials = self.store.trials(self.study_id)
            if any(t.state is TrialState.RUNNING for t in trials):
                self.stop.wait(ELSEWHERE_POLL_S)  # run by another process; wait for it
                continue
            if not any(t.state is TrialState.QUEUED for t in trials):
                step = policy.plan(row.state, tasks.facts_of(self.spec), trials, row.state_since)
                if step.idle:
                    raise StoreError(f"study '{row.name}' has nothing left to run")

    def dispatch_queued(self) -> None:
        for t in self.store.trials(self.study_id):
            if t.state is TrialState.QUEUED:
                self.run(t.id)

    def slot(self, gpu_set: str) -> None:
        """One GPU set's thread: it runs trials on its set only, and any advance."""
        url = None if isinstance(self.store.location, Path) else self.store.location
        site = tasks.Site(self.data_dir, StudyState.ACTIVE, (gpu_set,), url)
        while not self.stop.is_set():
            kind, ident = self.inbox.get()
            busy = False
            try:
                if kind == "advance":
                    tasks.advance(site, ident, self, self.suggester)
                else:
                    done = tasks.run_trial(
                        site, ident, self, on_start=lambda t: self.report(t, "running")
                    )
                    if done is not None:
                        self.report(done, "finished")
            except tasks.Busy:
                busy = True
                self.inbox.put((kind, ident))  # before task_done: the queue never looks empty
            except BaseException as exc:
                self.errors.append(exc)
            finally:
                self.inbox.task_done()
            if busy:
                self.stop.wait(BUSY_RETRY_S)

    def report(self, trial: TrialRow, phase: str) -> None:
        store = self.store.reopen()  # the calling slot thread's own connection
        try:
            done = policy.counted(store.trials(self.study_id))
        finally:
            store.close()
        self.on_progress(Progress(done, self.spec.budget, trial, phase))
