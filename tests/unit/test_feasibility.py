"""Algorithm 1's Delta schedule and the random-forest POF model."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from scoot.optim.feasibility import FeasibilityModel, batches_of, delta_after


def test_delta_follows_algorithm_1() -> None:
    assert delta_after([]) == 0.5
    # Five feasible single evaluations: one step down (line 13).
    assert delta_after([[True]] * 5) == 0.45
    assert delta_after([[True]] * 4) == 0.5
    # A failure from below 0.5 jumps back to at least 0.5 (line 8), then +0.05 each.
    assert delta_after([[True]] * 10 + [[False]]) == 0.5
    assert delta_after([[False], [False]]) == 0.6
    # Capped at 0.75, floored at 0.25.
    assert delta_after([[False]] * 20) == 0.75
    assert delta_after([[True]] * 100) == 0.25
    # A batch of k counts k feasible suggestions (line 11); one bad config spoils the batch.
    assert delta_after([[True, True, True], [True, True, True]]) == 0.45
    assert delta_after([[True, False]]) == 0.55
    # The count restarts after a failure (line 9).
    assert delta_after([[True]] * 4 + [[False]] + [[True]] * 4) == 0.55


def test_batches_of() -> None:
    assert batches_of([True, False, True], 2) == [[True, False], [True]]
    assert batches_of([True], 0) == [[True]]


def test_forest_learns_a_crash_region() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((80, 2))
    feasible = x[:, 0] < 0.6  # everything right of 0.6 crashes
    model = FeasibilityModel().fit(x, feasible, np.random.default_rng(1))
    pof = model.pof(np.array([[0.2, 0.5], [0.9, 0.5]]))
    assert pof[0] > 0.8 > 0.2 > pof[1]
    # Same data, same seed: the same forest.
    again = FeasibilityModel().fit(x, feasible, np.random.default_rng(1))
    assert again.pof(np.array([[0.61, 0.3]])) == pytest.approx(model.pof(np.array([[0.61, 0.3]])))


def test_one_class_histories() -> None:
    ok = FeasibilityModel().fit(np.zeros((3, 2)), np.array([True] * 3), np.random.default_rng())
    assert ok.pof(np.ones((2, 2))).tolist() == [1.0, 1.0]
    empty = FeasibilityModel().fit(
        np.zeros((0, 2)), np.array([], dtype=bool), np.random.default_rng()
    )
    assert empty.pof(np.ones((1, 2))).tolist() == [1.0]


def test_delta_starts_after_the_initial_design() -> None:
    """Algorithm 1 line 3 comes after the initial design: its crashes (and the default) do
    not raise Delta; the BO batches after it do."""
    from scoot.domain import Observation
    from scoot.optim.feasibility import gate_for
    from synthetic import SPACE, synthetic_metrics

    rng = np.random.default_rng(0)
    configs = [SPACE.decode(u) for u in rng.random((12, SPACE.dim))]
    design = [Observation(c, False) for c in configs[:6]]  # the design crashed four times
    design[0] = Observation(configs[0], True, synthetic_metrics(configs[0]))
    design[1] = Observation(configs[1], True, synthetic_metrics(configs[1]))
    after = [Observation(c, True, synthetic_metrics(c)) for c in configs[6:11]]
    history = design + after
    assert gate_for(SPACE, history, 1, np.random.default_rng(1), n_init=6).delta == 0.45
    # Replayed over everything, the design's crashes would have held Delta up.
    assert gate_for(SPACE, history, 1, np.random.default_rng(1)).delta == 0.65
    failed = [*history, Observation(configs[11], False)]
    assert gate_for(SPACE, failed, 1, np.random.default_rng(1), n_init=6).delta == 0.5


def _two_causes(n: int, seed: int) -> tuple[NDArray[np.float64], list[int | None]]:
    """Flag 0 below 0.5 runs out of memory loading the weights (70B on one GPU); above it,
    flag 1 below 0.6 leaves nothing for the KV cache; the rest runs. No config of the first
    kind has flag 1 above 0.9, so one forest can explain those failures by flag 1 as well as
    by flag 0."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3))
    x[x[:, 0] < 0.5, 1] *= 0.9
    stages: list[int | None] = [0 if u[0] < 0.5 else 1 if u[1] < 0.6 else None for u in x]
    return x, stages


def test_failed_stage_orders_a_launch() -> None:
    from scoot.domain import FailureKind, Observation
    from scoot.optim.feasibility import STAGES, failed_stage
    from synthetic import SPACE, synthetic_metrics

    c = SPACE.default() or SPACE.decode(np.full(SPACE.dim, 0.5))
    assert failed_stage(Observation(c, True, synthetic_metrics(c))) is None
    assert failed_stage(Observation(c, False, None, FailureKind.INVALID_ARGS)) == 0
    assert failed_stage(Observation(c, False, None, FailureKind.STARTUP_OOM)) == 1
    assert failed_stage(Observation(c, False, None, FailureKind.KV_CACHE_TOO_SMALL)) == 2
    assert failed_stage(Observation(c, False, None, FailureKind.HANG)) == 3
    assert failed_stage(Observation(c, False, None, None)) == len(STAGES) - 1
    # Every failure kind belongs to exactly one stage.
    kinds = [k for s in STAGES for k in s]
    assert sorted(kinds) == sorted(FailureKind)


def test_staged_forest_learns_each_cause_by_its_own_flag() -> None:
    from scoot.optim.feasibility import StagedFeasibility

    x, stages = _two_causes(40, 0)
    model = StagedFeasibility().fit(x, stages, np.random.default_rng(1))
    probe = np.array(
        [
            [0.2, 0.95, 0.5],  # the weights do not fit: flag 0 says so, unseen up here
            [0.8, 0.3, 0.5],  # no memory left for the KV cache
            [0.8, 0.95, 0.5],  # runs
        ]
    )
    pof = model.pof(probe)
    assert pof[0] < 0.2
    assert pof[1] < 0.2
    assert pof[2] > 0.8
    # A stage where nothing failed passes everywhere: only load failures seen, the rest runs.
    only = StagedFeasibility().fit(
        x, [s if s == 1 else None for s in stages], np.random.default_rng(1)
    )
    assert only.pof(probe[2:])[0] > 0.8


def test_staged_gate_is_the_default_and_the_papers_selectable() -> None:
    from scoot.domain import FailureKind, Observation
    from scoot.optim.feasibility import StagedFeasibility, gate_for
    from synthetic import SPACE, synthetic_metrics

    rng = np.random.default_rng(0)
    configs = [SPACE.decode(u) for u in rng.random((10, SPACE.dim))]
    history = [
        Observation(c, False, None, FailureKind.INVALID_ARGS)
        if i % 3 == 0
        else Observation(c, True, synthetic_metrics(c))
        for i, c in enumerate(configs)
    ]
    staged = gate_for(SPACE, history, 1, np.random.default_rng(1))  # the default
    assert isinstance(staged.pof, StagedFeasibility)
    paper = gate_for(SPACE, history, 1, np.random.default_rng(1), feasibility="paper")
    assert isinstance(paper.pof, FeasibilityModel)
    with pytest.raises(ValueError, match="feasibility must be one of staged, paper"):
        gate_for(SPACE, history, 1, np.random.default_rng(1), feasibility="forest")


def test_pof_is_the_forests_own_prediction() -> None:
    """The tree loop of FeasibilityModel.pof gives what scikit-learn's predict gives."""
    rng = np.random.default_rng(4)
    x = rng.random((40, 5))
    model = FeasibilityModel().fit(x, x[:, 0] + 0.3 * x[:, 1] > 0.6, rng)
    probe = rng.random((300, 5))
    assert model._forest is not None
    expected = np.clip(model._forest.predict(probe), 0.0, 1.0)  # type: ignore[attr-defined]
    assert np.array_equal(model.pof(probe), expected)
    assert 0.0 < model.pof(probe).mean() < 1.0


def test_the_delta_an_operator_sees_is_the_gates() -> None:
    """The TUI's and the report's Delta trace (delta_trace) holds 0.5 through the design and
    ends where the next round's gate stands."""
    from scoot.domain import Observation
    from scoot.optim.feasibility import DELTA_START, delta_trace, gate_for
    from synthetic import SPACE, synthetic_metrics

    rng = np.random.default_rng(0)
    configs = [SPACE.decode(u) for u in rng.random((14, SPACE.dim))]
    ran = [i not in (1, 2, 3, 9) for i in range(14)]  # three design crashes, one after
    history = [
        Observation(c, True, synthetic_metrics(c)) if ok else Observation(c, False)
        for c, ok in zip(configs, ran, strict=True)
    ]
    for k in (1, 2):
        trace = delta_trace(ran, k, 6)
        assert len(trace) == 14 and trace[:6] == [DELTA_START] * 6
        for i in range(6, 15):
            gate = gate_for(SPACE, history[:i], k, np.random.default_rng(1), n_init=6)
            assert gate.delta == trace[i - 1]
    assert max(delta_trace(ran, 1, 6)) == 0.55  # the failure after the design, not before
