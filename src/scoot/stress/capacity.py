"""The highest arrival rate at which a configuration meets its SLO (issue 17's ``capacity``).

What vLLM's ``auto_tune.sh`` and SGLang's ``auto_benchmark`` find by lowering or bisecting the
rate, on one engine launch: a first probe, then a bracket (the rate doubled or halved until the
target is crossed), then steps that interpolate the crossing of attainment and the target on
log rate where it is well inside the bracket, its geometric middle otherwise. The search is a
pure function of how a rate's attainment is measured (a stress test, or ``virtual.replay`` in
virtual time), so the same code serves both, and every step is returned to be stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateStep:
    """One probe of the search: the rate tried and the SLO attainment it measured."""

    rate: float
    attainment: float


@dataclass(frozen=True, slots=True)
class Capacity:
    """The highest rate measured to meet the target, the bracket above it, and every step."""

    rate: float
    """0 when even the lowest rate tried missed the target."""
    above: float | None
    """The lowest rate measured to miss it (None: the search never missed)."""
    steps: tuple[RateStep, ...]


def find_capacity(
    attainment_at: Callable[[float], float],
    first: float,
    *,
    target: float = 0.99,
    max_steps: int = 7,
    rel_tol: float = 0.04,
    floor: float = 1e-3,
    done: Sequence[RateStep] = (),
) -> Capacity:
    """Search the highest rate whose attainment reaches ``target``.

    ``done`` holds steps already measured (a resumed trial repeats none of them). The search
    stops once the bracket is within ``rel_tol`` or after ``max_steps`` probes in all.
    """
    steps = list(done)
    measured = {s.rate: s.attainment for s in steps}

    def probe(rate: float) -> float:
        if rate not in measured:
            measured[rate] = attainment_at(rate)
            steps.append(RateStep(rate, measured[rate]))
        return measured[rate]

    def bracket() -> tuple[float | None, float | None]:
        good = [r for r, a in measured.items() if a >= target]
        bad = [r for r, a in measured.items() if a < target]
        lo = max(good) if good else None
        hi = min((r for r in bad if lo is None or r > lo), default=None)
        return lo, hi

    rate = first
    while len(steps) < max_steps:
        lo, hi = bracket()
        if lo is not None and hi is not None:
            if hi / lo - 1 <= rel_tol:
                break
            rate = _interpolate(lo, hi, measured[lo], measured[hi], target)
        elif lo is None and hi is None:
            rate = first
        elif hi is None:
            assert lo is not None
            rate = lo * 2
        else:
            assert hi is not None
            rate = hi / 2
            if rate < floor:
                break
        probe(rate)
    lo, hi = bracket()
    return Capacity(lo or 0.0, hi, tuple(steps))


def _interpolate(lo: float, hi: float, a_lo: float, a_hi: float, target: float) -> float:
    """The next rate inside the bracket: its geometric middle, unless a line through the two
    attainments on log rate puts the crossing well inside (between a third and two thirds of
    the way). Attainment near capacity falls off a cliff, where a line's crossing hugs the
    good end and creeps; the middle halves the bracket every step."""
    x0, x1 = math.log(lo), math.log(hi)
    mid = (x0 + x1) / 2
    if a_lo > a_hi:
        share = (a_lo - target) / (a_lo - a_hi)
        if 1 / 3 <= share <= 2 / 3:
            return math.exp(x0 + (x1 - x0) * share)
    return math.exp(mid)
