"""A small synthetic search space and smooth metrics shared by the optimizer tests."""

from __future__ import annotations

from scoot.domain import Config, Constraint, Metrics, Objective, ParamKind, ParamSpec
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

TWO = (Objective.TTFT, Objective.TPOT)


def synthetic_metrics(config: Config) -> Metrics:
    """A smooth synthetic p95 latency, best near 128 sequences and 4,096 tokens; TTFT falls
    and TPOT rises with the token budget (a trade-off, so the two-objective front has width)."""
    x = SPACE.encode(config)
    p95 = 1000.0 * (1.0 + (x[0] - 0.6) ** 2 + (x[1] - 0.55) ** 2 + 0.1 * x[4])
    ttft = 100.0 * (1.0 + (x[0] - 0.6) ** 2 + (1.0 - x[1]) ** 2)
    tpot = 10.0 * (1.0 + (x[0] - 0.5) ** 2 + x[1] ** 2)
    return Metrics.of(
        completed=10, duration_s=1.0, p95_e2el_ms=p95, mean_ttft_ms=ttft, mean_tpot_ms=tpot
    )
