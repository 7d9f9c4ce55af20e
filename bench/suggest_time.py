"""Scale of the optimizer (issue 16): seconds per suggestion at 30 and 100 observations in 12
dimensions, for SCOOT's SOBO and MOBO at k = 1.

Writes bench/results/suggest_time.json and prints it as its last line. The space is the twelve
vLLM flags the embedded engine emulates, with the ranges an operator writes (log-scaled
integers, a float, booleans, enums); the observations are Sobol points with a smooth synthetic
p95 latency, TTFT and TPOT and three crash regions of three failure kinds (a load OOM, no
memory for the KV cache, a crash under load: about a quarter of the space), so the forests (one
per launch stage that saw a failure, the default) and the models have real work. Each figure
is the median of ``REPEATS`` suggestions from different histories. Targets: at most 2 s at 30
observations and 5 s at 100, on 2 cores.
``--quick``: one repeat each.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import finish, header, parse_args

from scoot.domain import (
    Constraint,
    FailureKind,
    Metrics,
    Objective,
    Observation,
    ParamKind,
    ParamSpec,
)
from scoot.optim.mobo import ScootMOBO
from scoot.optim.sobo import ScootSOBO
from scoot.optim.sobol import SobolSuggester
from scoot.optim.space import SearchSpace

PARAMS = (
    ParamSpec("max_num_seqs", ParamKind.INT, 4, 1024, log=True, default=256),
    ParamSpec("max_num_batched_tokens", ParamKind.INT, 512, 16384, log=True, default=2048),
    ParamSpec("enable_chunked_prefill", ParamKind.BOOL, choices=(False, True), default=True),
    ParamSpec("enable_prefix_caching", ParamKind.BOOL, choices=(False, True), default=True),
    ParamSpec("gpu_memory_utilization", ParamKind.FLOAT, 0.7, 0.95, default=0.9),
    ParamSpec("block_size", ParamKind.ENUM, choices=(16, 32, 64, 128), default=16),
    ParamSpec("long_prefill_token_threshold", ParamKind.INT, 0, 4096, default=0),
    ParamSpec("max_num_active_seqs", ParamKind.INT, 4, 1024, log=True, default=256),
    ParamSpec("scheduling_policy", ParamKind.ENUM, choices=("fcfs", "priority"), default="fcfs"),
    ParamSpec("enforce_eager", ParamKind.BOOL, choices=(False, True), default=False),
    ParamSpec("max_cudagraph_capture_size", ParamKind.INT, 8, 1024, log=True, default=512),
    ParamSpec("tensor_parallel_size", ParamKind.ENUM, choices=(1, 2), default=1),
)
CONSTRAINTS = (
    Constraint.parse("max_num_batched_tokens >= max_num_seqs"),
    Constraint.parse("max_num_active_seqs <= max_num_seqs"),
)
SPACE = SearchSpace(PARAMS, CONSTRAINTS, {"max_model_len": 8192})
REPEATS = 3


def observe(u: np.ndarray[Any, np.dtype[np.float64]]) -> Observation:
    config = SPACE.decode(u)
    x = SPACE.encode(config)
    if x[0] > 0.8 and x[4] > 0.75:  # a crash region: many sequences at high memory use
        return Observation(config, False, failure=FailureKind.STARTUP_OOM)
    if x[4] < 0.12:  # a small memory share leaves nothing for the KV cache
        return Observation(config, False, failure=FailureKind.KV_CACHE_TOO_SMALL)
    if x[10] > 0.92:  # the largest capture sizes crash once the test starts
        return Observation(config, False, failure=FailureKind.CRASH_UNDER_LOAD)
    p95 = 1000.0 * (1.0 + (x[0] - 0.6) ** 2 + (x[1] - 0.55) ** 2 + 0.1 * float(np.sum(x[2:])))
    ttft = 100.0 * (1.0 + (x[0] - 0.6) ** 2 + (1.0 - x[1]) ** 2 + 0.05 * x[6])
    tpot = 10.0 * (1.0 + (x[0] - 0.5) ** 2 + x[1] ** 2 + 0.05 * x[7])
    metrics = Metrics.of(
        completed=10, duration_s=1.0, p95_e2el_ms=p95, mean_ttft_ms=ttft, mean_tpot_ms=tpot
    )
    return Observation(config, True, metrics)


def history(n: int, seed: int) -> list[Observation]:
    configs = SobolSuggester(SPACE, seed=seed).sample(n, np.random.default_rng(seed))
    return [observe(SPACE.encode(c)) for c in configs]


def seconds(method: str, n: int, repeats: int) -> float:
    times = []
    for seed in range(repeats):
        obs = history(n, seed)
        if method == "sobo":
            suggester: Any = ScootSOBO(SPACE, Objective.P95_LATENCY, seed=seed)
        else:
            suggester = ScootMOBO(SPACE, (Objective.TTFT, Objective.TPOT), seed=seed)
        t0 = time.perf_counter()
        out = suggester.suggest(obs, 1, np.random.default_rng(seed))
        times.append(time.perf_counter() - t0)
        assert out, "no suggestion"
    return round(statistics.median(times), 3)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)
    repeats = 1 if args.quick else REPEATS
    out = header(args.quick)
    out["dimensions"] = SPACE.dim
    for method in ("sobo", "mobo"):
        for n in (30, 100):
            out[f"{method}_suggest_seconds_p50_at_{n}"] = seconds(method, n, repeats)
    out["suggest_seconds_p50_at_30"] = max(out["sobo_suggest_seconds_p50_at_30"],
                                          out["mobo_suggest_seconds_p50_at_30"])  # fmt: skip
    out["suggest_seconds_p50_at_100"] = max(out["sobo_suggest_seconds_p50_at_100"],
                                           out["mobo_suggest_seconds_p50_at_100"])  # fmt: skip
    return finish("suggest_time", out)


if __name__ == "__main__":
    sys.exit(main())
