"""Metrics with the exact definitions of ``vllm bench serve`` (``vllm/benchmarks/serve.py``).

- TTFT: first SSE message carrying choices, minus the time just before the POST.
- E2E latency: last choice-bearing message minus the time before the POST.
- TPOT: per request with more than one output token, ``(latency - ttft) / (output_tokens - 1)``;
  statistics over those requests.
- ITL: every gap between successive choice-bearing messages, pooled over all requests.
- Throughputs: successful requests / output tokens divided by the whole run's duration.
- Latency statistics use successful requests only; percentiles are ``np.percentile`` (linear).
- Goodput: successful requests meeting every given SLO (TTFT, TPOT, E2E latency in ms; a
  one-token request has no TPOT and meets that SLO), divided by the run's duration.
- Failures are counted by kind: the error text up to its first colon (``timeout``,
  ``HTTP 503``, ``connection refused``, ``ClientPayloadError``...).
- Client health: lateness is how long after its scheduled time each request was sent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from scoot.domain import Metrics


@dataclass(slots=True)
class RequestRecord:
    """What the client saw of one request (times in seconds, ``perf_counter`` clock)."""

    scheduled: float = 0.0
    sent: float = 0.0
    ttft: float = 0.0
    latency: float = 0.0
    itl: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    output_tokens: int = 0
    success: bool = False
    error: str = ""
    chunk_tokens: list[int] = field(default_factory=list)
    """Tokens so far at each chunk, where the engine said (``continuous_usage_stats``)."""


def _stat(values: Sequence[float], q: float | None = None) -> float:
    if not values:
        return 0.0
    arr = np.asarray(values, dtype=float)
    return float(np.mean(arr) if q is None else np.percentile(arr, q))


def error_kind(error: str) -> str:
    """The kind of a request's error: its text up to the first colon."""
    return error.split(":", 1)[0].strip() or "unknown"


def attainment(records: Sequence[RequestRecord], slos: Mapping[str, float]) -> float:
    """The share of all requests (a failed one misses) that met every SLO of ``slos``."""
    if not records:
        return 0.0
    return sum(1 for r in records if r.success and _good(r, slos)) / len(records)


def _good(r: RequestRecord, slos: Mapping[str, float]) -> bool:
    if "ttft" in slos and r.ttft * 1e3 > slos["ttft"]:
        return False
    if "e2el" in slos and r.latency * 1e3 > slos["e2el"]:
        return False
    if "tpot" in slos and r.output_tokens > 1:
        tpot = (r.latency - r.ttft) / (r.output_tokens - 1) * 1e3
        if tpot > slos["tpot"]:
            return False
    return True


def compute(
    records: Sequence[RequestRecord],
    duration: float,
    slos: Mapping[str, float] | None = None,
) -> Metrics:
    """Aggregate per-request records of one run of ``duration`` seconds.

    ``slos`` maps ``ttft``, ``tpot`` and ``e2el`` to limits in milliseconds for goodput.
    """
    ok = [r for r in records if r.success]
    ttfts = [r.ttft * 1e3 for r in ok]
    e2els = [r.latency * 1e3 for r in ok]
    tpots = [(r.latency - r.ttft) / (r.output_tokens - 1) * 1e3 for r in ok if r.output_tokens > 1]
    itls = [gap * 1e3 for r in ok for gap in r.itl]
    out_tokens = sum(r.output_tokens for r in ok)
    in_tokens = sum(r.prompt_tokens for r in ok)
    lateness = [max(0.0, r.sent - r.scheduled) * 1e3 for r in records]
    duration = max(duration, 1e-9)
    sent_span = max((r.sent for r in records), default=0.0) - min(
        (r.sent for r in records), default=0.0
    )
    achieved = (len(records) - 1) / sent_span if len(records) > 1 and sent_span > 0 else 0.0
    return Metrics(
        duration_s=duration,
        completed=len(ok),
        failed=len(records) - len(ok),
        request_throughput=len(ok) / duration,
        output_throughput=out_tokens / duration,
        total_token_throughput=(in_tokens + out_tokens) / duration,
        mean_ttft_ms=_stat(ttfts),
        median_ttft_ms=_stat(ttfts, 50),
        p95_ttft_ms=_stat(ttfts, 95),
        p99_ttft_ms=_stat(ttfts, 99),
        mean_tpot_ms=_stat(tpots),
        median_tpot_ms=_stat(tpots, 50),
        p95_tpot_ms=_stat(tpots, 95),
        p99_tpot_ms=_stat(tpots, 99),
        mean_itl_ms=_stat(itls),
        p95_itl_ms=_stat(itls, 95),
        mean_e2el_ms=_stat(e2els),
        median_e2el_ms=_stat(e2els, 50),
        p95_e2el_ms=_stat(e2els, 95),
        p99_e2el_ms=_stat(e2els, 99),
        total_input_tokens=in_tokens,
        total_output_tokens=out_tokens,
        lateness_p99_ms=_stat(lateness, 99),
        achieved_rate=achieved,
        p90_ttft_ms=_stat(ttfts, 90),
        p90_tpot_ms=_stat(tpots, 90),
        median_itl_ms=_stat(itls, 50),
        p90_itl_ms=_stat(itls, 90),
        p99_itl_ms=_stat(itls, 99),
        p90_e2el_ms=_stat(e2els, 90),
        lateness_p50_ms=_stat(lateness, 50),
        lateness_max_ms=max(lateness, default=0.0),
        goodput=sum(1 for r in ok if _good(r, slos)) / duration if slos else None,
        failures=dict(Counter(error_kind(r.error) for r in records if not r.success)),
    )
