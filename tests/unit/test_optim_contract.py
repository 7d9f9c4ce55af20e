"""Contract tests every suggester must pass (Optuna-style, parametrised over suggesters)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from scoot.domain import (
    Config,
    FailureKind,
    Metrics,
    Objective,
    Observation,
    OutcomeConstraint,
    ParamKind,
    ParamSpec,
)
from scoot.optim.baselines import (
    BoTorchSuggester,
    GASuggester,
    OptunaGPSuggester,
    TPESuggester,
    VanillaBO,
)
from scoot.optim.mobo import ScootMOBO
from scoot.optim.protocol import Suggester
from scoot.optim.sobo import ScootSOBO
from scoot.optim.sobol import SobolSuggester
from scoot.optim.space import SearchSpace
from synthetic import PARAMS, SPACE, TWO, synthetic_metrics

TPOT_SLO = "mean_tpot_ms <= 12"

SUGGESTERS: dict[str, Callable[[SearchSpace], Suggester]] = {
    "sobol": SobolSuggester,
    "sobol-seeded": lambda space: SobolSuggester(space, seed=11),
    # Small solver settings keep the contract fast; the method is the same.
    "scoot-sobo": lambda space: ScootSOBO(space, Objective.P95_LATENCY, n_init=3, pop=20, iters=8),
    "scoot-sobo-no-rf": lambda space: ScootSOBO(
        space, Objective.P95_LATENCY, n_init=3, pop=20, iters=8, use_forest=False
    ),
    "scoot-mobo": lambda space: ScootMOBO(space, TWO, n_init=3, pop=16, gens=6, epochs=30),
    "ga": lambda space: GASuggester(space, (Objective.P95_LATENCY,), n_init=3),
    "nsga2": lambda space: GASuggester(space, TWO, n_init=3),
    "vanilla-bo": lambda space: VanillaBO(space, (Objective.P95_LATENCY,), n_init=3),
    "vanilla-bo-2": lambda space: VanillaBO(space, TWO, n_init=3, evo_iters=10),
    "tpe": lambda space: TPESuggester(space, (Objective.P95_LATENCY,), n_init=3),
    "mo-tpe": lambda space: TPESuggester(space, TWO, n_init=3),
    "optuna-gp": lambda space: OptunaGPSuggester(
        space, (Objective.P95_LATENCY,), n_init=3, preliminary_samples=64, local_searches=2
    ),
    "optuna-gp-2": lambda space: OptunaGPSuggester(
        space, TWO, n_init=3, preliminary_samples=64, local_searches=2
    ),
    "botorch": lambda space: BoTorchSuggester(
        space, (Objective.P95_LATENCY,), n_init=3, raw_samples=16, num_restarts=1, mc_samples=8
    ),
    # Outcome constraints (issue 17) as each baseline handles them.
    "tpe-slo": lambda space: TPESuggester(
        space, (Objective.P95_LATENCY,), n_init=3, slo=(OutcomeConstraint.parse(TPOT_SLO),)
    ),
    "botorch-slo": lambda space: BoTorchSuggester(
        space,
        (Objective.P95_LATENCY,),
        n_init=3,
        raw_samples=16,
        num_restarts=1,
        mc_samples=8,
        slo=(OutcomeConstraint.parse(TPOT_SLO),),
    ),
    "botorch-2": lambda space: BoTorchSuggester(
        space, TWO, n_init=3, raw_samples=16, num_restarts=1, mc_samples=8
    ),
}


@pytest.fixture(params=sorted(SUGGESTERS))
def suggester(request: pytest.FixtureRequest) -> Suggester:
    return SUGGESTERS[request.param](SPACE)


def _history(n: int, feasible: bool = True) -> list[Observation]:
    configs = SobolSuggester(SPACE).sample(n, np.random.default_rng(99))
    return [
        Observation(
            c,
            feasible,
            synthetic_metrics(c) if feasible else None,
            None if feasible else FailureKind.STARTUP_OOM,
        )
        for c in configs
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_allowed_distinct_and_new(suggester: Suggester, seed: int) -> None:
    history = _history(5)
    out = suggester.suggest(history, 8, np.random.default_rng(seed))
    assert len(out) == 8
    configs = [s.config for s in out]
    assert len(set(configs)) == len(configs)
    assert not set(configs) & {o.config for o in history}
    for c in configs:
        assert SPACE.allowed(c), c
        for p in PARAMS:
            assert p.contains(c[p.name])


def test_never_violates_known_constraints(suggester: Suggester) -> None:
    out = suggester.suggest([], 200, np.random.default_rng(5))
    assert len(out) == 200
    for s in out:
        v = {**SPACE.fixed, **s.config.as_dict()}
        tokens, seqs = int(v["max_num_batched_tokens"]), int(v["max_num_seqs"])
        assert tokens >= seqs
        assert v["enable_chunked_prefill"] or tokens >= 8192


def test_same_seed_same_suggestions(suggester: Suggester) -> None:
    history = _history(4)
    a = suggester.suggest(history, 3, np.random.default_rng(11))
    b = suggester.suggest(history, 3, np.random.default_rng(11))
    c = suggester.suggest(history, 3, np.random.default_rng(12))
    assert a == b
    if isinstance(suggester, SobolSuggester) and suggester.seed is not None:
        # A seeded sequence is the study's: its seed, not the round's generator, varies it.
        other = SobolSuggester(SPACE, seed=suggester.seed + 1)
        c = other.suggest(history, 3, np.random.default_rng(11))
    assert a != c


def test_all_failed_history(suggester: Suggester) -> None:
    out = suggester.suggest(_history(6, feasible=False), 2, np.random.default_rng(0))
    assert len(out) == 2


def test_does_not_touch_global_random_state(suggester: Suggester) -> None:
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    suggester.suggest(_history(3), 2, np.random.default_rng(0))
    assert np.random.random() == expected


def test_space_round_trip() -> None:
    c = Config.of(
        {
            "max_num_seqs": 64,
            "max_num_batched_tokens": 4096,
            "enable_chunked_prefill": False,
            "block_size": 32,
            "gpu_memory_utilization": 0.8,
        }
    )
    assert SPACE.decode(SPACE.encode(c)) == c


def test_tiny_space_runs_out_gracefully() -> None:
    space = SearchSpace((ParamSpec("b", ParamKind.BOOL, choices=(False, True)),))
    s = SobolSuggester(space)
    assert len(s.suggest([], 5, np.random.default_rng(0))) == 2


def test_scoot_sobo_suggests_from_the_acquisition_pareto_set() -> None:
    sobo = ScootSOBO(SPACE, Objective.P95_LATENCY, n_init=3, pop=20, iters=8)
    out = sobo.suggest(_history(8), 3, np.random.default_rng(0))
    assert len(out) == 3
    assert any(s.source == "scoot-sobo" for s in out)
    # Before the initial design is complete it samples Sobol points.
    assert {s.source for s in sobo.suggest(_history(2), 2, np.random.default_rng(0))} == {"sobol"}


def test_scoot_sobo_keeps_away_from_a_learned_crash_region() -> None:
    """Configs with few sequences crashed; the forest learns it and POF >= Delta prunes it."""
    history = []
    for c in SobolSuggester(SPACE).sample(24, np.random.default_rng(3)):
        crashed = SPACE.encode(c)[0] < 0.5
        history.append(
            Observation(
                c,
                not crashed,
                None if crashed else synthetic_metrics(c),
                FailureKind.STARTUP_OOM if crashed else None,
            )
        )
    sobo = ScootSOBO(SPACE, Objective.P95_LATENCY, pop=20, iters=8)
    out = sobo.suggest(history, 4, np.random.default_rng(1))
    bo = [s for s in out if s.source == "scoot-sobo"]
    assert bo, "the solver found no candidate"
    assert all(SPACE.encode(s.config)[0] >= 0.4 for s in bo)


def test_gp_fits_with_a_constant_column_and_points_on_bounds() -> None:
    """Both happen in real studies (a flag never varied among feasible configs; the default on
    a bound). Either made HEBO's GP fit NaNs and fall back to random predictions."""
    import contextlib
    import io

    from scoot.optim.feasibility import FeasibilityModel, Gate
    from scoot.optim.surrogate import isolated_random_state

    history = [
        Observation(c, True, synthetic_metrics(c), None)
        for c in SobolSuggester(SPACE).sample(12, np.random.default_rng(4))
        if c["enable_chunked_prefill"]  # constant column among the observations
    ]
    history.append(
        Observation(
            SPACE.decode([1.0] * 5), True, synthetic_metrics(SPACE.decode([1.0] * 5)), None
        )
    )
    sobo = ScootSOBO(SPACE, Objective.P95_LATENCY, pop=20, iters=8)
    x = np.array([SPACE.encode(o.config) for o in history])
    pof = FeasibilityModel().fit(x, np.ones(len(x), dtype=bool), np.random.default_rng(0))
    printed = io.StringIO()
    with isolated_random_state(0), contextlib.redirect_stdout(printed):
        candidates = sobo._pareto_set(history, Gate(SPACE, pof, 0.5), len(history) + 1)
    assert "jitter" not in printed.getvalue()
    assert candidates


def test_a_seeded_design_suggested_one_at_a_time_is_one_sobol_sequence() -> None:
    """§4.1's initial design at k = 1: the points of d rounds of one suggestion each are the
    first d points of one scrambled sequence, as a single round of d would give."""
    sobol = SobolSuggester(SPACE, seed=5)
    rng = np.random.default_rng(0)
    history: list[Observation] = []
    for _ in range(8):
        (s,) = sobol.suggest(history, 1, rng)
        history.append(Observation(s.config, True, synthetic_metrics(s.config)))
    together = SobolSuggester(SPACE, seed=5).sample(8, np.random.default_rng(1))
    assert [o.config for o in history] == together
    # Unseeded, each call scrambles anew: the points are not that sequence.
    fresh = SobolSuggester(SPACE)
    alone: list[Observation] = []
    for i in range(8):
        (s,) = fresh.suggest(alone, 1, np.random.default_rng(i))
        alone.append(Observation(s.config, True, synthetic_metrics(s.config)))
    assert [o.config for o in alone] != together


def test_a_crash_heavy_space_is_screened_before_a_second_success() -> None:
    """Only the default ran, and everything below 0.6 on the first axis crashed: while no
    model can be fitted, the forest already keeps SCOOT's next Sobol points out of the crash
    region (plain Sobol puts most of them there)."""

    def runs(c: Config) -> bool:
        return bool(SPACE.encode(c)[0] >= 0.6)  # the default (256 sequences) is at 0.86

    default = SPACE.default()
    assert default is not None
    history = [Observation(default, True, synthetic_metrics(default))]
    for c in SobolSuggester(SPACE).sample(24, np.random.default_rng(8), {default}):
        if not runs(c):
            history.append(Observation(c, False, failure=FailureKind.STARTUP_CRASH))
    assert len(history) >= 8
    sobo = ScootSOBO(SPACE, Objective.P95_LATENCY, n_init=6, seed=3)
    picked = sobo.suggest(history, 8, np.random.default_rng(0))
    plain = SobolSuggester(SPACE, seed=3).suggest(history, 8, np.random.default_rng(0))
    assert sum(runs(s.config) for s in picked) >= 6 > sum(runs(s.config) for s in plain)
    assert {s.source for s in picked} <= {"sobol-screened", "sobol-fill"}


def test_a_diverse_sobo_batch_spreads_over_the_pareto_set() -> None:
    base = SPACE.default()
    assert base is not None
    # Ten near-copies of one config and two configs far from it: a Pareto set's usual shape.
    copies = [
        Config.of({**base.as_dict(), "gpu_memory_utilization": 0.8 + 0.001 * i}) for i in range(10)
    ]
    far = [
        Config.of({**base.as_dict(), "max_num_seqs": 4, "max_num_batched_tokens": 16384}),
        Config.of({**base.as_dict(), "max_num_seqs": 512, "block_size": 64}),
    ]
    pool = [*copies, *far]
    for seed in range(5):
        picks = ScootSOBO(SPACE, Objective.P95_LATENCY, batch="diverse")._pick(
            pool, 3, np.random.default_rng(seed)
        )
        assert set(far) <= set(picks), seed  # one of each cluster
        paper = ScootSOBO(SPACE, Objective.P95_LATENCY)._pick(pool, 3, np.random.default_rng(seed))
        assert picks[0] == paper[0]  # the first pick is the paper's random draw
    with pytest.raises(ValueError, match="batch must be one of paper, diverse"):
        ScootSOBO(SPACE, Objective.P95_LATENCY, batch="spread")


def test_ucb_multiplier_is_sqrt_beta_or_eq6s_beta() -> None:
    import math

    from scoot.optim.sobo import ucb_beta

    sobo = ScootSOBO(SPACE, Objective.P95_LATENCY)
    assert sobo.kappa(20) == pytest.approx(math.sqrt(ucb_beta(20)))
    paper = ScootSOBO(SPACE, Objective.P95_LATENCY, ucb="paper")
    assert paper.kappa(20) == pytest.approx(ucb_beta(20))
    assert paper.kappa(20) > sobo.kappa(20)
    with pytest.raises(ValueError, match="ucb must be one of sqrt, paper"):
        ScootSOBO(SPACE, Objective.P95_LATENCY, ucb="beta")


def test_feasibility_model_is_checked_on_both_scoot_optimizers() -> None:
    with pytest.raises(ValueError, match="feasibility must be one of staged, paper"):
        ScootSOBO(SPACE, Objective.P95_LATENCY, feasibility="forest")
    with pytest.raises(ValueError, match="feasibility must be one of staged, paper"):
        ScootMOBO(SPACE, (Objective.TTFT, Objective.TPOT), feasibility="forest")
    assert ScootSOBO(SPACE, Objective.P95_LATENCY).feasibility == "staged"
    assert ScootMOBO(SPACE, (Objective.TTFT, Objective.TPOT)).feasibility == "staged"
    assert ScootSOBO(SPACE, Objective.P95_LATENCY, feasibility="paper").feasibility == "paper"


GRID = SearchSpace(
    (
        ParamSpec("max_num_seqs", ParamKind.ENUM, choices=(16, 32, 64, 128), default=64),
        ParamSpec("max_num_batched_tokens", ParamKind.ENUM, choices=(1024, 2048, 4096, 8192)),
        ParamSpec("gpu_memory_utilization", ParamKind.ENUM, choices=(0.8, 0.92), default=0.92),
    )
)


def test_neighbours_are_one_move_away() -> None:
    c = Config.of(
        {"max_num_seqs": 32, "max_num_batched_tokens": 1024, "gpu_memory_utilization": 0.92}
    )
    names = ("max_num_seqs", "max_num_batched_tokens", "gpu_memory_utilization")
    got = {tuple(n[k] for k in names) for n in GRID.neighbours(c)}
    assert got == {(16, 1024, 0.92), (64, 1024, 0.92), (32, 2048, 0.92), (32, 1024, 0.8)}
    base = SPACE.default()
    assert base is not None
    # Without chunked prefill the token budget must cover max_model_len (8,192): a known
    # constraint keeps the flip out at 2,048 tokens, not at 16,384.
    assert all(n["enable_chunked_prefill"] for n in SPACE.neighbours(base))
    wide = Config.of({**base.as_dict(), "max_num_batched_tokens": 16384})
    moved = SPACE.neighbours(wide)
    assert any(not n["enable_chunked_prefill"] for n in moved)  # a boolean flips
    assert all(SPACE.allowed(n) for n in moved) and wide not in moved
    assert {n["block_size"] for n in moved} == {16, 32}  # the next choice, not the far one


class _Slope:
    """A stand-in GP whose mean rises along the first axis, with no spread."""

    def predict_numpy(
        self, u: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return u[:, 0].astype(float), np.zeros(len(u))


def test_the_model_fill_takes_the_gates_passers_by_lcb() -> None:
    from scoot.optim.feasibility import FeasibilityModel, Gate

    sobo = ScootSOBO(GRID, Objective.P95_LATENCY, seed=1)
    sobo._lcb = (_Slope(), 2.0)  # type: ignore[assignment]
    everything = Gate(GRID, None, 0.0)
    got = sobo._filled([], everything, 4, set(), np.random.default_rng(0))
    assert [c["max_num_seqs"] for c in got] == [16, 16, 16, 16]  # the lowest LCB first
    # A forest that has seen 0.8 fail: its configs come only after every passer.
    x = np.array(
        [GRID.encode(c) for c in SobolSuggester(GRID, seed=2).sample(24, np.random.default_rng(0))]
    )
    forest = FeasibilityModel().fit(x, x[:, 2] > 0.5, np.random.default_rng(0))
    gated = sobo._filled([], Gate(GRID, forest, 0.5), 20, set(), np.random.default_rng(0))
    memory = [c["gpu_memory_utilization"] for c in gated]
    assert memory[:16] == [0.92] * 16 and set(memory[16:]) == {0.8}


def test_a_fill_keeps_out_of_a_known_crash_region() -> None:
    """On a grid whose solver falls short, the default fill comes from the configs the forest
    lets through; the paper's plain Sobol fill is blind to it."""

    def runs(c: Config) -> bool:
        return c["gpu_memory_utilization"] == 0.92

    def observe(c: Config) -> Observation:
        if not runs(c):
            return Observation(c, False, failure=FailureKind.KV_CACHE_TOO_SMALL)
        seqs, tokens = GRID.encode(c)[:2]
        p95 = 1000.0 * (1.0 + seqs + tokens)
        return Observation(c, True, Metrics.of(completed=10, duration_s=1.0, p95_e2el_ms=p95))

    history = [
        observe(c) for c in SobolSuggester(GRID, seed=4).sample(14, np.random.default_rng(0))
    ]
    assert sum(o.feasible for o in history) >= 4 and not all(o.feasible for o in history)
    crashing = {}
    for fill in ("model", "paper"):
        sobo = ScootSOBO(GRID, Objective.P95_LATENCY, n_init=4, pop=20, iters=8, seed=1, fill=fill)
        got = sobo.suggest(history, 6, np.random.default_rng(3))
        assert len(got) == 6 and not {s.config for s in got} & {o.config for o in history}
        assert any(s.source.endswith("fill") for s in got), fill  # the solver fell short
        crashing[fill] = sum(not runs(s.config) for s in got)
    assert crashing["model"] == 0 < crashing["paper"]
    with pytest.raises(ValueError, match="fill must be one of model, paper"):
        ScootSOBO(GRID, Objective.P95_LATENCY, fill="sobol")


def test_a_liar_batch_tells_each_pick_before_the_next() -> None:
    history = [
        Observation(c, True, synthetic_metrics(c))
        for c in SobolSuggester(SPACE, seed=3).sample(8, np.random.default_rng(0))
    ]
    sobo = ScootSOBO(
        SPACE, Objective.P95_LATENCY, n_init=4, pop=20, iters=8, parallelism=3, batch="liar"
    )
    told: list[list[Observation]] = []
    solve = sobo._pareto_set

    def spy(feasible: list[Observation], gate: object, t: int) -> list[Config]:
        told.append(list(feasible))
        return solve(feasible, gate, t)  # type: ignore[arg-type]

    sobo._pareto_set = spy  # type: ignore[assignment, method-assign]
    got = sobo.suggest(history, 3, np.random.default_rng(1))
    assert len({s.config for s in got}) == 3
    assert not {s.config for s in got} & {o.config for o in history}
    assert [len(t) for t in told] == [8, 9, 10]  # one solver run per pick, each told the last
    best = min(history, key=lambda o: o.objective(Objective.P95_LATENCY))
    lies = told[2][8:]
    assert [o.config for o in lies] == [s.config for s in got[:2]]
    assert all(o.metrics == best.metrics for o in lies)  # the constant liar: the incumbent
