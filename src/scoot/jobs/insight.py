"""Why a config is good: which flags matter (importance) and how the objective moves with each
flag (effects), from the completed trials; and two trials side by side (issue 19).

Importance is a random forest's mean decrease in impurity over the unit-cube encoding of the
flags, the objective on the GP's scale (log for positive values), as fANOVA-style tools report:
the share of the objective's variance each flag's splits explain. With few trials it is rough,
and it says what the trials show, not what the engine does; the screens print how many trials
it rests on.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scoot.domain import Objective
from scoot.jobs.policy import measured
from scoot.jobs.store import TrialRow
from scoot.study import StudySpec

MIN_TRIALS = 4
"""Fewer completed trials than this tell nothing about importance."""


def _scale(values: Sequence[float]) -> list[float]:
    """The objective on the scale its GP models: log where every value is positive."""
    if all(v > 0 for v in values):
        return [math.log(v) for v in values]
    return list(values)


def importance(
    trials: Sequence[TrialRow], spec: StudySpec, objective: Objective | None = None
) -> list[tuple[str, float]]:
    """(flag, share of importance), largest first, summing to 1; empty below ``MIN_TRIALS``
    completed trials or when the objective does not vary."""
    o = objective or spec.objectives[0]
    done = measured(trials)
    if len(done) < MIN_TRIALS or not spec.params:
        return []
    y = np.array(_scale([t.metrics.value(o) for t in done if t.metrics]))
    if not np.all(np.isfinite(y)) or float(np.ptp(y)) == 0.0:
        return []
    space = spec.space()
    x = tuple(tuple(float(v) for v in space.encode(t.config)) for t in done)
    shares = _forest_importance(x, tuple(float(v) for v in y))
    total = sum(shares)
    if total <= 0:
        return []
    out = [(p.name, s / total) for p, s in zip(spec.params, shares, strict=True)]
    return sorted(out, key=lambda item: -item[1])


@functools.lru_cache(maxsize=32)
def _forest_importance(
    x: tuple[tuple[float, ...], ...], y: tuple[float, ...]
) -> tuple[float, ...]:
    """The forest's impurity importances; cached, as the TUI asks every refresh and the
    trials change far less often."""
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=100, min_samples_leaf=1, random_state=0)
    forest.fit(np.array(x), np.array(y))
    return tuple(float(v) for v in forest.feature_importances_)


@dataclass(frozen=True, slots=True)
class Effect:
    """The objective over the trials that set a flag to one value (or range)."""

    label: str
    """The value, or ``lo-hi`` for a range of a continuous flag."""
    trials: int
    best: float
    median: float


def effects(
    trials: Sequence[TrialRow], spec: StudySpec, flag: str, objective: Objective | None = None
) -> list[Effect]:
    """The objective grouped by ``flag``'s value: one group per value where the flag has few
    (at most 6 distinct), else quartile ranges. The best is the max or min as the objective
    wants."""
    o = objective or spec.objectives[0]
    pairs = [
        (t.config.as_dict().get(flag), t.metrics.value(o)) for t in measured(trials) if t.metrics
    ]
    pairs = [(v, y) for v, y in pairs if v is not None and math.isfinite(y)]
    if not pairs:
        return []
    pick = max if o.maximize else min
    distinct = sorted({v for v, _ in pairs}, key=_order)
    groups: list[tuple[str, list[float]]] = []
    if len(distinct) <= 6 or not all(isinstance(v, int | float) for v in distinct):
        for value in distinct:
            groups.append((_text(value), [y for v, y in pairs if v == value]))
    else:
        xs = np.array([float(v) for v, _ in pairs])  # type: ignore[arg-type]
        edges = np.quantile(xs, [0.0, 0.25, 0.5, 0.75, 1.0])
        for i in range(4):
            lo, hi = edges[i], edges[i + 1]
            ys = [
                y
                for (v, y), x in zip(pairs, xs, strict=True)
                if lo <= x <= hi and (i == 3 or x < hi)
            ]
            if ys:
                groups.append((f"{_text(lo)}-{_text(hi)}", ys))
    return [Effect(label, len(ys), pick(ys), statistics.median(ys)) for label, ys in groups]


def _order(value: object) -> tuple[int, float, str]:
    if isinstance(value, bool):
        return (0, float(value), "")
    if isinstance(value, int | float):
        return (1, float(value), "")
    return (2, 0.0, str(value))


def _text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, np.floating):
        return f"{float(value):.3g}"
    return str(value)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Two trials side by side: the flags that differ and each metric's change from a to b."""

    a: TrialRow
    b: TrialRow
    flags: tuple[tuple[str, str, str], ...]
    """(flag, a's value, b's value) for each flag that differs."""
    metrics: tuple[tuple[str, float, float], ...]
    """(metric, a's value, b's value) for the metrics both trials measured."""


COMPARED = (
    "request_throughput",
    "output_throughput",
    "mean_ttft_ms",
    "p95_ttft_ms",
    "mean_tpot_ms",
    "p95_tpot_ms",
    "p95_e2el_ms",
    "goodput",
)


def compare(a: TrialRow, b: TrialRow) -> Comparison:
    ca, cb = a.config.as_dict(), b.config.as_dict()
    flags = tuple(
        (name, _text(ca.get(name, "-")), _text(cb.get(name, "-")))
        for name in sorted(set(ca) | set(cb))
        if ca.get(name) != cb.get(name)
    )
    metrics: list[tuple[str, float, float]] = []
    if a.metrics is not None and b.metrics is not None:
        ma, mb = a.metrics.to_dict(), b.metrics.to_dict()
        for key in COMPARED:
            va, vb = ma.get(key), mb.get(key)
            if isinstance(va, int | float) and isinstance(vb, int | float):
                metrics.append((key, float(va), float(vb)))
    return Comparison(a, b, flags, tuple(metrics))
