"""Hand-computed metrics for small timelines (vLLM bench serve definitions)."""

from __future__ import annotations

import pytest

from scoot.stress.metrics import RequestRecord, compute


def rec(
    ttft: float, latency: float, out: int, itl: list[float], *, ok: bool = True, prompt: int = 10
) -> RequestRecord:
    return RequestRecord(0.0, 0.0, ttft, latency, itl, prompt, out, ok, "" if ok else "x")


def test_hand_computed() -> None:
    records = [
        rec(0.1, 0.5, 5, [0.1, 0.1, 0.1, 0.1]),  # tpot (0.5-0.1)/4 = 0.1
        rec(0.3, 0.3, 1, []),  # one token: no TPOT sample
        rec(0.2, 1.2, 3, [0.4, 0.6]),  # tpot (1.2-0.2)/2 = 0.5
        rec(0.0, 0.0, 0, [], ok=False),  # failed: only in `failed`
    ]
    m = compute(records, duration=2.0)
    assert m.completed == 3
    assert m.failed == 1
    assert m.request_throughput == pytest.approx(1.5)
    assert m.output_throughput == pytest.approx(9 / 2.0)
    assert m.total_token_throughput == pytest.approx((30 + 9) / 2.0)
    assert m.mean_ttft_ms == pytest.approx(200.0)
    assert m.median_ttft_ms == pytest.approx(200.0)
    assert m.mean_tpot_ms == pytest.approx(300.0)
    assert m.mean_itl_ms == pytest.approx(1.4 / 6 * 1e3)
    assert m.mean_e2el_ms == pytest.approx((500 + 300 + 1200) / 3)
    # np.percentile linear interpolation over [300, 500, 1200]: rank 1.9 -> 500 + 0.9*700
    assert m.p95_e2el_ms == pytest.approx(1130.0)


def test_all_failed_gives_zeros_not_errors() -> None:
    m = compute([rec(0, 0, 0, [], ok=False)] * 3, duration=1.0)
    assert (m.completed, m.failed, m.mean_ttft_ms, m.request_throughput) == (0, 3, 0.0, 0.0)


def test_goodput_failures_by_kind_and_client_health() -> None:
    records = [
        RequestRecord(1.0, 1.001, 0.1, 0.5, [0.1] * 4, 10, 5, True, ""),  # tpot 100 ms
        RequestRecord(2.0, 2.010, 0.3, 0.3, [], 10, 1, True, ""),  # one token: no TPOT
        RequestRecord(3.0, 3.002, 0.2, 1.2, [0.4, 0.6], 10, 3, True, ""),  # tpot 500 ms
        RequestRecord(4.0, 4.0, 0, 0, [], 10, 0, False, "timeout: not finished 60 s after"),
        RequestRecord(5.0, 5.0, 0, 0, [], 10, 0, False, "HTTP 500: boom"),
        RequestRecord(6.0, 6.0, 0, 0, [], 10, 0, False, "timeout: again"),
    ]
    m = compute(records, duration=2.0, slos={"ttft": 250.0, "tpot": 200.0})
    # Good: the first (ttft 100, tpot 100) only; the second misses TTFT, the third TPOT.
    assert m.goodput == pytest.approx(0.5)
    assert compute(records, 2.0, slos={"tpot": 200.0}).goodput == pytest.approx(1.0)
    assert compute(records, 2.0).goodput is None  # no SLO given: no goodput, not zero
    assert m.failures == {"timeout": 2, "HTTP 500": 1}
    # Lateness: sent - scheduled = 1, 10, 2, 0, 0, 0 ms.
    assert m.lateness_max_ms == pytest.approx(10.0)
    assert m.lateness_p50_ms == pytest.approx(0.5)
    assert m.p90_ttft_ms == pytest.approx(280.0)  # [100, 200, 300] at rank 1.8


def test_metrics_survive_the_store_round_trip() -> None:
    from scoot.domain import Metrics

    m = compute([RequestRecord(0, 0, 0, 0, [], 1, 0, False, "HTTP 503: x")], 1.0)
    again = Metrics.from_dict(m.to_dict())
    assert again == m and again.failures == {"HTTP 503": 1}


def test_prometheus_page_and_engine_summary() -> None:
    from scoot.stress.client import engine_summary, parse_prometheus

    page = (
        "# HELP vllm:num_preemptions_total x\n"
        'vllm:num_preemptions_total{model_name="m"} 3\n'
        'vllm:kv_cache_usage_perc{model_name="m"} 0.25\n'
        'vllm:prefix_cache_queries_total{model_name="m"} 1000\n'
        'vllm:prefix_cache_hits_total{model_name="m"} 100\n'
        "other_metric 7\n"
    )
    first = parse_prometheus(page)
    assert first["vllm:num_preemptions_total"] == 3 and "other_metric" not in first
    mid = {**first, "vllm:kv_cache_usage_perc": 0.9}
    last = {
        **first,
        "vllm:num_preemptions_total": 5,
        "vllm:prefix_cache_queries_total": 3000,
        "vllm:prefix_cache_hits_total": 1100,
    }
    got = engine_summary([first, mid, last])
    assert got["preemptions"] == 2
    assert got["kv_cache_usage_peak"] == 0.9
    assert got["prefix_cache_hit_rate"] == pytest.approx(0.5)
    assert engine_summary([first]) == {}
