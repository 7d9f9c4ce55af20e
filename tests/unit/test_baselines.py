"""What the baselines share: penalties for failed configs (the paper's GA and vanilla BO)."""

from __future__ import annotations

import numpy as np

from scoot.domain import FailureKind, Objective, Observation
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
