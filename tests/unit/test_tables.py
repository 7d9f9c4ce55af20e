"""The measured step tables: coverage, agreement with their source, how the engine uses them."""

from __future__ import annotations

import pytest

from scoot.engine.embedded.core import EngineArgs, EngineStartupError, SimRequest, simulate
from scoot.engine.embedded.perf import PerfModel, StepShape
from scoot.engine.embedded.tables import TablePerf, interp, table_perf, tabulated

DENSE = ("llama-3.1-8b", "llama-3.1-70b", "qwen3-8b", "qwen3-32b")


def test_tables_cover_the_gpus_and_models_the_issue_names() -> None:
    cover = tabulated()
    assert set(cover) >= {"h100", "h200", "a100", "l40s"}
    for gpu in cover:
        for model in DENSE:
            assert cover[gpu][model], (gpu, model)
    # 70B needs two GPUs' memory on an 80 GB card, four on a 48 GB one.
    assert min(cover["h100"]["llama-3.1-70b"]) == 2
    assert min(cover["l40s"]["llama-3.1-70b"]) == 4


def test_step_times_match_aiconfigurator_everywhere() -> None:
    """The generator stored aiconfigurator's own step latencies beside each table.

    Smoothing non-monotone cells moves a few batch-1 cells of high-TP rows by up to 10%; the
    dense models at TP 1-2 stay within 3%.
    """
    for gpu, models in tabulated().items():
        for model, tps in models.items():
            for tp in tps:
                perf = table_perf(gpu, model, tp, 32)
                assert perf is not None
                checks = perf.source_checks
                rel = 0.03 if model in DENSE and tp <= 2 else 0.1
                assert perf.step_ms(StepShape([], [1024])) == pytest.approx(
                    checks["decode_step_ms_b1_s1024"], rel=rel
                )
                assert perf.step_ms(StepShape([], [1024] * 64)) == pytest.approx(
                    checks["decode_step_ms_b64_s1024"], rel=rel
                )
                assert perf.step_ms(StepShape([(1024, 0)], [])) == pytest.approx(
                    checks["prefill_ms_1x1024"], rel=rel
                )


@pytest.mark.parametrize(
    ("batch", "measured_ms"), [(1, 13.4), (8, 14.0), (32, 16.3), (64, 19.2), (256, 32.2)]
)
def test_qwen3_32b_tp2_h100_matches_published_figures(batch: int, measured_ms: float) -> None:
    """shared/docs/embedded-engine-reference.md §2.4 (decode steps) and prefill 55.5 ms."""
    perf = table_perf("h100", "qwen3-32b", 2, 64)
    assert perf is not None
    assert perf.step_ms(StepShape([], [1150] * batch)) == pytest.approx(measured_ms, rel=0.03)
    assert perf.step_ms(StepShape([(1024, 0)], [])) == pytest.approx(55.5, rel=0.02)


def test_llama_8b_h100_single_request() -> None:
    perf = table_perf("h100", "llama-3.1-8b", 1, 32)
    assert perf is not None
    assert perf.step_ms(StepShape([], [100])) == pytest.approx(6.1, abs=0.2)
    assert perf.step_ms(StepShape([(1024, 0)], [])) == pytest.approx(22.1, rel=0.02)


def test_tables_are_monotone_and_chunks_pay_their_attention() -> None:
    perf = table_perf("a100", "qwen3-8b", 1, 36)
    assert perf is not None
    prev = 0.0
    for t in range(1, 20000, 97):
        cur = perf.linear_ms(t)
        assert cur >= prev
        prev = cur
    # A chunk late in a long prompt costs more attention than the same chunk at its start.
    early = perf.step_ms(StepShape([(512, 0)], []))
    late = perf.step_ms(StepShape([(512, 6000)], []))
    assert late > early
    # More decoding sequences or longer contexts never make a step faster.
    assert perf.decode_attention_ms(64, 4096) > perf.decode_attention_ms(64, 1024)
    assert perf.decode_attention_ms(96, 1024) > perf.decode_attention_ms(64, 1024)


def test_interp_extrapolates_linearly() -> None:
    assert interp([1, 2], [10, 20], 4) == pytest.approx(40)
    assert interp([2, 4], [10, 20], 1) == pytest.approx(5)
    assert interp([1, 2], [10, 20], 0) == 0.0


def test_engine_picks_tables_roofline_or_refuses() -> None:
    assert isinstance(EngineArgs(model="qwen3-8b", gpu="l40s").resolved().perf, TablePerf)
    # No table for the A10: the roofline model stands in, unless tables are demanded.
    a10 = EngineArgs(model="llama-3.1-8b", gpu="a10", max_model_len=8192)
    assert isinstance(a10.resolved().perf, PerfModel)
    with pytest.raises(EngineStartupError) as info:
        EngineArgs(model="llama-3.1-8b", gpu="a10", timing="table").resolved()
    assert info.value.kind == "invalid_args"
    assert isinstance(
        EngineArgs(model="qwen3-8b", gpu="l40s", timing="roofline").resolved().perf, PerfModel
    )


def test_memory_comes_from_aiconfigurator_where_tabulated() -> None:
    plan = EngineArgs(model="llama-3.1-8b", gpu="h100", max_model_len=8192).resolved().plan()
    assert plan.weights == pytest.approx(16.06e9, rel=0.01)  # BF16 8.03B parameters
    assert plan.kv_bytes_per_token == 131072  # 32 layers x 8 KV heads x 128 x 2 x 2 bytes


def test_active_seqs_cap_admission_not_graphs_like_vllm_0_32() -> None:
    """``--max-num-active-seqs`` (vLLM 0.32) caps RUNNING; more than max_num_seqs is refused,
    and ``--max-num-partial-prefills`` (gone in 0.32) is not an argument any more."""
    with pytest.raises(EngineStartupError, match="cannot be greater than max_num_seqs"):
        EngineArgs(max_num_seqs=64, max_num_active_seqs=65).resolved()
    with pytest.raises(TypeError):
        EngineArgs(max_num_partial_prefills=2)  # type: ignore[call-arg]
    reqs = [SimRequest(0.01 * i, list(range(i * 5, i * 5 + 200)), 200) for i in range(120)]

    def run(active: int | None) -> tuple[float, float, int]:
        args = EngineArgs(
            model="llama-3.1-8b",
            gpu="h100",
            max_model_len=4096,
            max_num_seqs=128,
            max_num_active_seqs=active,
            enable_prefix_caching=False,
        )
        done = [r for r in simulate(args, reqs) if r is not None]
        ttft = sum(r.first_token - r.arrival for r in done) / len(done)
        tpot = sum((r.finish - r.first_token) / (r.output_tokens - 1) for r in done) / len(done)
        return ttft, tpot, args.resolved().max_num_active_seqs

    wide_ttft, wide_tpot, wide = run(None)
    narrow_ttft, narrow_tpot, narrow = run(16)
    assert (wide, narrow) == (128, 16)
    assert narrow_tpot < wide_tpot  # smaller decode batches
    assert narrow_ttft > wide_ttft  # requests wait for a slot


def test_bigger_token_budget_lowers_ttft_and_raises_tpot() -> None:
    """The paper's appendix conflict, from scheduling alone: long prompts arriving while others
    decode. A big budget prefills them in one step (short TTFT) but stalls every decode in it."""
    reqs = [SimRequest(0.05 * i, list(range(i * 7, i * 7 + 3000)), 64) for i in range(80)]

    def means(budget: int) -> tuple[float, float]:
        out = simulate(
            EngineArgs(
                model="llama-3.1-8b",
                gpu="h100",
                max_model_len=8192,
                max_num_batched_tokens=budget,
                max_num_seqs=256,
                enable_prefix_caching=False,
            ),
            reqs,
        )
        done = [r for r in out if r is not None]
        ttft = sum(r.first_token - r.arrival for r in done) / len(done)
        tpot = sum((r.finish - r.first_token) / (r.output_tokens - 1) for r in done) / len(done)
        return ttft, tpot

    small_ttft, small_tpot = means(512)
    big_ttft, big_tpot = means(8192)
    assert big_ttft < small_ttft
    assert big_tpot > small_tpot
