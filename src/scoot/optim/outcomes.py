"""Outcome constraints (issue 17's ``slo``): a GP per constrained metric, and the probability
that a config meets every one.

A config that runs but misses an SLO is not a crash: the random forest still learns only
crashes (§4.5.3), and the objective's GP still learns from every config that ran. What the
SLOs add is a model of each constrained metric (fitted on ``log`` of the value where it is
positive: latencies and rates span orders of magnitude) and the probability of meeting all,
the product of the per-metric Gaussian probabilities (independent outputs, as in constrained
EI, Gardner et al. 2014). MOBO multiplies EHVI by it; SOBO's MACE, whose three acquisitions
have no common scale to multiply, carries it as one more constraint of its solver,
``P(all SLOs met) >= 0.5``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

from scoot.domain import Observation, OutcomeConstraint
from scoot.optim.space import SearchSpace
from scoot.optim.surrogate import GP

MIN_PROBABILITY = 0.5
"""SOBO's solver keeps candidates at least this likely to meet every SLO."""


class SloModel:
    """``P(every outcome constraint holds)`` at unit-cube points, from the configs that ran."""

    def __init__(
        self,
        space: SearchSpace,
        feasible: Sequence[Observation],
        slo: Sequence[OutcomeConstraint],
        *,
        epochs: int = 100,
    ) -> None:
        self.slo = tuple(slo)
        x_all = np.array([space.encode(o.config) for o in feasible])  # (m, d)
        self.parts: list[tuple[GP, float, bool]] = []
        for c in self.slo:
            raw = np.array([_value(o, c.metric) for o in feasible])  # (m,)
            ok = np.isfinite(raw)
            if ok.sum() < 2:
                continue  # nothing to learn from yet: the constraint does not steer
            x, raw = x_all[ok], raw[ok]
            logged = bool(np.all(raw > 0) and c.bound > 0)
            y = np.log(raw) if logged else raw
            bound = math.log(c.bound) if logged else c.bound
            mean, std = float(y.mean()), float(y.std()) or 1.0
            gp = GP(x, (y - mean) / std, epochs=epochs)
            self.parts.append((gp, (bound - mean) / std, c.op == "<="))

    def probability(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        """(n,) probability that each unit-cube row meets every SLO."""
        u = np.atleast_2d(u)
        p = np.ones(len(u))
        for gp, bound, below in self.parts:
            mu, sd = gp.predict_numpy(u)
            z = (bound - mu) / np.maximum(sd, 1e-9)
            p *= ndtr(z) if below else ndtr(-z)
        return p


def _value(o: Observation, metric: str) -> float:
    value = getattr(o.metrics, metric, None)
    return float(value) if value is not None else math.nan


def meets(o: Observation, slo: Sequence[OutcomeConstraint]) -> bool:
    """Whether an observation ran and met every outcome constraint."""
    return o.feasible and o.metrics is not None and all(c.holds(o.metrics) for c in slo)
