"""Contract tests every suggester must pass (Optuna-style, parametrised over suggesters)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from scoot.domain import Config, Constraint, FailureKind, Observation, ParamKind, ParamSpec
from scoot.optim.protocol import Suggester
from scoot.optim.sobol import SobolSuggester
from scoot.optim.space import SearchSpace

PARAMS = (
    ParamSpec("max_num_seqs", ParamKind.INT, 4, 512, log=True, default=256),
    ParamSpec("max_num_batched_tokens", ParamKind.INT, 256, 16384, log=True, default=2048),
    ParamSpec("enable_chunked_prefill", ParamKind.BOOL, choices=(False, True), default=True),
    ParamSpec("block_size", ParamKind.ENUM, choices=(16, 32, 64), default=16),
    ParamSpec("gpu_memory_utilization", ParamKind.FLOAT, 0.5, 0.95, default=0.9),
)
CONSTRAINTS = (
    Constraint.parse("max_num_batched_tokens >= max_num_seqs"),
    Constraint.parse(
        "max_num_batched_tokens >= max_model_len if not enable_chunked_prefill else True"
    ),
)
SPACE = SearchSpace(PARAMS, CONSTRAINTS, {"max_model_len": 8192})

SUGGESTERS: dict[str, Callable[[SearchSpace], Suggester]] = {"sobol": SobolSuggester}


@pytest.fixture(params=sorted(SUGGESTERS))
def suggester(request: pytest.FixtureRequest) -> Suggester:
    return SUGGESTERS[request.param](SPACE)


def _history(n: int, feasible: bool = True) -> list[Observation]:
    configs = SobolSuggester(SPACE).sample(n, np.random.default_rng(99))
    return [
        Observation(c, feasible, None, None if feasible else FailureKind.STARTUP_OOM)
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
        assert v["max_num_batched_tokens"] >= v["max_num_seqs"]
        assert v["enable_chunked_prefill"] or v["max_num_batched_tokens"] >= 8192


def test_same_seed_same_suggestions(suggester: Suggester) -> None:
    history = _history(4)
    a = suggester.suggest(history, 3, np.random.default_rng(11))
    b = suggester.suggest(history, 3, np.random.default_rng(11))
    c = suggester.suggest(history, 3, np.random.default_rng(12))
    assert a == b
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
