"""What the baselines share: penalties for failed configs (the paper's GA and vanilla BO)."""

from __future__ import annotations

import numpy as np

from scoot.domain import Config, FailureKind, Objective, Observation
from scoot.optim.baselines import GASuggester, penalised
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
    from scoot.optim.baselines import TPESuggester

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
