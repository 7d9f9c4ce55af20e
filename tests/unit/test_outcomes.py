"""Outcome constraints (issue 17): the SLO model, suggestions that respect it, the winner."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from scoot.domain import Config, Metrics, Objective, Observation, OutcomeConstraint, TrialState
from scoot.optim.outcomes import SloModel, meets
from scoot.optim.sobo import ScootSOBO
from scoot.optim.sobol import SobolSuggester
from synthetic import SPACE, synthetic_metrics

# TPOT rises with the token budget (x[1]); the p95 optimum sits at x[1] = 0.55, where TPOT is
# about 13.1 ms: an SLO of 12 ms rules the unconstrained optimum out.
SLO = (OutcomeConstraint("mean_tpot_ms", "<=", 12.0),)


def _history(n: int) -> list[Observation]:
    configs = SobolSuggester(SPACE).sample(n, np.random.default_rng(3))
    return [Observation(c, True, synthetic_metrics(c), None) for c in configs]


def test_the_slo_model_separates_configs_that_meet_the_slo_from_those_that_do_not() -> None:
    history = _history(40)  # with 16 the fit varies with the torch seed (0.17-0.90 at low)
    half = (OutcomeConstraint("mean_tpot_ms", "<=", 13.0),)  # met over about half the space
    model = SloModel(SPACE, history, half, epochs=60)
    low = SPACE.encode(SPACE.default() or history[0].config).copy()
    high = low.copy()
    low[0], low[1] = 0.5, 0.05  # TPOT 10.0 ms
    high[0], high[1] = 0.5, 0.95  # TPOT 19.0 ms
    p = model.probability(np.array([low, high]))
    assert p[0] > 0.5 > p[1]
    assert p[0] - p[1] > 0.4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sobo_suggests_configs_likely_to_meet_the_slo(seed: int) -> None:
    history = _history(30)
    sobo = ScootSOBO(SPACE, Objective.P95_LATENCY, n_init=6, pop=30, iters=12, slo=SLO)
    out = sobo.suggest(history, 4, np.random.default_rng(seed))
    met = [meets(Observation(s.config, True, synthetic_metrics(s.config), None), SLO) for s in out]
    model_picks = [m for s, m in zip(out, met, strict=True) if s.source == sobo.name]
    assert model_picks, [s.source for s in out]
    assert sum(model_picks) >= len(model_picks) - 1  # the model's picks keep to the SLO


def test_an_slo_missed_is_not_a_crash_and_the_winner_must_meet_it() -> None:
    from scoot.jobs.policy import best_trial, slo_missed
    from scoot.jobs.store import TrialRow

    def row(i: int, p95: float, tpot: float) -> TrialRow:
        m = Metrics.of(completed=10, p95_e2el_ms=p95, mean_tpot_ms=tpot)
        return TrialRow(
            id=i,
            study_id=1,
            number=i,
            config=Config.of({"x": i}),
            source="t",
            state=TrialState.COMPLETED,
            failure_kind=None,
            failure_message=None,
            metrics=m,
            gpu_set=None,
            engine_pgid=None,
            command=None,
            log_path=None,
            created_at=0.0,
            started_at=None,
            ended_at=None,
        )

    trials = [row(0, 900.0, 12.5), row(1, 1000.0, 10.0), row(2, 1200.0, 9.0)]
    assert best_trial(trials, (Objective.P95_LATENCY,)).number == 0  # type: ignore[union-attr]
    winner = best_trial(trials, (Objective.P95_LATENCY,), SLO)
    assert winner is not None and winner.number == 1
    assert slo_missed(trials, SLO) is None
    strict = (OutcomeConstraint("mean_tpot_ms", "<=", 5.0),)
    assert best_trial(trials, (Objective.P95_LATENCY,), strict) is None
    assert "no completed trial meets every SLO (mean_tpot_ms <= 5)" in (
        slo_missed(trials, strict) or ""
    )
    # The observation of a config that missed its SLO is feasible: the forest learns crashes.
    assert trials[0].observation() is not None
    assert trials[0].observation().feasible  # type: ignore[union-attr]


def test_cost_and_per_gpu_throughput_count_the_gpus_a_config_uses() -> None:
    from scoot.jobs.evaluate import derived, gpus_used
    from scoot.study import StudySpec, load_study

    spec = load_study(_demo())
    spec = dataclasses.replace(spec, gpu_hour_usd=3.6)
    m = Metrics.of(output_throughput=1000.0)
    one = derived(m, spec, {"tensor_parallel_size": 1})
    two = derived(m, spec, {"tensor_parallel_size": 2})
    assert gpus_used(spec, {"tensor_parallel_size": 2}) == 2
    assert one.throughput_per_gpu == 1000.0 and two.throughput_per_gpu == 500.0
    # 1 GPU x $3.6/h over 3.6 M tokens an hour: $1 per million; twice that on two GPUs.
    assert one.cost_per_mtok is not None and abs(one.cost_per_mtok - 1.0) < 1e-9
    assert two.cost_per_mtok is not None and abs(two.cost_per_mtok - 2.0) < 1e-9
    assert derived(m, dataclasses.replace(spec, gpu_hour_usd=None), {}).cost_per_mtok is None
    assert isinstance(spec, StudySpec)


def _demo() -> str:
    from scoot.cli import demo_study_path

    return str(demo_study_path())
