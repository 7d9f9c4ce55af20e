"""SCOOT's single-objective BO (§4.5.1): HEBO's GP, the MACE ensemble, POF-constrained search.

One suggestion round, as in Algorithm 1 line 5:

1. Sobol samples until the history holds as many observations as the space has dimensions
   (§4.1), and whenever fewer than two feasible observations exist.
2. HEBO's GP (Matern-3/2 kernel with Kumaraswamy input warping, ``get_model("gp")``) on the
   *feasible* observations only, objective sign-adjusted to a minimisation and power-transformed
   as HEBO does; failed configs never enter it (§4.7).
3. MACE: LCB, EI and PI minimised together by HEBO's NSGA-II (pymoo). UCB's beta is
   ``2 log(t^2 pi^2 / (6 delta))`` with ``delta = 1 / t^2`` (t = observations + 1; HEBO's kappa is
   sqrt(beta)); EI and PI use ``xi = 1e-4`` (MACE's ``eps``).
4. Inside the solver, one constraint: a candidate must satisfy every known constraint and have
   ``POF >= Delta`` (Eq. 3, Algorithm 1), POF from one random forest per launch stage
   (``feasibility = "staged"``, the default) or the paper's single forest (``"paper"``).
5. ``n`` suggestions drawn at random from the acquisition Pareto set, minus anything already
   seen; Sobol fills any shortfall (§4.7, last paragraph). With ``fill = "model"`` (the
   default; :mod:`scoot.optim.gated`) the shortfall comes instead from unseen Sobol points
   and the neighbours of the best configs, those the gate passes ranked by the round's LCB.
   ``batch = "liar"`` (measured, not the default) picks k > 1 one at a time instead: each
   pick joins the history with the incumbent's value and MACE runs again.

The round runs inside :func:`scoot.optim.surrogate.hebo_round`: seeded from ``rng``, global
random state restored afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from scoot.domain import Config, Objective, Observation, OutcomeConstraint
from scoot.optim.feasibility import Gate
from scoot.optim.gated import GatedBO
from scoot.optim.outcomes import MIN_PROBABILITY, meets
from scoot.optim.protocol import one_of
from scoot.optim.space import SearchSpace
from scoot.optim.surrogate import EDGE, GP, isolated_random_state, warp_output

__all__ = ["XI", "ScootSOBO", "isolated_random_state", "ucb_beta"]

XI = 1e-4


UCBS = ("sqrt", "paper")
"""UCB's multiplier of sigma: ``sqrt(beta)`` (GP-UCB's convention, HEBO's kappa) or ``beta``
itself, as Eq. 6 writes it (docs/benchmarks.md: which measured better)."""

SOBO_BATCHES = ("paper", "diverse", "liar")
"""How SOBO picks k suggestions from MACE's Pareto set (:meth:`ScootSOBO._pick`)."""


def ucb_beta(t: int) -> float:
    """beta_t = 2 log(t^2 pi^2 / (6 delta)) with delta = 1 / t^2 (§4.5.1)."""
    t = max(1, t)
    delta = 1.0 / t**2
    return 2.0 * math.log(t**2 * math.pi**2 / (6.0 * delta))


class ScootSOBO(GatedBO):
    """HEBO-MACE with random-forest feasibility, behind ``suggest(history, n, rng)``."""

    name = "scoot-sobo"

    def __init__(
        self,
        space: SearchSpace,
        objective: Objective,
        *,
        parallelism: int = 1,
        n_init: int | None = None,
        pop: int = 100,
        iters: int = 60,
        epochs: int = 100,
        use_forest: bool = True,
        seed: int | None = None,
        slo: Sequence[OutcomeConstraint] = (),
        batch: str = "paper",
        ucb: str = "sqrt",
        feasibility: str = "staged",
        fill: str = "model",
    ) -> None:
        self.ucb = one_of("ucb", ucb, UCBS)
        self.batch = one_of("batch", batch, SOBO_BATCHES)
        super().__init__(
            space,
            parallelism=parallelism,
            n_init=n_init,
            epochs=epochs,
            use_forest=use_forest,
            seed=seed,
            slo=slo,
            feasibility=feasibility,
            fill=fill,
        )
        self.objective = objective
        self.pop = pop
        self.iters = iters
        self._lcb: tuple[GP, float] | None = None

    def _loss(self, o: Observation) -> float:
        """The objective of a feasible observation as a minimisation (sign-adjusted)."""
        return (-1.0 if self.objective.maximize else 1.0) * o.objective(self.objective)

    def kappa(self, t: int) -> float:
        """LCB's multiplier of sigma in round ``t``: ``sqrt(beta_t)`` (``ucb = "sqrt"``) or
        ``beta_t`` as Eq. 6 writes it (``ucb = "paper"``)."""
        beta = ucb_beta(t)
        return math.sqrt(beta) if self.ucb == "sqrt" else beta

    def _candidates(
        self, history: Sequence[Observation], feasible: Sequence[Observation], gate: Gate
    ) -> list[Config]:
        if self.batch != "liar" or self.parallelism <= 1:
            return self._pareto_set(feasible, gate, len(history) + 1)
        # A constant liar (Ginsbourger et al. 2010, CL-min): each pick joins the history with
        # the incumbent's metrics, and MACE runs again on it, so the next pick is drawn from a
        # Pareto set that already counts the first as done.
        best = min(feasible, key=self._loss)
        seen = {o.config for o in history}
        told = list(feasible)
        picks: list[Config] = []
        for _ in range(self.parallelism):
            fresh = [c for c in self._pareto_set(told, gate, len(history) + 1) if c not in seen]
            if not fresh:
                break
            pick = fresh[int(np.random.randint(len(fresh)))]
            picks.append(pick)
            seen.add(pick)
            told.append(Observation(pick, True, best.metrics))
        return picks

    def _pick(self, fresh: list[Config], n: int, rng: np.random.Generator) -> list[Config]:
        """Drawn at random from the acquisition's Pareto set (§4.5.1, ``batch = "paper"``),
        or, with ``batch = "diverse"``, the first at random and each next one the Pareto-set
        member farthest (in the unit cube) from those already picked: MACE's Pareto set
        often holds near-copies, and a batch of them spends k evaluations on one point.
        ``batch = "liar"`` picked them already (:meth:`_candidates`)."""
        if self.batch == "liar" and self.parallelism > 1:
            return fresh[:n]  # already picked, one per fantasised round
        order = [fresh[i] for i in rng.permutation(len(fresh))]
        if self.batch == "paper" or n <= 1 or len(order) <= n:
            return order[:n]
        u = np.array([self.space.encode(c) for c in order])  # (m, d)
        picked = [0]
        dist = np.linalg.norm(u - u[0], axis=1)
        while len(picked) < n:
            i = int(np.argmax(dist))
            picked.append(i)
            dist = np.minimum(dist, np.linalg.norm(u - u[i], axis=1))
        return [order[i] for i in picked]

    FILL_NEAR = 3
    """The best feasible configs whose neighbours a fill may take."""

    def _fill_pool(self, history: Sequence[Observation]) -> list[Config]:
        """The neighbours of the :data:`FILL_NEAR` best feasible configs: on a grid whose
        Pareto set is all tried, the next config worth a run is often one step from the
        best."""
        feasible = [o for o in history if o.feasible and o.metrics is not None]
        feasible.sort(key=self._loss)
        return [c for o in feasible[: self.FILL_NEAR] for c in self.space.neighbours(o.config)]

    def _fill_rank(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        """The round's LCB (``mu - kappa sigma`` of the warped, minimised objective); a
        point unlikely to meet the SLOs ranks after every one likely to."""
        if self._lcb is None:
            return super()._fill_rank(u)
        model, kappa = self._lcb
        mu, sd = model.predict_numpy(u)
        out: NDArray[np.float64] = mu - kappa * sd
        if self.slo_model is not None and self.slo_model.parts:
            out = out + np.where(self.slo_model.probability(u) >= MIN_PROBABILITY, 0.0, 1e6)
        return out

    def _pareto_set(self, feasible: Sequence[Observation], gate: Gate, t: int) -> list[Config]:
        import pandas as pd
        import torch
        from hebo.acq_optimizers.evolution_optimizer import EvolutionOpt
        from hebo.acquisitions.acq import MACE

        from scoot.optim.surrogate import unit_space

        names = [f"u{i}" for i in range(self.space.dim)]
        hspace = unit_space(self.space.dim, names)
        x_obs = np.clip(
            np.array([self.space.encode(o.config) for o in feasible]), EDGE, 1.0 - EDGE
        )  # (m, d)
        y_raw = np.array([self._loss(o) for o in feasible])  # (m,)
        model = GP(x_obs, warp_output(y_raw.reshape(-1, 1)), epochs=self.epochs)
        self._lcb = (model, self.kappa(t))
        # The incumbent is the best config meeting every SLO, where one does (constrained EI's
        # threshold); otherwise the best that ran.
        meeting = [i for i, o in enumerate(feasible) if meets(o, self.slo)]
        pool = meeting if self.slo and meeting else range(len(feasible))
        best = min(pool, key=lambda i: y_raw[i])
        df = pd.DataFrame(x_obs, columns=names)
        py_best, _ = model.predict(*hspace.transform(df.iloc[[best]]))
        space = self.space

        slo_model = self.slo_model if self.slo_model and self.slo_model.parts else None

        class ConstrainedMACE(MACE):  # type: ignore[misc]
            @property
            def num_constr(self) -> int:
                return 1 if slo_model is None else 2

            def eval(self, x: torch.Tensor, xe: torch.Tensor) -> torch.Tensor:
                acq = super().eval(x, xe)
                u = hspace.inverse_transform(x, xe)[names].to_numpy(dtype=float)
                cols = [gate.violation(u)]
                if slo_model is not None:  # P(every SLO met) >= MIN_PROBABILITY
                    cols.append(MIN_PROBABILITY - slo_model.probability(u))
                g = torch.from_numpy(np.stack(cols, axis=1)).float()
                return torch.cat([acq, g], dim=1)

        acq = ConstrainedMACE(
            model,
            best_y=float(py_best.detach().numpy().squeeze()),
            kappa=self.kappa(t),
            eps=XI,
        )
        opt = EvolutionOpt(hspace, acq, pop=self.pop, iters=self.iters, verbose=False)
        rec = opt.optimize(initial_suggest=df.iloc[[best]])
        rows = rec[names].to_numpy(dtype=float)  # (k, d)
        keep = gate.violation(rows) <= 0.0  # one forest call for the whole Pareto set
        if slo_model is not None:
            keep &= slo_model.probability(rows) >= MIN_PROBABILITY
        return [space.decode(row) for row, ok in zip(rows, keep, strict=True) if ok]
