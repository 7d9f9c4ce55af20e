"""The study loop run in the foreground (``scoot tune``, ``scoot demo``).

Algorithm 1 of the paper, with the store as its memory: the default config first (the
baseline), then suggestions until the budget of completed + failed trials is spent. Every step
reads the store, so a driver killed at any point and started again continues the same study:
finished trials are kept, and a trial left ``running`` by a dead driver has its engine process
group killed, is marked abandoned (it says nothing about its config), and is queued again.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scoot.domain import TrialState
from scoot.engine.launcher import group_alive, kill_group
from scoot.jobs.evaluate import build_workload, evaluate
from scoot.jobs.store import Store, StoreError, TrialRow
from scoot.optim.mobo import ScootMOBO
from scoot.optim.protocol import Suggester
from scoot.optim.sobo import ScootSOBO
from scoot.optim.space import SearchSpace
from scoot.study import StudySpec, fixed_flag_values


class StudyLocked(StoreError):
    """Another live process is already driving this study."""


@dataclass(frozen=True, slots=True)
class Progress:
    """What the driver reports after each state change."""

    done: int
    budget: int
    trial: TrialRow | None
    phase: str


MAX_INVALID_RUNS = 3
"""Consecutive invalid runs (client behind schedule) after which the study pauses itself."""


def default_suggester(spec: StudySpec, space: SearchSpace) -> Suggester:
    """The paper's optimizer for the study's objectives: SOBO (HEBO-MACE with random-forest
    feasibility) for one objective, MOBO (EHVI) for TTFT and TPOT."""
    k = len(spec.gpu_sets)
    if len(spec.objectives) == 1:
        return ScootSOBO(space, spec.objectives[0], parallelism=k)
    return ScootMOBO(space, spec.objectives, parallelism=k)


def space_of(spec: StudySpec) -> SearchSpace:
    """The study's search space, with its fixed flags visible to the constraints."""
    return SearchSpace(spec.params, spec.constraints, fixed_flag_values(spec.engine.args))


class StudyLock:
    """An exclusive ``flock`` per study: held while a driver runs it, released by the kernel
    when that driver dies, so a stale ``running`` trial is recognisable with certainty."""

    def __init__(self, store_path: Path, study_id: int) -> None:
        self.path = store_path.parent / "locks" / f"study-{study_id}.lock"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise StudyLocked(f"study {study_id} is being run by another process") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def recover(store: Store, study_id: int) -> list[TrialRow]:
    """Abandon trials a dead driver left running, kill their engines, and queue them again.

    Call only while holding the study's lock. Returns the trials that were abandoned.
    """
    abandoned = []
    for t in store.trials(study_id):
        if t.state is not TrialState.RUNNING:
            continue
        killed = False
        if t.engine_pgid and group_alive(t.engine_pgid):
            killed = kill_group(t.engine_pgid, grace=5.0)
        store.finish(
            t.id,
            TrialState.ABANDONED,
            message="interrupted: the process running it died"
            + ("; its engine was still running and was stopped" if killed else ""),
        )
        store.add_trial(study_id, t.config, f"retry of #{t.number}")
        abandoned.append(t)
    return abandoned


def run_study(
    store: Store,
    study_id: int,
    spec: StudySpec,
    *,
    suggester: Suggester | None = None,
    log_dir: Path,
    on_progress: Callable[[Progress], None] = lambda p: None,
) -> None:
    """Drive the study to its budget (or return at once if it is already spent)."""
    lock = StudyLock(store.path, study_id)
    try:
        for t in recover(store, study_id):
            store.event(study_id, t.id, "recovered", f"trial {t.number} was interrupted")
        space = space_of(spec)
        suggester = suggester or default_suggester(spec, space)
        workload = build_workload(spec)
        gpu_set = spec.gpu_sets[0]
        behind = 0  # consecutive runs abandoned because the client fell behind
        while True:
            trials = store.trials(study_id)
            counted = [t for t in trials if t.state in (TrialState.COMPLETED, TrialState.FAILED)]
            if len(counted) >= spec.budget:
                on_progress(Progress(len(counted), spec.budget, None, "done"))
                store.set_study_state(study_id, "completed")
                return
            queued = [t for t in trials if t.state is TrialState.QUEUED]
            if not queued:
                _enqueue(store, study_id, spec, space, suggester, trials, len(counted))
                continue
            trial = queued[0]
            on_progress(Progress(len(counted), spec.budget, trial, "running"))
            state = evaluate(store, spec, trial, gpu_set, workload, log_dir)
            on_progress(Progress(len(counted) + 1, spec.budget, store.trial(trial.id), "finished"))
            behind = behind + 1 if state is TrialState.ABANDONED else 0
            if behind >= MAX_INVALID_RUNS:
                store.set_study_state(study_id, "paused")
                message = (
                    f"the load generator fell behind its schedule in {behind} runs in a row "
                    "(see `scoot study status`): this machine cannot drive the trace's rate "
                    "while running the engine. Nothing recorded is lost; lower the rate or "
                    "free CPU, then run the study again to continue."
                )
                store.event(study_id, trial.id, "paused", message)
                raise StoreError(message)
    finally:
        lock.release()


def _enqueue(
    store: Store,
    study_id: int,
    spec: StudySpec,
    space: SearchSpace,
    suggester: Suggester,
    trials: list[TrialRow],
    counted: int,
) -> None:
    default = space.default()
    if not trials and default is not None:
        store.add_trial(study_id, default, "default")
        return
    history = store.observations(study_id)
    n = max(1, min(spec.parallelism, spec.budget - counted))
    # Seeded by the study seed and the history length: a resumed study suggests the same.
    rng = np.random.default_rng([spec.seed, len(trials)])
    suggestions = suggester.suggest(history, n, rng)
    if not suggestions:
        raise StoreError("the search space has no untried config left that meets the constraints")
    for s in suggestions:
        store.add_trial(study_id, s.config, s.source)
