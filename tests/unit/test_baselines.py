"""What the baselines share: penalties for failed configs (the paper's GA and vanilla BO)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from scoot.domain import Config, FailureKind, Objective, Observation, OutcomeConstraint
from scoot.optim.baselines import (
    BoTorchSuggester,
    GASuggester,
    TPESuggester,
    VanillaBO,
    penalised,
)
from scoot.optim.outcomes import meets
from scoot.optim.sobol import SobolSuggester
from synthetic import SPACE, TWO, synthetic_metrics


def _history() -> list[Observation]:
    out = []
    for i, c in enumerate(SobolSuggester(SPACE).sample(12, np.random.default_rng(2))):
        ok = i % 3 != 0
        out.append(
            Observation(
                c, ok, synthetic_metrics(c) if ok else None, None if ok else FailureKind.HANG
            )
        )
    return out


def test_a_failed_config_is_worse_than_every_feasible_one() -> None:
    h = _history()
    for objectives in ((Objective.P95_LATENCY,), TWO, (Objective.THROUGHPUT,)):
        f = penalised(h, objectives)
        assert f is not None
        ok = np.array([o.feasible for o in h])
        assert np.all(f[~ok].min(axis=0) > f[ok].max(axis=0))


def test_nothing_ran_means_no_penalty_to_give() -> None:
    h = [o for o in _history() if not o.feasible]
    assert penalised(h, TWO) is None


def test_ga_breeds_from_the_best() -> None:
    """Elitist survival over the whole history: children share the good parents' traits."""
    h = [o for o in _history() if o.feasible]
    ga = GASuggester(SPACE, (Objective.P95_LATENCY,), pop_size=3, n_init=2)
    children = [s for s in ga.suggest(h, 6, np.random.default_rng(0)) if s.source == "ga"]
    assert children
    best = sorted(h, key=lambda o: o.objective(Objective.P95_LATENCY))[:3]
    worst = sorted(h, key=lambda o: o.objective(Objective.P95_LATENCY))[-3:]

    def dist(c: object, group: list[Observation]) -> float:
        x = SPACE.encode(c)  # type: ignore[arg-type]
        return min(float(np.abs(x - SPACE.encode(o.config)).sum()) for o in group)

    assert np.mean([dist(s.config, best) for s in children]) < np.mean(
        [dist(s.config, worst) for s in children]
    )


def test_tpe_learns_the_crash_region_through_optunas_constraints() -> None:
    """A crash is a complete trial with a violated constraint (Optuna 5's `set_constraint`),
    not a FAIL that TPE ignores: after 30 observations, half of them crashes left of 0.5 on
    the first axis, most of TPE's suggestions are on the right (told FAIL, about half)."""

    def runs(c: Config) -> bool:
        return bool(SPACE.encode(c)[0] >= 0.5)

    good = 0
    for seed in range(4):
        history = [
            Observation(c, True, synthetic_metrics(c))
            if runs(c)
            else Observation(c, False, failure=FailureKind.STARTUP_CRASH)
            for c in SobolSuggester(SPACE, seed=seed).sample(30, np.random.default_rng(0))
        ]
        tpe = TPESuggester(SPACE, (Objective.P95_LATENCY,), n_init=3)
        good += sum(runs(s.config) for s in tpe.suggest(history, 8, np.random.default_rng(seed)))
    assert good >= 26, good


SLO = (OutcomeConstraint.parse("mean_tpot_ms <= 11"),)
"""Met where the token budget is small (the synthetic TPOT rises with it), while the p95
optimum sits at a larger budget: the SLO moves the constrained optimum."""


def test_an_slo_miss_ranks_between_the_configs_that_met_it_and_the_failures() -> None:
    h = _history()
    slo = (OutcomeConstraint.parse("mean_tpot_ms <= 14"),)
    f = penalised(h, (Objective.P95_LATENCY,), slo)
    assert f is not None
    met = np.array([meets(o, slo) for o in h])
    ran = np.array([o.feasible for o in h])
    missed = ran & ~met
    assert met.any() and missed.any() and (~ran).any()
    assert f[missed].min() > f[met].max()
    assert f[~ran].min() > f[missed].max()
    # Among the misses, their own order stays.
    own = [o.objective(Objective.P95_LATENCY) for o in h if o.feasible and not meets(o, slo)]
    assert list(np.argsort(f[missed][:, 0])) == list(np.argsort(own))


@pytest.mark.parametrize(
    "name",
    ["tpe", "botorch", pytest.param("vanilla-bo", marks=pytest.mark.slow)],  # HEBO: ~28 s
)
def test_a_baseline_told_the_slo_suggests_configs_that_meet_it(name: str) -> None:
    """Each baseline's own constraint handling (Optuna's constraints, BoTorch's outcome
    constraint, penalties) moves its suggestions into the region meeting the SLO, where the
    same baseline without it follows the unconstrained optimum out of it (its TPOT is 10 to
    20 ms over the space; the SLO's bound is 11 ms)."""

    def make(slo: tuple[OutcomeConstraint, ...]) -> Any:
        obj = (Objective.P95_LATENCY,)
        if name == "tpe":
            return TPESuggester(SPACE, obj, n_init=3, slo=slo)
        if name == "botorch":
            return BoTorchSuggester(
                SPACE, obj, n_init=3, raw_samples=64, num_restarts=2, mc_samples=32, slo=slo
            )
        return VanillaBO(SPACE, obj, n_init=3, slo=slo)

    def met(slo: tuple[OutcomeConstraint, ...]) -> float:
        """The mean TPOT of the baseline's own picks (not Sobol's fill)."""
        own = []
        for seed in range(4):
            configs = SobolSuggester(SPACE, seed=seed).sample(24, np.random.default_rng(0))
            history = [Observation(c, True, synthetic_metrics(c)) for c in configs]
            picks = make(slo).suggest(history, 1, np.random.default_rng(seed))
            own += [
                synthetic_metrics(s.config).mean_tpot_ms for s in picks if "sobol" not in s.source
            ]
        assert own
        return float(np.mean(own))

    with_slo, without = met(SLO), met(())
    # Near the bound (the constrained optimum lies on it), well below where the
    # unconstrained search goes.
    assert with_slo <= 11.5 and without >= with_slo + 1.0, (with_slo, without)
