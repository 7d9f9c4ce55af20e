"""The study loop run in the foreground (``scoot tune``, ``scoot demo``).

Algorithm 1 of the paper, with the store as its memory: the default config first (the
baseline), then suggestions until the budget of completed + failed trials is spent. Every step
reads the store, so a driver killed at any point and started again continues the same study:
finished trials are kept, and a trial left ``running`` by a dead driver has its engine process
group killed, is marked abandoned (it says nothing about its config), and is queued again.
"""

from __future__ import annotations

import fcntl
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scoot.domain import Config, Objective, TrialState
from scoot.engine.launcher import group_alive, kill_group
from scoot.jobs.evaluate import Workload, build_workload, evaluate
from scoot.jobs.store import RETEST, Store, StoreError, TrialRow
from scoot.optim.mobo import ScootMOBO
from scoot.optim.protocol import Suggester
from scoot.optim.results import best_index
from scoot.optim.sobo import ScootSOBO
from scoot.optim.sobol import SobolSuggester
from scoot.optim.space import SearchSpace
from scoot.study import StudySpec, known_values


class StudyLocked(StoreError):
    """Another live process is already driving this study."""


@dataclass(frozen=True, slots=True)
class Progress:
    """What the driver reports after each state change."""

    done: int
    budget: int
    trial: TrialRow | None
    phase: str


BATCH_GRACE_S = 1.0
"""After a trial finishes, how long to wait for others about to finish before suggesting."""

MAX_INVALID_RUNS = 3
"""Consecutive invalid runs (client behind schedule) after which the study pauses itself."""


def default_suggester(spec: StudySpec, space: SearchSpace) -> Suggester:
    """The paper's optimizer for the study's objectives: SOBO (HEBO-MACE with random-forest
    feasibility) for one objective, MOBO (EHVI) for TTFT and TPOT."""
    k = len(spec.gpu_sets)
    if len(spec.objectives) == 1:
        return ScootSOBO(space, spec.objectives[0], parallelism=k)
    return ScootMOBO(space, spec.objectives, parallelism=k)


def best_trial(trials: Sequence[TrialRow], objectives: Sequence[Objective]) -> TrialRow | None:
    """The winner: the best completed trial for one objective; for TTFT and TPOT, the Pareto
    point of largest hypervolume against the default config (the paper's Eq. 10)."""
    done = [
        t
        for t in trials
        if t.state is TrialState.COMPLETED and t.metrics is not None and t.retest is None
    ]
    if not done:
        return None
    rows = [[t.metrics.value(o) for o in objectives] for t in done if t.metrics]
    default = next((t for t in done if t.source == "default"), None)
    reference = (
        [default.metrics.value(o) for o in objectives] if default and default.metrics else None
    )
    idx = best_index(rows, objectives, reference)
    return done[idx] if idx is not None else None


def add_retests(
    store: Store, study_id: int, spec: StudySpec, trials: list[TrialRow]
) -> list[TrialRow]:
    """Queue the winner's robustness re-tests still missing: the same config under arrival
    orders shuffled with seeds 1..R (paper §4.8); the worst case of all is its SLO."""
    winner = best_trial(trials, spec.objectives)
    runs = spec.stress.robustness_runs
    if winner is None or runs <= 0:
        return []
    have = {
        t.retest for t in trials if t.retest is not None and t.state is not TrialState.ABANDONED
    }
    return [
        store.add_trial(study_id, winner.config, f"{RETEST}{i} of {runs} (#{winner.number})")
        for i in range(1, runs + 1)
        if i not in have
    ]


def robust_slo(
    trials: Sequence[TrialRow], best: TrialRow, objectives: Sequence[Objective]
) -> tuple[int, list[float]] | None:
    """The winner's SLO: the worst value of each objective over its own run and its completed
    re-tests (§4.8), with the number of arrival orders; None before any re-test finished.
    A failed re-test makes the SLO unmeasurable (infinite latency, zero throughput)."""
    tag = f"(#{best.number})"
    retests = [t for t in trials if t.retest is not None and t.source.endswith(tag)]
    done = [t for t in retests if t.state in (TrialState.COMPLETED, TrialState.FAILED)]
    if not done or best.metrics is None:
        return None
    worst = []
    for o in objectives:
        values = [best.metrics.value(o)]
        for t in done:
            if t.metrics is None or t.state is TrialState.FAILED:
                values.append(0.0 if o.maximize else math.inf)
            else:
                values.append(t.metrics.value(o))
        worst.append(min(values) if o.maximize else max(values))
    return 1 + len(done), worst


def workload_of(spec: StudySpec, trial: TrialRow) -> Workload:
    """A trial's stress workload: the study's, or for a re-test, its shuffled arrival order."""
    return build_workload(spec, order_seed=trial.retest or 0)


def preflight(spec: StudySpec) -> tuple[str | None, list[str]]:
    """Check the study's launches with the engine's own argument parser before a GPU is spent:
    the default config and both corners of the space (every flag at its low end, then at its
    high end). Returns the interpreter used (None when the engine's is not found, so nothing
    was checked) and one line per launch the engine refuses."""
    from scoot.engine.catalog import engine_check, python_of
    from scoot.engine.launcher import flags_for

    kind = spec.engine.kind
    if kind not in ("vllm", "sglang"):
        return None, []
    python = python_of(spec.engine.command, kind)
    if python is None:
        return None, []
    space = space_of(spec)
    configs = {"the default config": space.default()}
    configs["every flag at its low end"] = space.decode([0.0] * space.dim)
    configs["every flag at its high end"] = space.decode([1.0] * space.dim)
    model_flag = "--model-path" if kind == "sglang" else "--model"
    labels, argvs = [], []
    for label, config in configs.items():
        if config is None:
            continue
        labels.append(label)
        argvs.append(
            [model_flag, spec.engine.model, *spec.engine.args, *flags_for(config.as_dict(), kind)]
        )
    errors = engine_check(kind, python, argvs)
    return python, [f"{label}: {err}" for label, err in zip(labels, errors, strict=True) if err]


def space_of(spec: StudySpec) -> SearchSpace:
    """The study's search space, with its fixed flags visible to the constraints."""
    return SearchSpace(spec.params, spec.constraints, known_values(spec.engine, spec.gpu_sets))


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
    """Drive the study to its budget (or return at once if it is already spent).

    Each GPU set is a slot running at most one trial. Whenever trials finish, the optimizer is
    asked for as many configs as there are free slots (the paper's parallel suggestion, §4.6:
    k = number of GPU sets), so two sets run two trials at once.
    """
    lock = StudyLock(store.path, study_id)
    try:
        for t in recover(store, study_id):
            store.event(study_id, t.id, "recovered", f"trial {t.number} was interrupted")
        space = space_of(spec)
        suggester = suggester or default_suggester(spec, space)
        workloads = {0: build_workload(spec)}
        behind = 0  # consecutive runs abandoned because the client fell behind
        busy: dict[Future[TrialState], tuple[str, TrialRow]] = {}
        with ThreadPoolExecutor(max_workers=len(spec.gpu_sets)) as pool:
            while True:
                trials = store.trials(study_id)
                counted = sum(t.counts for t in trials)
                running = {t.id for _, t in busy.values()}
                queued = [
                    t for t in trials if t.state is TrialState.QUEUED and t.id not in running
                ]
                free = [g for g in spec.gpu_sets if g not in {g2 for g2, _ in busy.values()}]
                if counted >= spec.budget:
                    # Budget spent: only the winner's robustness re-tests remain to run.
                    queued = [t for t in queued if t.retest is not None]
                    if not busy and not queued:
                        if add_retests(store, study_id, spec, trials):
                            continue
                        on_progress(Progress(counted, spec.budget, None, "done"))
                        store.set_study_state(study_id, "completed")
                        return
                    room = len(queued)
                else:
                    room = spec.budget - counted - len(busy)
                    if free and room > 0 and len(queued) < min(len(free), room):
                        pending = [t.config for t in queued] + [t.config for _, t in busy.values()]
                        want = min(len(free), room) - len(queued)
                        enqueue_trials(
                            store, study_id, spec, space, suggester, trials, want, pending
                        )
                        continue
                for gpu_set, trial in zip(free, queued[: max(room, 0)], strict=False):
                    on_progress(Progress(counted, spec.budget, trial, "running"))
                    seed = trial.retest or 0
                    if seed not in workloads:
                        workloads[seed] = workload_of(spec, trial)
                    future = pool.submit(
                        _evaluate_alone, store.path, spec, trial, gpu_set, workloads[seed], log_dir
                    )
                    busy[future] = (gpu_set, trial)
                if not busy:
                    continue
                finished, others = wait(busy, return_when=FIRST_COMPLETED)
                if others:
                    # Sets that free up together get their configs from one suggestion round
                    # (k at once, §4.6) instead of one round each, back to back.
                    finished |= wait(others, timeout=BATCH_GRACE_S)[0]
                for future in finished:
                    _, trial = busy.pop(future)
                    state = future.result()
                    counted += trial.retest is None
                    on_progress(Progress(counted, spec.budget, store.trial(trial.id), "finished"))
                    behind = behind + 1 if state is TrialState.ABANDONED else 0
                if behind >= MAX_INVALID_RUNS:
                    for other in list(busy):
                        other.result()  # let running trials finish and be recorded
                    store.set_study_state(study_id, "paused")
                    message = (
                        f"the load generator fell behind its schedule in {behind} runs in a "
                        "row (see `scoot study status`): this machine cannot drive the trace's "
                        "rate while running the engine. Nothing recorded is lost; lower the "
                        "rate or free CPU, then run the study again to continue."
                    )
                    store.event(study_id, None, "paused", message)
                    raise StoreError(message)
    finally:
        lock.release()


def _evaluate_alone(
    path: Path, spec: StudySpec, trial: TrialRow, gpu_set: str, workload: Workload, log_dir: Path
) -> TrialState:
    """One trial on one GPU set, with its own store connection (SQLite's are per thread)."""
    store = Store(path)
    try:
        return evaluate(store, spec, trial, gpu_set, workload, log_dir)
    finally:
        store.close()


def enqueue_trials(
    store: Store,
    study_id: int,
    spec: StudySpec,
    space: SearchSpace,
    suggester: Suggester,
    trials: list[TrialRow],
    n: int,
    pending: list[Config],
) -> list[TrialRow]:
    """Queue ``n`` new trials: the default first, then the optimizer's suggestions, none of
    them a config already queued or running."""
    default = space.default()
    added: list[TrialRow] = []
    if not trials and default is not None:
        added.append(store.add_trial(study_id, default, "default"))
        n -= 1
        pending = [*pending, default]
        if n <= 0:
            return added
    history = store.observations(study_id)
    # Seeded by the study seed and the history length: a resumed study suggests the same.
    rng = np.random.default_rng([spec.seed, len(trials)])
    try:
        suggestions = suggester.suggest(history, n + len(pending), rng)
    except Exception as exc:
        # A numerical failure must not end an hours-long job: one round of quasi-random
        # configs instead (§4.7's fill); the next round tries the model again. The event
        # keeps the error for the operator and the TUI.
        store.event(
            study_id, None, "optimizer-error", f"{suggester.name}: {exc!r}; Sobol this round"[:500]
        )
        suggestions = SobolSuggester(space).suggest(history, n + len(pending), rng)
    fresh = [s for s in suggestions if s.config not in pending][:n]
    if not fresh:
        raise StoreError("the search space has no untried config left that meets the constraints")
    return added + [store.add_trial(study_id, s.config, s.source) for s in fresh]
