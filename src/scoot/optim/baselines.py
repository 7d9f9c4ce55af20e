"""The baselines SCOOT is measured against (§5.1), behind the same ``suggest`` protocol.

- random: :class:`scoot.optim.sobol.SobolSuggester` (quasi-random search).
- :class:`GASuggester`: pymoo's mixed-variable GA for one objective, NSGA-II for two; a failed
  config gets a penalty value.
- :class:`VanillaBO`: HEBO exactly as shipped (its own MACE settings and kappa schedule), a
  penalty value for failures, no feasibility model.
- :class:`TPESuggester`: Optuna's TPE, what most users reach for today (optional dependency;
  benchmark only): multivariate, constant liar, failures as violated Optuna constraints.
- :class:`OptunaGPSuggester`: Optuna's GP sampler (log EI / log EHVI, constrained by a GP of
  the same constraint), pending suggestions as its running trials.
- :class:`BoTorchSuggester`: BoTorch's qLogNEI for one objective and qLogNEHVI for two, what
  NVIDIA AIPerf's search runs; failures through an outcome constraint on a GP of "it ran".

Every baseline returns only configs that satisfy the known constraints (they are not the
baselines' weakness under test); each begins with the same Sobol design as SCOOT.

Outcome constraints (``slo``, issue 17) reach each baseline the way it ships: the penalty
baselines rank a config that ran but missed an SLO below every config that met them all
(:func:`penalised`); Optuna gets each SLO's relative violation as one more of its trial
constraints; BoTorch gets a GP per constrained metric as an outcome constraint of qLogNEI /
qLogNEHVI. Random search ignores them (only the final pick reads them).

All are stateless: the population or model is rebuilt from the history each round. For the
elitist (mu + lambda) GA this is exact: survival keeps the best ``mu`` of parents and offspring,
so the population after any generation is the best ``mu`` of everything evaluated. NSGA-II's
rank-and-crowding survival over the whole history is the same rule applied once.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scoot.domain import Config, Objective, Observation, OutcomeConstraint, ParamKind, Suggestion
from scoot.optim.mixed import from_unit, pymoo_vars, to_unit
from scoot.optim.mobo import log_objectives
from scoot.optim.outcomes import meets
from scoot.optim.results import to_minimize
from scoot.optim.sobol import SobolSuggester, complete
from scoot.optim.space import SearchSpace, initial_design_size
from scoot.optim.surrogate import EDGE, hebo_round, unit_space


def penalised(
    history: Sequence[Observation],
    objectives: Sequence[Objective],
    slo: Sequence[OutcomeConstraint] = (),
) -> NDArray[np.float64] | None:
    """Minimised objective rows (n, m), penalties where a config failed or missed an SLO.

    With ``margin`` the range of the values that ran (at least a tenth of the worst, at least
    1): a config that ran but missed an outcome constraint gets its own value plus the margin
    (below every config that ran, in its own order among the misses); a failed config gets
    the worst of those plus the margin (clearly worse than anything that ran). None if
    nothing ran."""
    rows = [
        to_minimize([o.objective(j) for j in objectives], objectives) if o.feasible else None
        for o in history
    ]
    ok = np.array([r for r in rows if r is not None])
    if len(ok) == 0:
        return None
    margin = np.maximum(np.maximum(np.ptp(ok, axis=0), np.abs(ok.max(axis=0)) * 0.1), 1.0)
    out = [
        None
        if r is None
        else (np.asarray(r) + margin if slo and not meets(o, slo) else np.asarray(r))
        for o, r in zip(history, rows, strict=True)
    ]
    worst = np.max([r for r in out if r is not None], axis=0) + margin
    return np.array([r if r is not None else worst for r in out])


class _Baseline:
    """What every baseline keeps: the space, the objectives, the shared Sobol design."""

    name = "baseline"

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        n_init: int | None,
        slo: Sequence[OutcomeConstraint] = (),
    ) -> None:
        self.space = space
        self.objectives = tuple(objectives)
        self.slo = tuple(slo)
        self.n_init = initial_design_size(space) if n_init is None else n_init
        self.sobol = SobolSuggester(space)

    def _first_allowed(
        self,
        candidates: Sequence[Config],
        n: int,
        seen: set[Config],
        rng: np.random.Generator,
    ) -> list[Suggestion]:
        """The first ``n`` unseen, distinct candidates that keep the known constraints, Sobol
        filling any shortfall (§4.7)."""
        picked: list[Config] = []
        for c in candidates:
            if c not in seen and c not in picked and self.space.allowed(c):
                picked.append(c)
        return complete(self.sobol, [Suggestion(c, self.name) for c in picked[:n]], n, seen, rng)


class _PenaltyBaseline(_Baseline, ABC):
    """A baseline that sees failures as penalty values (:func:`penalised`) and proposes more
    candidates than it needs; the first ``n`` unseen ones that keep the known constraints are
    the suggestions, Sobol filling any shortfall."""

    def suggest(
        self, history: Sequence[Observation], n: int, rng: np.random.Generator
    ) -> list[Suggestion]:
        if n <= 0:
            return []
        f = penalised(history, self.objectives, self.slo)
        if len(history) < self.n_init or f is None:
            return self.sobol.suggest(history, n, rng)
        seen = {o.config for o in history}
        with hebo_round(rng):
            candidates = self._candidates(history, f, n)
        return self._first_allowed(candidates, n, seen, rng)

    @abstractmethod
    def _candidates(
        self, history: Sequence[Observation], f: NDArray[np.float64], n: int
    ) -> list[Config]:
        """About ``n`` proposals or more, given the penalised objective rows ``f``."""


class GASuggester(_PenaltyBaseline):
    """A generational GA (NSGA-II for two objectives) over pymoo's mixed variables."""

    name = "ga"

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        *,
        pop_size: int = 10,
        n_init: int | None = None,
        slo: Sequence[OutcomeConstraint] = (),
    ) -> None:
        super().__init__(space, objectives, n_init, slo)
        self.pop_size = pop_size
        if len(self.objectives) > 1:
            self.name = "nsga2"

    def _candidates(
        self, history: Sequence[Observation], f: NDArray[np.float64], n: int
    ) -> list[Config]:
        """Four times ``n`` offspring of the survivors of the whole history."""
        from pymoo.algorithms.moo.nsga2 import RankAndCrowdingSurvival, binary_tournament
        from pymoo.core.mixed import (
            FitnessSurvival,
            MixedVariableDuplicateElimination,
            MixedVariableMating,
        )
        from pymoo.core.population import Population
        from pymoo.core.problem import Problem
        from pymoo.operators.selection.tournament import TournamentSelection

        space = self.space
        problem = Problem(vars=pymoo_vars(space), n_obj=f.shape[1])
        xs = from_unit(space, np.array([space.encode(o.config) for o in history]))
        pop = Population.new(X=xs, F=f)
        pop.set(G=np.zeros((len(pop), 0)), CV=np.zeros((len(pop), 1)))
        dedupe = MixedVariableDuplicateElimination()
        if f.shape[1] == 1:
            parents = FitnessSurvival().do(problem, pop, n_survive=self.pop_size)
            mating = MixedVariableMating(eliminate_duplicates=dedupe)
            algorithm = None
        else:
            parents = RankAndCrowdingSurvival().do(problem, pop, n_survive=self.pop_size)
            mating = MixedVariableMating(
                selection=TournamentSelection(func_comp=binary_tournament),
                eliminate_duplicates=dedupe,
            )
            algorithm = SimpleNamespace(tournament_type="comp_by_dom_and_crowding")
        off = mating.do(problem, parents, 4 * n, algorithm=algorithm)
        return [space.decode(u) for u in to_unit(space, [ind.X for ind in off])]


class VanillaBO(_PenaltyBaseline):
    """HEBO as shipped, penalties for failures: ``HEBO`` (MACE with its own kappa schedule and
    solver) for one objective, ``GeneralBO`` (multi-output GP, NSGA-II over its LCBs) for two.

    HEBO knows nothing of the known constraints: suggestions that break one are dropped and
    Sobol fills the shortfall. ``HEBO`` is asked for exactly ``n``: its kappa schedule counts
    rounds as observations / ``n_suggestions``, so asking for 4n (as this baseline once did)
    slowed its clock fourfold (issue 16). ``GeneralBO``, with no such clock, is asked for 4n."""

    name = "vanilla-bo"

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        *,
        n_init: int | None = None,
        evo_iters: int = 50,
        slo: Sequence[OutcomeConstraint] = (),
    ) -> None:
        super().__init__(space, objectives, n_init, slo)
        self.evo_iters = evo_iters

    def _candidates(
        self, history: Sequence[Observation], f: NDArray[np.float64], n: int
    ) -> list[Config]:
        """HEBO's ``n`` suggestions (GeneralBO's ``4 n``); the caller drops those that break a
        known constraint."""
        import pandas as pd
        from hebo.optimizers.general import GeneralBO
        from hebo.optimizers.hebo import HEBO

        names = [f"u{i}" for i in range(self.space.dim)]
        hspace = unit_space(self.space.dim, names)
        opt: Any
        if f.shape[1] == 1:
            seed = int(np.random.randint(2**31 - 1))
            opt = HEBO(hspace, rand_sample=self.n_init, scramble_seed=seed)
        else:
            # GeneralBO's NSGA-II runs 200 generations by default, 7 s a round on two cores;
            # 50 keep it near HEBO's own budget for one objective.
            opt = GeneralBO(
                hspace, num_obj=f.shape[1], rand_sample=self.n_init, evo_iters=self.evo_iters
            )
        x = np.clip([self.space.encode(o.config) for o in history], EDGE, 1.0 - EDGE)
        opt.observe(pd.DataFrame(x, columns=names), f)
        rec = opt.suggest(n_suggestions=n if f.shape[1] == 1 else 4 * n)
        return [self.space.decode(u) for u in rec[names].to_numpy(dtype=float)]


VIOLATION = "runs"
"""The Optuna 5 constraint (``Trial.set_constraint``) of each trial: 0 where the config ran,
1 where it crashed or broke a known constraint."""


class _OptunaBaseline(_Baseline, ABC):
    """An Optuna sampler rebuilt from the history each round, failures as Optuna constraints."""

    name = "optuna"

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        *,
        n_init: int | None = None,
        slo: Sequence[OutcomeConstraint] = (),
    ) -> None:
        super().__init__(space, objectives, n_init, slo)

    @abstractmethod
    def _sampler(self, seed: int) -> Any:
        """The Optuna sampler of one round."""

    def _worst(self, history: Sequence[Observation]) -> list[float]:
        """Per objective, the worst value among the feasible observations (0 without any)."""
        out = []
        for j in self.objectives:
            seen = [o.objective(j) for o in history if o.feasible and o.metrics is not None]
            out.append((min(seen) if j.maximize else max(seen)) if seen else 0.0)
        return out

    def _distributions(self) -> dict[str, Any]:
        import optuna.distributions as d

        out: dict[str, Any] = {}
        for p in self.space.params:
            if p.kind is ParamKind.BOOL:
                out[p.name] = d.CategoricalDistribution([False, True])
            elif p.kind is ParamKind.ENUM:
                out[p.name] = d.CategoricalDistribution(list(p.choices))
            elif p.kind is ParamKind.INT:
                assert p.low is not None and p.high is not None
                out[p.name] = d.IntDistribution(int(p.low), int(p.high), log=p.log)
            else:
                assert p.low is not None and p.high is not None
                out[p.name] = d.FloatDistribution(p.low, p.high, log=p.log)
        return out

    def suggest(
        self, history: Sequence[Observation], n: int, rng: np.random.Generator
    ) -> list[Suggestion]:
        if n <= 0:
            return []
        if len(history) < self.n_init:
            return self.sobol.suggest(history, n, rng)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        dists = self._distributions()
        # Failures go through Optuna's constraints (issue 16): TPE ignores FAIL trials, so a
        # crash told as FAIL teaches it nothing. A crashed config, or a proposal that breaks a
        # known constraint, is a complete trial with a violated constraint and the worst value
        # seen, which TPE's constrained split ranks below every feasible trial.
        sampler = self._sampler(int(rng.integers(2**31 - 1)))
        study = optuna.create_study(
            sampler=sampler,
            directions=["maximize" if o.maximize else "minimize" for o in self.objectives],
        )
        worst = self._worst(history)
        for o in history:
            params = o.config.as_dict()
            values = [o.objective(j) for j in self.objectives] if o.feasible else worst
            study.add_trial(
                optuna.trial.create_trial(
                    params=params,
                    distributions=dists,
                    values=values,
                    constraints={VIOLATION: 0.0 if o.feasible else 1.0, **self._slo_violations(o)},
                )
            )
        seen = {o.config for o in history}
        picked: list[Config] = []
        # Picked trials stay running: the sampler's constant liar (TPE) or its q-batch
        # acquisition over running trials (GP) spreads the batch.
        for _ in range(20 * n):
            trial = study.ask(dists)
            c = Config.of(trial.params)
            if c in seen or c in picked:
                # Already tried or picked: not worth an evaluation, and says nothing new.
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            if not self.space.allowed(c):
                trial.set_constraint(VIOLATION, 1.0)
                for name in self._slo_violations(None):
                    trial.set_constraint(name, 1.0)
                study.tell(trial, worst)
                continue
            picked.append(c)
            if len(picked) == n:
                break
        return complete(self.sobol, [Suggestion(c, self.name) for c in picked], n, seen, rng)

    def _slo_violations(self, o: Observation | None) -> dict[str, float]:
        """Each SLO's violation relative to its bound (<= 0 where met; 1 where the config
        did not run, as Optuna's constraints need a value for every trial)."""
        out = {}
        for i, c in enumerate(self.slo):
            value = getattr(o.metrics, c.metric, None) if o and o.metrics else None
            if value is None:
                out[f"slo{i}"] = 1.0
            else:
                out[f"slo{i}"] = -c.slack(float(value)) / max(abs(c.bound), 1e-9)
        return out


class TPESuggester(_OptunaBaseline):
    """Optuna's TPE (multi-objective TPE for two objectives), rebuilt from the history."""

    name = "tpe"

    def _sampler(self, seed: int) -> Any:
        import optuna

        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=0, constant_liar=True, multivariate=True
        )


class OptunaGPSuggester(_OptunaBaseline):
    """Optuna's ``GPSampler``: log EI (log EHVI for two objectives), constrained by a GP of the
    trials' constraint values, with pending picks as running trials (its q-batch form)."""

    name = "optuna-gp"

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        *,
        n_init: int | None = None,
        preliminary_samples: int = 2048,
        local_searches: int = 10,
        slo: Sequence[OutcomeConstraint] = (),
    ) -> None:
        super().__init__(space, objectives, n_init=n_init, slo=slo)
        # Optuna's own acquisition-search budget (2,048 and 10 as shipped); contract tests
        # shrink it, as they do every model-based suggester's.
        self.preliminary_samples = preliminary_samples
        self.local_searches = local_searches

    def _sampler(self, seed: int) -> Any:
        import optuna

        sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=0)
        sampler._n_preliminary_samples = self.preliminary_samples
        sampler._n_local_search = self.local_searches
        return sampler


class BoTorchSuggester(_Baseline):
    """BoTorch as its tutorials ship it: a ``SingleTaskGP`` per objective on the configs that
    ran (inputs in the unit cube, outputs standardised; latencies and throughput in logs, as
    SCOOT's MOBO sees them), ``qLogNoisyExpectedImprovement`` for one objective and
    ``qLogNoisyExpectedHypervolumeImprovement`` for two (reference point inferred from the
    observed front, ``infer_reference_point``), joint ``q = n`` optimisation by
    ``optimize_acqf`` with random restarts. Failures have no place in an outcome model that only
    knows the configs that ran, so a second GP models "it ran" (1 or 0) over every config, and
    the acquisition carries it as an outcome constraint (``ran >= 0.5``), BoTorch's way of
    handling black-box constraints. Discrete values come from rounding the relaxed optimum.
    """

    name = "botorch"

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        *,
        n_init: int | None = None,
        num_restarts: int = 4,
        raw_samples: int = 256,
        mc_samples: int = 64,
        slo: Sequence[OutcomeConstraint] = (),
    ) -> None:
        super().__init__(space, objectives, n_init, slo)
        self.num_restarts = num_restarts
        self.raw_samples = raw_samples
        self.mc_samples = mc_samples

    def suggest(
        self, history: Sequence[Observation], n: int, rng: np.random.Generator
    ) -> list[Suggestion]:
        if n <= 0:
            return []
        ok = [o for o in history if o.feasible and o.metrics is not None]
        if len(history) < self.n_init or len(ok) < 2:
            return self.sobol.suggest(history, n, rng)
        seen = {o.config for o in history}
        with hebo_round(rng):
            candidates = self._candidates(history, ok, n, int(rng.integers(2**31 - 1)))
        return self._first_allowed(candidates, n, seen, rng)

    def _candidates(
        self, history: Sequence[Observation], ok: Sequence[Observation], n: int, seed: int
    ) -> list[Config]:
        import torch
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.acquisition.multi_objective.logei import (
            qLogNoisyExpectedHypervolumeImprovement,
        )
        from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
        from botorch.acquisition.objective import GenericMCObjective
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import ModelListGP, SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from botorch.optim import optimize_acqf
        from botorch.sampling import SobolQMCNormalSampler
        from botorch.utils.multi_objective.hypervolume import infer_reference_point
        from gpytorch.mlls import SumMarginalLogLikelihood

        torch.manual_seed(seed)
        dt = torch.float64
        d = self.space.dim
        x_ok = torch.tensor(np.array([self.space.encode(o.config) for o in ok]), dtype=dt)
        values = np.array([[o.objective(j) for j in self.objectives] for o in ok])
        y = torch.tensor(-log_objectives(values, self.objectives), dtype=dt)  # maximised
        failures = any(not o.feasible for o in history)
        models = [
            SingleTaskGP(x_ok, y[:, [j]], outcome_transform=Standardize(m=1))
            for j in range(y.shape[1])
        ]
        # BoTorch's constraint callables are feasible where <= 0; each reads its model's
        # output column (after the objectives).
        constraints: list[Any] = []
        for c in self.slo:
            raw = np.array([float(getattr(o.metrics, c.metric)) for o in ok])
            logged = bool(np.all(raw > 0) and c.bound > 0)
            col = torch.tensor((np.log(raw) if logged else raw)[:, None], dtype=dt)
            models.append(SingleTaskGP(x_ok, col, outcome_transform=Standardize(m=1)))
            bound = math.log(c.bound) if logged else c.bound
            sign = 1.0 if c.op == "<=" else -1.0
            at = len(models) - 1
            constraints.append(lambda z, i=at, b=bound, s=sign: s * (z[..., i] - b))
        if failures:
            x_all = torch.tensor(
                np.array([self.space.encode(o.config) for o in history]), dtype=dt
            )
            ran = torch.tensor([[1.0 if o.feasible else 0.0] for o in history], dtype=dt)
            models.append(SingleTaskGP(x_all, ran, outcome_transform=Standardize(m=1)))
            at = len(models) - 1
            constraints.append(lambda z, i=at: 0.5 - z[..., i])
        model = ModelListGP(*models)
        fit_gpytorch_mll(SumMarginalLogLikelihood(model.likelihood, model))
        sampler = SobolQMCNormalSampler(sample_shape=torch.Size([self.mc_samples]), seed=seed)
        m_obj = y.shape[1]

        acq: Any
        if m_obj == 1:
            acq = qLogNoisyExpectedImprovement(
                model,
                X_baseline=x_ok,
                sampler=sampler,
                objective=GenericMCObjective(lambda z, X=None: z[..., 0]),
                constraints=constraints or None,
                prune_baseline=True,
            )
        else:
            ref = infer_reference_point(y)
            acq = qLogNoisyExpectedHypervolumeImprovement(
                model,
                ref_point=ref.tolist(),
                X_baseline=x_ok,
                sampler=sampler,
                objective=GenericMCMultiOutputObjective(lambda z, X=None: z[..., :m_obj]),
                constraints=constraints or None,
                prune_baseline=True,
            )
        bounds = torch.stack([torch.zeros(d, dtype=dt), torch.ones(d, dtype=dt)])
        x, _ = optimize_acqf(
            acq,
            bounds=bounds,
            q=n,
            num_restarts=self.num_restarts,
            raw_samples=self.raw_samples,
            options={"batch_limit": 4, "maxiter": 100, "seed": seed},
        )
        return [self.space.decode(u) for u in x.detach().numpy()]
