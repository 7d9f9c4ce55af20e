"""The embedded engine's core: timing calibration, crash rules, scheduler behaviour."""

from __future__ import annotations

import pytest

from scoot.engine.embedded.core import (
    EngineArgs,
    EngineStartupError,
    Request,
    Scheduler,
    SimRequest,
    simulate,
)
from scoot.engine.embedded.hardware import GPUS, MODELS
from scoot.engine.embedded.perf import PerfModel, StepShape


@pytest.mark.parametrize(
    ("batch", "measured_ms"), [(1, 13.4), (8, 14.0), (32, 16.3), (64, 19.2), (256, 32.2)]
)
def test_decode_step_matches_aiconfigurator(batch: int, measured_ms: float) -> None:
    """Qwen3-32B TP2 on H100, aiconfigurator's measured vLLM data (reference doc §2.4)."""
    model = PerfModel(GPUS["h100"], MODELS["qwen3-32b"], tp=2)
    got = model.step_ms(StepShape([], [1100] * batch))
    assert got == pytest.approx(measured_ms, rel=0.12)


def test_prefill_and_small_model_decode() -> None:
    assert PerfModel(GPUS["h100"], MODELS["qwen3-32b"], 2).step_ms(
        StepShape([(1024, 0)], [])
    ) == pytest.approx(55.5, rel=0.15)
    # Llama-3.1-8B decode at batch 1 on H100: 6.4 ms in the same source.
    assert PerfModel(GPUS["h100"], MODELS["llama-3.1-8b"]).step_ms(
        StepShape([], [100])
    ) == pytest.approx(6.4, rel=0.1)


def _kind(args: EngineArgs) -> str:
    with pytest.raises(EngineStartupError) as info:
        args.resolved().plan()
    return info.value.kind


def test_crash_rules_where_vllm_crashes() -> None:
    base = EngineArgs(model="llama-3.1-8b", gpu="a10", max_model_len=8192)
    base.resolved().plan()  # the default fits a 24 GB card
    # 70B weights do not fit one H100.
    assert _kind(EngineArgs(model="llama-3.1-70b", gpu="h100", max_model_len=4096)) == (
        "startup_oom"
    )
    # Llama-3.1-8B at its full 128k context needs 16 GiB of KV: not on a 24 GB card.
    assert _kind(EngineArgs(model="llama-3.1-8b", gpu="a10")) == "kv_cache_too_small"
    # Too little memory left for any KV block: vLLM's "No available memory for the cache
    # blocks", the launcher's kv_cache_too_small (a memory-share failure past the load).
    assert (
        _kind(
            EngineArgs(
                model="llama-3.1-8b", gpu="a10", max_model_len=8192, gpu_memory_utilization=0.7
            )
        )
        == "kv_cache_too_small"
    )
    # Weights that do not fit fail at load even where no step table exists for them.
    assert (
        _kind(EngineArgs(model="llama-3.1-70b", gpu="h100", max_model_len=4096, timing="table"))
        == "startup_oom"
    )
    assert _kind(EngineArgs(max_num_seqs=512, max_num_batched_tokens=256)) == "invalid_args"
    assert (
        _kind(
            EngineArgs(
                enable_chunked_prefill=False, max_num_batched_tokens=2048, max_model_len=8192
            )
        )
        == "invalid_args"
    )
    assert _kind(EngineArgs(tensor_parallel_size=2)) == "invalid_args"  # one GPU in the set
    assert (
        _kind(EngineArgs(model="qwen2.5-1.5b", tensor_parallel_size=8, gpus_available=8))
        == "invalid_args"
    )  # 12 heads, TP 8


def test_bigger_token_budget_trades_tpot_for_ttft() -> None:
    """The paper's appendix A.2: larger batches lower TTFT and raise TPOT."""
    reqs = [SimRequest(i * 0.05, list(range(i, i + 2000)), 100) for i in range(300)]
    small = _summary(
        EngineArgs(gpu="h100", max_model_len=8192, max_num_batched_tokens=512, max_num_seqs=256),
        reqs,
    )
    large = _summary(
        EngineArgs(gpu="h100", max_model_len=8192, max_num_batched_tokens=8192, max_num_seqs=256),
        reqs,
    )
    assert large[0] < small[0] * 0.8
    assert large[1] > small[1] * 1.1


def _summary(args: EngineArgs, reqs: list[SimRequest]) -> tuple[float, float]:
    recs = [r for r in simulate(args, reqs) if r is not None]
    assert len(recs) == len(reqs)
    ttft = sum(r.first_token - r.arrival for r in recs) / len(recs)
    tpot = sum((r.finish - r.first_token) / (r.output_tokens - 1) for r in recs) / len(recs)
    return ttft, tpot


def test_preemption_when_kv_runs_out() -> None:
    args = EngineArgs(
        model="llama-3.1-8b",
        gpu="a10",
        max_model_len=8192,
        gpu_memory_utilization=0.85,
        max_num_seqs=256,
    )
    resolved = args.resolved()
    plan = resolved.plan()
    sched = Scheduler(resolved, plan)
    for i in range(60):
        sched.add(Request(str(i), list(range(i * 1000, i * 1000 + 900)), 800, 0.0))
    now = 0.0
    while sched.has_work():
        p = sched.schedule()
        now += sched.step_seconds(p)
        sched.complete(p, now)
    assert sched.num_preemptions > 0
    assert sched.pool.num_free == plan.num_blocks


def test_prefix_caching_hits_shared_prefix() -> None:
    shared = list(range(1024))
    reqs = [SimRequest(i * 0.5, shared + [5000 + i] * 64, 4) for i in range(10)]
    on = EngineArgs(gpu="h100", max_model_len=4096)
    recs_on = simulate(on, reqs)
    recs_off = simulate(
        EngineArgs(gpu="h100", max_model_len=4096, enable_prefix_caching=False), reqs
    )
    ttft_on = sum(r.first_token - r.arrival for r in recs_on[1:] if r)
    ttft_off = sum(r.first_token - r.arrival for r in recs_off[1:] if r)
    assert ttft_on < ttft_off * 0.6
