"""What the TUI shows, read from the store in one go (no Textual here, so it is testable alone).

The TUI talks to the rest of SCOOT through this module, :mod:`scoot.jobs.control` and
:mod:`scoot.domain` only (an import-linter contract): it reads snapshots built here in a worker
thread, and sends operator commands through control. It never evaluates or runs the optimizer.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scoot.domain import Objective, Observation, StudyState, TrialState
from scoot.engine.exporters import exports_for
from scoot.jobs.decision import Decision, decide, hypervolume_over_trials
from scoot.jobs.insight import Comparison, Effect, compare, importance
from scoot.jobs.insight import effects as effects
from scoot.jobs.policy import best_trial, robust_slo, slo_missed
from scoot.jobs.store import Store, StudyRow, TrialRow
from scoot.optim.feasibility import delta_trace, pof_model
from scoot.optim.results import pareto_mask, to_minimize
from scoot.optim.space import SearchSpace, initial_design_size
from scoot.study import StudySpec

__all__ = [
    "Comparison",
    "Decision",
    "Effect",
    "StudySpec",
    "compare",
]  # the TUI names them through here

METRIC_COLUMNS = (
    ("req/s", "request_throughput", "{:.2f}"),
    ("p95 ms", "p95_e2el_ms", "{:.0f}"),
    ("TTFT ms", "mean_ttft_ms", "{:.0f}"),
    ("TPOT ms", "mean_tpot_ms", "{:.1f}"),
)


@dataclass(frozen=True)
class StudySummary:
    """One row of the studies screen."""

    id: int
    name: str
    objectives: str
    engine: str
    gpu_sets: str
    state: str
    done: int
    budget: int
    failed: int
    best: str


@dataclass(frozen=True)
class TrialView:
    """One trial as the study screen shows it."""

    row: TrialRow
    best: bool
    on_front: bool

    @property
    def number(self) -> int:
        return self.row.number


@dataclass(frozen=True)
class Running:
    """What runs on a GPU set: the trial, for how long, how far its stress test is."""

    gpu_set: str
    trial: int | None
    elapsed_s: float
    progress: float
    other: str | None = None
    """When this study has nothing on the set: what another study runs there."""
    starting: bool = False
    """The engine is still starting: the stress test (and its progress) has not begun."""


@dataclass(frozen=True)
class WorkerView:
    """A worker as the GPU sets tab lists it."""

    host: str
    pid: int
    gpu_sets: str
    seen_s: float
    """Seconds since it last reported itself."""

    @property
    def alive(self) -> bool:
        return self.seen_s <= WORKER_SILENT_S

    def text(self) -> str:
        sets = self.gpu_sets or "any set"
        if self.alive:
            return f"worker {self.host}:{self.pid} serving {sets}, seen {self.seen_s:.0f} s ago"
        return f"worker {self.host}:{self.pid} serving {sets}: silent for {self.seen_s:.0f} s"


@dataclass(frozen=True)
class StudyView:
    """Everything the study screen draws, at one instant."""

    summary: StudySummary
    spec: StudySpec
    trials: list[TrialView]
    params: list[str]
    deltas: list[float]
    failures: dict[str, int]
    pof_next: list[tuple[int, float]]
    running: list[Running]
    slo: tuple[int, list[float]] | None
    default_point: list[float] | None = None
    points: list[tuple[int, list[float]]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    decision: Decision | None = None
    hypervolume: list[tuple[int, float]] = field(default_factory=list)
    importance: list[tuple[str, float]] = field(default_factory=list)
    effects: dict[str, list[Effect]] = field(default_factory=dict)
    failed_numbers: list[int] = field(default_factory=list)
    workers: list[WorkerView] = field(default_factory=list)
    queued: int = 0
    eta_s: float | None = None
    """Seconds until the budget is spent at the pace of the trials so far (None: unknown)."""

    @property
    def best(self) -> TrialView | None:
        return next((t for t in self.trials if t.best), None)


WORKER_SILENT_S = 15.0
"""A ``running`` study no worker advanced for this long has no worker serving it (a worker's
janitor advances each of its studies every few seconds)."""


def state_text(
    study: StudyRow, best: TrialRow | None, now: float, trials: list[TrialRow] | None = None
) -> str:
    """The study's state as an operator needs it: a completed study where nothing completed,
    a study whose every trial failed, a study handed to workers that no worker serves, say
    so."""
    if study.state is StudyState.COMPLETED and best is None:
        return "completed: no config completed"
    finished = [t for t in trials or [] if t.state in (TrialState.COMPLETED, TrialState.FAILED)]
    if finished and all(t.state is TrialState.FAILED for t in finished):
        return f"{study.state}: all {len(finished)} trials failed"
    if study.state is StudyState.RUNNING:
        if study.advanced_at is None:
            return "running: no worker yet"
        silent = now - study.advanced_at
        if silent > WORKER_SILENT_S:
            return f"running: no worker for {silent:.0f} s"
    return str(study.state)


def summarise(store: Store, study: StudyRow, now: float | None = None) -> StudySummary:
    spec = StudySpec.from_json(study.spec_json, study.source)
    trials = store.trials(study.id)
    best = best_trial(trials, spec.objectives, spec.slo, spec.variant != "paper")
    best_text = "-"
    if best is None and slo_missed(trials, spec.slo):
        best_text = "none meets the SLO"
    if best is not None and best.metrics is not None:
        values = ", ".join(f"{o.value} {best.metrics.value(o):.4g}" for o in spec.objectives)
        best_text = f"#{best.number}: {values}"
    return StudySummary(
        id=study.id,
        name=study.name,
        objectives="+".join(o.value for o in spec.objectives),
        engine=f"{spec.engine.kind} {spec.engine.model}",
        gpu_sets=" ".join(spec.gpu_sets),
        state=state_text(study, best, time.time() if now is None else now, trials),
        done=sum(t.counts for t in trials),
        budget=spec.budget,
        failed=sum(t.state is TrialState.FAILED for t in trials),
        best=best_text,
    )


def load_studies(store: Store) -> list[StudySummary]:
    return [summarise(store, s) for s in store.studies()]


def load_study(store: Store, study_id: int, now: float | None = None) -> StudyView:
    now = time.time() if now is None else now
    row = store.study_by_id(study_id)
    spec = StudySpec.from_json(row.spec_json, row.source)
    rows = store.trials(study_id)
    best = best_trial(rows, spec.objectives, spec.slo, spec.variant != "paper")
    done = [t for t in rows if t.state is TrialState.COMPLETED and t.metrics and t.retest is None]
    front_ids: set[int] = set()
    points = [(t.number, [t.metrics.value(o) for o in spec.objectives]) for t in done if t.metrics]
    if done:
        pts = np.array([to_minimize(p, spec.objectives) for _, p in points])
        front_ids = {done[i].id for i in np.flatnonzero(pareto_mask(pts))}
    default = next((t for t in done if t.is_default), None)
    trials = [TrialView(t, best is not None and t.id == best.id, t.id in front_ids) for t in rows]
    history = [o for o in (t.observation() for t in rows) if o is not None]
    space = spec.space()
    deltas = delta_trace(
        [o.feasible for o in history], len(spec.gpu_sets), initial_design_size(space)
    )
    ranked = importance(rows, spec)
    failures = dict(Counter(t.failure_kind.value for t in rows if t.failure_kind))
    return StudyView(
        summary=summarise(store, row, now),
        spec=spec,
        trials=trials,
        params=[p.name for p in spec.params],
        deltas=deltas,
        failures=failures,
        pof_next=_pof_next(spec, space, history, rows),
        running=_running(spec, rows, now, _elsewhere(store, study_id)),
        slo=robust_slo(rows, best, spec.objectives) if best is not None else None,
        default_point=(
            [default.metrics.value(o) for o in spec.objectives]
            if default and default.metrics
            else None
        ),
        points=points,
        events=store.notable_events(study_id),
        decision=decide(rows, spec),
        hypervolume=hypervolume_over_trials(rows, spec.objectives),
        importance=ranked,
        effects={name: effects(rows, spec, name) for name in [p.name for p in spec.params]},
        failed_numbers=[t.number for t in rows if t.state is TrialState.FAILED],
        workers=[
            WorkerView(w.host, w.pid, " ".join(w.gpu_sets), max(0.0, now - w.seen_at))
            for w in store.workers()
        ],
        queued=sum(t.state is TrialState.QUEUED for t in rows),
        eta_s=eta(rows, spec, row.state),
    )


def eta(rows: list[TrialRow], spec: StudySpec, state: StudyState) -> float | None:
    """Seconds left at the pace so far: the mean duration of the finished trials times the
    trials the budget still has, over the GPU sets that run them in parallel."""
    if state not in (StudyState.RUNNING, StudyState.ACTIVE):
        return None
    took = [
        t.ended_at - t.started_at
        for t in rows
        if t.state.finished and t.ended_at is not None and t.started_at is not None
    ]
    left = spec.budget - sum(t.counts for t in rows)
    if not took or left <= 0:
        return None
    return left * (sum(took) / len(took)) / max(1, len(spec.gpu_sets))


def duration_text(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _pof_next(
    spec: StudySpec, space: SearchSpace, history: list[Observation], rows: list[TrialRow]
) -> list[tuple[int, float]]:
    """The POF (§4.7) of the trials waiting in the queue, by the hidden-constraint model the
    study's optimizer uses (:attr:`StudySpec.feasibility`), fitted on what it learns from."""
    queued = [t for t in rows if t.state is TrialState.QUEUED]
    if not queued or not history:
        return []
    model = pof_model(space, history, np.random.default_rng(0), spec.feasibility, n_estimators=50)
    pof = model.pof(np.array([space.encode(t.config) for t in queued]))
    return [(t.number, float(p)) for t, p in zip(queued, pof, strict=True)]


def _running(
    spec: StudySpec, rows: list[TrialRow], now: float, elsewhere: dict[str, str]
) -> list[Running]:
    out = []
    for gpu_set in spec.gpu_sets:
        t = next((r for r in rows if r.state is TrialState.RUNNING and r.gpu_set == gpu_set), None)
        if t is None or t.started_at is None:
            out.append(Running(gpu_set, None, 0.0, 0.0, elsewhere.get(gpu_set)))
            continue
        elapsed = max(0.0, now - t.started_at)
        stress = 0.0 if t.ready_at is None else max(0.0, now - t.ready_at)
        out.append(
            Running(
                gpu_set,
                t.number,
                elapsed,
                min(1.0, stress / spec.trace.duration_s),
                starting=t.ready_at is None,
            )
        )
    return out


def _elsewhere(store: Store, study_id: int) -> dict[str, str]:
    """GPU set -> "study NAME, trial N" for the trials other studies run now."""
    return {
        gpu_set: f"study {name}, trial #{number}"
        for sid, name, number, gpu_set in store.running_anywhere()
        if sid != study_id
    }


def metric_cells(t: TrialRow) -> list[str]:
    if t.metrics is None or t.state is not TrialState.COMPLETED:
        return ["-"] * len(METRIC_COLUMNS)
    m = t.metrics.to_dict()
    return [fmt.format(m[key]) for _, key, fmt in METRIC_COLUMNS]


def value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "-" if value is None else str(value)


def percentiles(t: TrialRow) -> list[tuple[str, str, str, str, str]]:
    """Rows of (metric, mean, p50, p95, p99) for the trial screen."""
    if t.metrics is None:
        return []
    m = t.metrics.to_dict()
    out = []
    for name, key in (
        ("TTFT ms", "ttft_ms"),
        ("TPOT ms", "tpot_ms"),
        ("ITL ms", "itl_ms"),
        ("E2E ms", "e2el_ms"),
    ):
        cells = []
        for prefix in ("mean", "median", "p95", "p99"):
            v = m.get(f"{prefix}_{key}")
            cells.append(
                "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"
            )
        out.append((name, cells[0], cells[1], cells[2], cells[3]))
    return out


def objective_label(o: Objective) -> str:
    return {
        "throughput": "req/s",
        "p95_latency": "p95 e2e ms",
        "ttft": "TTFT ms",
        "tpot": "TPOT ms",
    }[o.value]


def exports(trial: TrialRow, spec: StudySpec) -> dict[str, tuple[str, str]]:
    """Every deployable form of a trial's config: ``{label: (file suffix, text)}``."""
    e = spec.engine
    return exports_for(e.kind, e.model, e.args, trial.config.as_dict(), e.env, e.command)


def write_exports(trial: TrialRow, spec: StudySpec, folder: Path) -> list[Path]:
    """Write every export of a trial into ``folder``; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    safe = re.sub(r"[^A-Za-z0-9._@-]", "_", spec.name).lstrip(".")  # a store older than
    for suffix, text in exports(trial, spec).values():  # name checks may hold any name
        path = folder / f"{safe}-trial-{trial.number}.{suffix}"
        path.write_text(text)
        paths.append(path)
    return paths
