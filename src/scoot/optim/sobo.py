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
   ``POF >= Delta`` from the random forest (Eq. 3, Algorithm 1).
5. ``n`` suggestions drawn at random from the acquisition Pareto set, minus anything already
   seen; Sobol fills any shortfall (§4.7, last paragraph).

HEBO, torch and pymoo draw from global random state (pymoo 0.6.0 reseeds numpy's). The whole
round runs inside :func:`isolated_random_state`, seeded from ``rng``, and puts every global
generator back as it found it.
"""

from __future__ import annotations

import contextlib
import io
import math
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scoot.domain import Config, Objective, Observation, Suggestion
from scoot.optim.feasibility import FeasibilityModel, batches_of, delta_after
from scoot.optim.sobol import SobolSuggester
from scoot.optim.space import SearchSpace

XI = 1e-4
EDGE = 1e-3


def ucb_beta(t: int) -> float:
    """beta_t = 2 log(t^2 pi^2 / (6 delta)) with delta = 1 / t^2 (§4.5.1)."""
    t = max(1, t)
    delta = 1.0 / t**2
    return 2.0 * math.log(t**2 * math.pi**2 / (6.0 * delta))


@contextlib.contextmanager
def isolated_random_state(seed: int) -> Iterator[None]:
    """Seed numpy's, Python's and torch's global generators for a block, then restore them
    (torch's thread count too)."""
    import torch

    np_state = np.random.get_state()
    py_state = random.getstate()
    torch_state = torch.get_rng_state()
    threads = torch.get_num_threads()
    np.random.seed(seed % 2**32)
    random.seed(seed)
    torch.manual_seed(seed)
    # A GP on tens of points gains nothing from threads, and the tuner shares its machine with
    # engines and stress clients whose timing it measures: one thread, no spinning workers.
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        np.random.set_state(np_state)
        random.setstate(py_state)
        torch.set_rng_state(torch_state)


class ScootSOBO:
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
    ) -> None:
        self.space = space
        self.objective = objective
        self.parallelism = parallelism
        self.n_init = space.dim if n_init is None else n_init
        self.pop = pop
        self.iters = iters
        self.sobol = SobolSuggester(space)

    def suggest(
        self, history: Sequence[Observation], n: int, rng: np.random.Generator
    ) -> list[Suggestion]:
        seen = {o.config for o in history}
        feasible = [o for o in history if o.feasible and o.metrics is not None]
        if n <= 0:
            return []
        if len(history) < self.n_init or len(feasible) < 2:
            return self.sobol.suggest(history, n, rng)
        pof = FeasibilityModel().fit(
            np.array([self.space.encode(o.config) for o in history]),
            np.array([o.feasible for o in history]),
            rng,
        )
        delta = delta_after(batches_of([o.feasible for o in history], self.parallelism))
        # HEBO prints its GP's jitter retries to stdout; keep the operator's terminal clean.
        with (
            isolated_random_state(int(rng.integers(2**31 - 1))),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            candidates = self._pareto_set(feasible, pof, delta, len(history) + 1)
        fresh = [c for c in dict.fromkeys(candidates) if c not in seen]
        picked: list[Config] = []
        if fresh:
            order = rng.permutation(len(fresh))
            picked = [fresh[i] for i in order[:n]]
        out = [Suggestion(c, self.name) for c in picked]
        if len(out) < n:
            fill = self.sobol.sample(n - len(out), rng, seen | set(picked))
            out += [Suggestion(c, "sobol-fill") for c in fill]
        return out

    def _pareto_set(
        self, feasible: Sequence[Observation], pof: FeasibilityModel, delta: float, t: int
    ) -> list[Config]:
        import pandas as pd
        import torch
        from hebo.acq_optimizers.evolution_optimizer import EvolutionOpt
        from hebo.acquisitions.acq import MACE
        from hebo.design_space.design_space import DesignSpace
        from hebo.models.model_factory import get_model
        from sklearn.preprocessing import power_transform

        names = [f"u{i}" for i in range(self.space.dim)]
        # HEBO's input warping (Kumaraswamy CDF) has an infinite slope at 0 and 1, and a
        # default sitting on a bound turns the GP's fit into NaNs: keep points just inside.
        hspace = DesignSpace().parse(
            [{"name": nm, "type": "num", "lb": EDGE, "ub": 1.0 - EDGE} for nm in names]
        )
        x_obs = np.clip(
            np.array([self.space.encode(o.config) for o in feasible]), EDGE, 1.0 - EDGE
        )  # (m, d)
        sign = -1.0 if self.objective.maximize else 1.0
        y_raw = np.array(
            [[sign * o.metrics.value(self.objective)] for o in feasible if o.metrics]
        )  # (m, 1)
        y = _transform(y_raw, power_transform)
        df = pd.DataFrame(x_obs, columns=names)
        # Fit on the dimensions the observations vary in: a constant column (say chunked
        # prefill, True in every feasible config so far) makes the GP's input scaling divide
        # by zero. The solver still moves along it; the model is indifferent there.
        varying = [i for i in range(self.space.dim) if np.ptp(x_obs[:, i]) > 1e-9] or [0]
        fit_space = DesignSpace().parse(
            [{"name": names[i], "type": "num", "lb": EDGE, "ub": 1.0 - EDGE} for i in varying]
        )
        gp = get_model(
            "gp",
            fit_space.num_numeric,
            fit_space.num_categorical,
            1,
            lr=0.01,
            num_epochs=100,
            verbose=False,
            noise_lb=8e-4,
            pred_likeli=False,
        )
        gp.fit(*fit_space.transform(df[[names[i] for i in varying]]), torch.FloatTensor(y))
        model = _Columns(gp, varying)
        best = int(np.argmin(y_raw.reshape(-1)))
        py_best, _ = model.predict(*hspace.transform(df.iloc[[best]]))
        space, lookup = self.space, _Lookup(self.space, pof, delta)

        class ConstrainedMACE(MACE):  # type: ignore[misc]
            @property
            def num_constr(self) -> int:
                return 1

            def eval(self, x: torch.Tensor, xe: torch.Tensor) -> torch.Tensor:
                acq = super().eval(x, xe)
                u = hspace.inverse_transform(x, xe)[names].to_numpy(dtype=float)
                g = torch.from_numpy(lookup.violation(u)).float().reshape(-1, 1)
                return torch.cat([acq, g], dim=1)

        acq = ConstrainedMACE(
            model,
            best_y=float(py_best.detach().numpy().squeeze()),
            kappa=math.sqrt(ucb_beta(t)),
            eps=XI,
        )
        opt = EvolutionOpt(hspace, acq, pop=self.pop, iters=self.iters, verbose=False)
        rec = opt.optimize(initial_suggest=df.iloc[[best]])
        rows = rec[names].to_numpy(dtype=float)  # (k, d)
        keep = lookup.violation(rows) <= 0.0  # one forest call for the whole Pareto set
        return [space.decode(row) for row, ok in zip(rows, keep, strict=True) if ok]


class _Columns:
    """A fitted HEBO model seen through the columns it was trained on."""

    def __init__(self, model: Any, columns: list[int]) -> None:
        self.model = model
        self.columns = columns

    @property
    def noise(self) -> Any:
        return self.model.noise

    def predict(self, x: Any, xe: Any) -> tuple[Any, Any]:
        mean, var = self.model.predict(x[:, self.columns], xe)
        return mean, var


class _Lookup:
    """Known constraints and POF >= Delta for candidate points of the unit cube."""

    def __init__(self, space: SearchSpace, pof: FeasibilityModel, delta: float) -> None:
        self.space = space
        self.pof = pof
        self.delta = delta

    def violation(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        """Per row: <= 0 where allowed and POF >= Delta (pymoo's constraint convention)."""
        configs = [self.space.decode(row) for row in u]
        known = np.array([0.0 if self.space.allowed(c) else 1.0 for c in configs])
        # Score the decoded (cell-centred) point, as the forest saw the observations.
        centred = np.array([self.space.encode(c) for c in configs])  # (m, d)
        out: NDArray[np.float64] = np.maximum(known, self.delta - self.pof.pof(centred))
        return out


def _transform(y: NDArray[np.float64], power_transform: object) -> NDArray[np.float64]:
    """HEBO's output warping: Box-Cox when positive, else Yeo-Johnson; raw if it degenerates."""
    assert callable(power_transform)
    scaled = y / (y.std() or 1.0)
    try:
        method = "box-cox" if y.min() > 0 else "yeo-johnson"
        out = np.asarray(power_transform(scaled, method=method), dtype=float)
        if out.std() < 0.5:
            out = np.asarray(power_transform(scaled, method="yeo-johnson"), dtype=float)
        if not np.isfinite(out).all() or out.std() < 0.5:
            raise ValueError
        return out
    except ValueError:
        standard: NDArray[np.float64] = (y - y.mean()) / (y.std() or 1.0)
        return standard
