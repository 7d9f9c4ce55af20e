"""SCOOT's multi-objective BO (§4.5.2): one GP per objective, EHVI maximised by pymoo.

One suggestion round:

1. Sobol samples until the history holds as many observations as the space has dimensions
   (§4.1), and whenever fewer than two feasible observations exist.
2. One HEBO GP per objective (independent outputs) on the *feasible* observations only. Each
   objective is fitted as ``log`` of its value (sign-flipped when maximised) and standardised:
   latencies span orders of magnitude between a saturated and a relaxed engine, and a ratio is
   what an operator means by "better".
3. The reference point is the engine's default config (§4.5.2): its observed objective vector,
   so EHVI rewards configs better than the default in *both* objectives. Where nothing observed
   beats the default in both (vLLM V1's defaults often sit on the TTFT-TPOT front already), EHVI
   against it is zero wherever the GP is confident and the search would wander; the reference
   point then becomes the observed front's nadir pushed out by a tenth of its range, so the
   solver maps the trade-off front the operator chooses from. The same holds before the default
   has been measured or when it failed. EHVI against the observed front is exact
   (:mod:`scoot.optim.ehvi`).
4. pymoo's mixed-variable GA maximises EHVI under one constraint: every known constraint holds
   and ``POF >= Delta`` (Eq. 3, Algorithm 1), the same gate as SOBO's.
5. The ``k`` suggestions come from everything the solver evaluated. ``batch = "topk"`` (the
   paper's, §4.5.2) takes the ``k`` distinct unseen candidates of largest EHVI, which tend to
   be near-copies of one point. ``batch = "believer"`` (a Kriging believer) picks one at a
   time: after each pick its predicted mean joins the front as if observed, and EHVI is
   recomputed over the candidates against that front, so the next pick must improve where
   the first does not. Sobol fills any shortfall (§4.7). ``docs/benchmarks.md`` says which
   measured better and is the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scoot.domain import Config, Objective, Observation, OutcomeConstraint
from scoot.optim.ehvi import ehvi
from scoot.optim.feasibility import Gate
from scoot.optim.gated import GatedBO
from scoot.optim.mixed import pymoo_vars, to_unit
from scoot.optim.outcomes import meets
from scoot.optim.protocol import one_of
from scoot.optim.results import pareto_mask
from scoot.optim.space import SearchSpace
from scoot.optim.surrogate import GP

BATCHES = ("topk", "believer")
"""How MOBO turns one solver run into k suggestions (module docstring, step 5)."""

FRONTS = ("observed", "posterior")
"""What EHVI improves on: the observed front, or the front of the GPs' posterior means at the
observed configs (a lucky stress test does not then hide the region it came from)."""

WEIGHTS = ("gate", "pof")
"""How the forest enters MOBO's acquisition: only through the gate (POF >= Delta, the
paper's), or also as a weight, EHVI x POF (constrained EI's product, Gardner et al. 2014),
so that between two allowed points the likelier to run wins."""

REFERENCES = ("paper", "box")
"""Where MOBO's EHVI reference point sits (module docstring, step 3)."""

BOX_FACTOR = 2.0
"""``reference = "box"``: the reference point is this many times the default's value in every
objective, the box of docs/benchmarks.md's TTFT+TPOT score (nothing more than twice as slow as
the engine's defaults is a trade-off worth deploying)."""


def believer_batch(
    ranked: list[Config],
    configs: list[Config],
    mu: NDArray[np.float64],
    sd: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    front: NDArray[np.float64],
    ref: NDArray[np.float64],
    k: int,
    seen: set[Config],
    weight: NDArray[np.float64] | None = None,
) -> list[Config]:
    """``k`` picks by a Kriging believer over the solver's candidates, then the rest of
    ``ranked``: each pick's predicted mean ``mu`` joins the front before the next EHVI.

    ``configs``, ``mu`` and ``sd`` are row-aligned (every candidate the solver scored);
    ``allowed`` marks those the gate let through; ``weight`` (row-aligned too) multiplies
    each EHVI where given.
    """
    picked: list[Config] = []
    believed = front
    taken = set(seen)
    for _ in range(k):
        gain = ehvi(mu, sd, believed, ref)
        value = np.where(allowed, gain if weight is None else gain * weight, -np.inf)
        for i in np.argsort(-value, kind="stable"):
            if not np.isfinite(value[i]):
                break
            if configs[i] not in taken:
                picked.append(configs[i])
                taken.add(configs[i])
                believed = np.vstack([believed, mu[i]])
                believed = believed[pareto_mask(believed)]
                break
        else:
            break
    return picked + [c for c in ranked if c not in taken]


def log_objectives(
    values: NDArray[np.float64], objectives: Sequence[Objective]
) -> NDArray[np.float64]:
    """Raw objective values (n, m) to minimised log values; non-positive values stay linear."""
    out = np.empty_like(values, dtype=float)
    for j, o in enumerate(objectives):
        col = values[:, j]
        logged = np.log(col) if np.all(col > 0) else col
        out[:, j] = -logged if o.maximize else logged
    return out


def reference_point(
    history: Sequence[Observation], objectives: Sequence[Objective], default: Config | None
) -> NDArray[np.float64] | None:
    """The default config's raw objective vector, if it was measured and feasible."""
    for o in history:
        if default is not None and o.config == default and o.feasible and o.metrics:
            return np.array([o.objective(obj) for obj in objectives])
    return None


def nadir_reference(front: NDArray[np.float64], margin: float = 0.1) -> NDArray[np.float64]:
    """The front's worst value per objective, pushed out by ``margin`` of its range (or of one
    unit where the front is a single point)."""
    span = np.ptp(front, axis=0)
    out: NDArray[np.float64] = front.max(axis=0) + margin * np.where(span > 0, span, 1.0)
    return out


def choose_reference(
    points: NDArray[np.float64],
    default: NDArray[np.float64] | None,
    box: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """``box`` where given (the default relaxed by :data:`BOX_FACTOR`, already on the points'
    scale); else the default's point once something observed beats it in every objective
    (§4.5.2); otherwise the observed front's nadir (see the module docstring)."""
    if box is not None:
        return box
    if default is not None and np.any(np.all(points < default, axis=1)):
        return default
    return nadir_reference(points[pareto_mask(points)])


class ScootMOBO(GatedBO):
    """Independent GPs, exact EHVI, pymoo's mixed-variable GA, POF >= Delta; top-k EHVI."""

    name = "scoot-mobo"

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        *,
        parallelism: int = 1,
        n_init: int | None = None,
        pop: int = 40,
        gens: int = 25,
        epochs: int = 100,
        use_forest: bool = True,
        seed: int | None = None,
        batch: str = "topk",
        slo: Sequence[OutcomeConstraint] = (),
        reference: str = "paper",
        front: str = "observed",
        feasibility: str = "staged",
        fill: str = "model",
        weight: str = "gate",
    ) -> None:
        one_of("batch", batch, BATCHES)
        self.weight = one_of("weight", weight, WEIGHTS)
        self.reference = one_of("reference", reference, REFERENCES)
        self.front = one_of("front", front, FRONTS)
        if len(objectives) < 2:
            raise ValueError("MOBO needs at least two objectives; use ScootSOBO for one")
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
        self.objectives = tuple(objectives)
        self.pop = pop
        self.gens = gens
        self.batch = batch

    def _candidates(
        self, history: Sequence[Observation], feasible: Sequence[Observation], gate: Gate
    ) -> list[Config]:
        """Ranked by EHVI: the picks are the top k (§4.5.2)."""
        return self._ranked(history, feasible, gate)

    def _ranked(
        self, history: Sequence[Observation], feasible: Sequence[Observation], gate: Gate
    ) -> list[Config]:
        """Allowed candidates the solver evaluated, by EHVI, largest first."""
        from pymoo.core.mixed import MixedVariableGA
        from pymoo.core.problem import Problem
        from pymoo.optimize import minimize

        space = self.space
        x_obs = np.array([space.encode(o.config) for o in feasible])  # (n, d)
        raw = np.array([[o.objective(j) for j in self.objectives] for o in feasible])  # (n, m)
        y = log_objectives(raw, self.objectives)
        ref_raw = reference_point(history, self.objectives, space.default())
        mean, std = y.mean(axis=0), y.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        z = (y - mean) / std
        # Constrained EHVI: the front is of the configs meeting every SLO (all that ran while
        # none does), and EHVI is weighted by the probability of meeting them.
        meeting = np.array([meets(o, self.slo) for o in feasible])
        zf = z[meeting] if self.slo and meeting.any() else z
        front = zf[pareto_mask(zf)]
        slo_model = self.slo_model if self.slo_model and self.slo_model.parts else None
        z_default = z_box = None
        if ref_raw is not None:
            y_default = log_objectives(ref_raw[None, :], self.objectives)[0]
            z_default = (y_default - mean) / std
            if self.reference == "box":
                z_box = (y_default + np.log(BOX_FACTOR) - mean) / std
        z_ref = choose_reference(z, z_default, z_box)
        models = [GP(x_obs, z[:, j], epochs=self.epochs) for j in range(z.shape[1])]
        if self.front == "posterior":
            u_obs = x_obs[meeting] if self.slo and meeting.any() else x_obs
            post = np.stack([m.predict_numpy(u_obs)[0] for m in models], axis=1)
            front = post[pareto_mask(post)]
        seen_u: list[NDArray[np.float64]] = []
        seen_score: list[NDArray[np.float64]] = []
        seen_mu: list[NDArray[np.float64]] = []
        seen_sd: list[NDArray[np.float64]] = []
        seen_w: list[NDArray[np.float64]] = []

        def score(u: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
            preds = [m.predict_numpy(u) for m in models]
            mu = np.stack([p[0] for p in preds], axis=1)
            sd = np.stack([p[1] for p in preds], axis=1)
            value = ehvi(mu, sd, front, z_ref)
            w = slo_model.probability(u) if slo_model is not None else np.ones(len(u))
            if self.weight == "pof":
                w = w * gate.probability(u)
            value = value * w
            g = gate.violation(u)
            seen_u.append(u)
            seen_score.append(np.where(g <= 0.0, value, -np.inf))
            seen_mu.append(mu)
            seen_sd.append(sd)
            seen_w.append(w)
            return value, g

        class EHVIProblem(Problem):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__(vars=pymoo_vars(space), n_obj=1, n_ieq_constr=1)

            def _evaluate(self, xs: Any, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
                value, g = score(to_unit(space, list(xs)))
                out["F"] = -value.reshape(-1, 1)
                out["G"] = g.reshape(-1, 1)

        minimize(
            EHVIProblem(),
            MixedVariableGA(pop_size=self.pop),
            ("n_gen", self.gens),
            seed=int(np.random.randint(2**31 - 1)),
            verbose=False,
        )
        u_all = np.concatenate(seen_u)
        s_all = np.concatenate(seen_score)
        order = np.argsort(-s_all, kind="stable")
        ranked = [space.decode(u_all[i]) for i in order if np.isfinite(s_all[i])]
        if self.batch == "topk" or self.parallelism <= 1:
            return ranked
        return believer_batch(
            ranked,
            [space.decode(u) for u in u_all],
            np.concatenate(seen_mu),
            np.concatenate(seen_sd),
            np.isfinite(s_all),
            front,
            z_ref,
            self.parallelism,
            {o.config for o in history},
            np.concatenate(seen_w) if self.weight == "pof" else None,
        )
