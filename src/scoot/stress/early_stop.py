"""Rules that stop a hopeless stress test early (issue 18), on what the client knows so far.

A stress test that can no longer beat the incumbent, or can no longer pass, wastes GPU time.
Each rule reads a :class:`Progress` (the requests sent, finished and still in flight at some
instant) and answers with a :class:`Stop` or None. A stop is not a crash: it carries a
*bound*, the value the full run would have been at least as bad as, which an optimizer can
use as a censored observation.

- **Failures**: once more requests have failed than ``max_failed_fraction`` of those the test
  will send, the run fails whatever comes next. Certain.
- **Backlog**: arrivals outpace completions. The backlog (sent minus finished) is sampled
  over the second half of the elapsed time; a least-squares slope above ``backlog_growth``
  of the arrival rate, with a backlog of at least ``min_requests``, means the engine falls
  further behind the longer the test runs.
- **Worse than the incumbent**: every request's final latency is at least what it is now
  (finished: its latency; in flight: its age). The requests not yet sent are drawn from the
  finished ones (a bootstrap). When the ``1 - confidence`` quantile of the bootstrapped final
  p95 (or mean TTFT) is above the incumbent's, the config has lost with that confidence, and
  that quantile is the bound.
- **Short test first** (``short_first``, a fraction of the send window): a successive-halving
  step inside one launch. At that point of the test (the first check after it) the config goes
  on to the full test only if what is known so far (finished latencies, the ages of those in
  flight) does not already put its p95 (or mean TTFT) above the incumbent's; otherwise it
  stops there, that value its bound. A heuristic, not a proof: bench/gpu_time.py measures what
  it costs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from scoot.stress.metrics import RequestRecord


@dataclass(frozen=True, slots=True)
class Finished:
    """A finished request: when it was sent, its TTFT and latency (s), and whether it
    succeeded."""

    sent: float
    ttft: float
    latency: float
    success: bool = True


@dataclass(frozen=True, slots=True)
class Progress:
    """What the client knows ``now`` seconds into a test that will send ``planned`` requests
    at ``rate`` per second."""

    now: float
    planned: int
    rate: float
    sent: Sequence[float]
    """Send times of every request sent so far."""
    finished: Sequence[Finished]
    in_flight: Sequence[tuple[float, bool]] = ()
    """(send time, whether its first token came) of each request sent and not finished."""


@dataclass(frozen=True, slots=True)
class StopRules:
    """When to stop; an incumbent value of None disables that comparison."""

    incumbent_p95_ms: float | None = None
    incumbent_mean_ttft_ms: float | None = None
    max_failed_fraction: float = 0.05
    min_requests: int = 20
    backlog_growth: float = 0.25
    confidence: float = 0.95
    resamples: int = 200
    short_first: float = 0.0
    """The fraction of the send window at which a short test decides (0: no short test)."""
    check_s: float = 1.0
    """How often the client checks: the short test decides at the first check after its
    point, once."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Why a test stopped, in one line, and the bounds it proves ("at least this bad")."""

    rule: str
    reason: str
    bounds: dict[str, float] = field(default_factory=dict)


def check(progress: Progress, rules: StopRules, rng: np.random.Generator) -> Stop | None:
    """The first rule that fires, or None."""
    for rule in (_failures, _backlog, _worse, _short):
        stop = rule(progress, rules, rng)
        if stop is not None:
            return stop
    return None


def _failures(p: Progress, r: StopRules, rng: np.random.Generator) -> Stop | None:
    failed = sum(not f.success for f in p.finished)
    allowed = r.max_failed_fraction * p.planned
    if failed > allowed:
        return Stop(
            "failures",
            f"{failed} of {p.planned} requests failed already (more than "
            f"{r.max_failed_fraction:.0%}): the run cannot pass",
        )
    return None


def backlog_at(p: Progress, t: float) -> int:
    """Requests sent by ``t`` and not finished by then."""
    sent = sum(1 for s in p.sent if s <= t)
    done = sum(1 for f in p.finished if f.sent + f.latency <= t)
    return sent - done


def _backlog(p: Progress, r: StopRules, rng: np.random.Generator) -> Stop | None:
    if p.now <= 0 or len(p.sent) < r.min_requests:
        return None
    ts = np.linspace(p.now / 2, p.now, 9)
    b = np.array([backlog_at(p, float(t)) for t in ts], dtype=float)
    slope = float(np.polyfit(ts, b, 1)[0])  # requests per second the backlog grows by
    if slope > r.backlog_growth * p.rate and b[-1] >= r.min_requests:
        return Stop(
            "backlog",
            f"the backlog grows by {slope:.2f} req/s ({b[-1]:.0f} waiting) at {p.rate:g} "
            "req/s sent: arrivals outpace completions",
        )
    return None


def _worse(p: Progress, r: StopRules, rng: np.random.Generator) -> Stop | None:
    ok = [f for f in p.finished if f.success]
    if len(ok) < r.min_requests:
        return None
    unsent = max(0, p.planned - len(p.sent))
    q = 1.0 - r.confidence
    bounds: dict[str, float] = {}
    reasons = []
    if r.incumbent_p95_ms is not None:
        known = np.array([f.latency for f in ok] + [p.now - s for s, _ in p.in_flight]) * 1e3
        lb = _bootstrap(known, np.array([f.latency for f in ok]) * 1e3, unsent, rng, r, q, 95)
        if lb > r.incumbent_p95_ms:
            bounds["p95_e2el_ms"] = lb
            reasons.append(f"p95 latency >= {lb:.0f} ms (incumbent {r.incumbent_p95_ms:.0f})")
    if r.incumbent_mean_ttft_ms is not None:
        waiting = [p.now - s for s, first in p.in_flight if not first]
        done_ttft = [f.ttft for f in ok]
        known = np.array(done_ttft + waiting) * 1e3
        lb = _bootstrap(known, np.array(done_ttft) * 1e3, unsent, rng, r, q, None)
        if lb > r.incumbent_mean_ttft_ms:
            bounds["mean_ttft_ms"] = lb
            reasons.append(f"mean TTFT >= {lb:.0f} ms (incumbent {r.incumbent_mean_ttft_ms:.0f})")
    if bounds:
        return Stop(
            "worse",
            "; ".join(reasons) + f" with {r.confidence:.0%} confidence",
            bounds,
        )
    return None


def _short(p: Progress, r: StopRules, rng: np.random.Generator) -> Stop | None:
    if r.short_first <= 0.0 or p.rate <= 0:
        return None
    at = r.short_first * p.planned / p.rate
    if not at <= p.now < at + r.check_s:
        return None  # before the point, or promoted already
    bounds: dict[str, float] = {}
    ok = [f for f in p.finished if f.success]
    if r.incumbent_p95_ms is not None:
        known = [f.latency for f in ok] + [p.now - s for s, _ in p.in_flight]
        if len(known) >= r.min_requests:
            partial = float(np.percentile(np.array(known) * 1e3, 95))
            if partial > r.incumbent_p95_ms:
                bounds["p95_e2el_ms"] = partial
    if r.incumbent_mean_ttft_ms is not None:
        known = [f.ttft for f in ok] + [p.now - s for s, first in p.in_flight if not first]
        if len(known) >= r.min_requests:
            partial = float(np.mean(known) * 1e3)
            if partial > r.incumbent_mean_ttft_ms:
                bounds["mean_ttft_ms"] = partial
    if not bounds:
        return None
    shown = ", ".join(f"{k} {v:.0f} so far" for k, v in bounds.items())
    return Stop(
        "short",
        f"short test: {shown}, worse than the incumbent at {r.short_first:.0%} of the test",
        bounds,
    )


def _bootstrap(
    known: NDArray[np.float64],
    pool: NDArray[np.float64],
    unsent: int,
    rng: np.random.Generator,
    r: StopRules,
    q: float,
    percentile: float | None,
) -> float:
    """The ``q`` quantile of the final statistic when the unsent requests are drawn from
    ``pool``; ``known`` are lower bounds of the sent requests' values."""
    stats = np.empty(r.resamples)
    for i in range(r.resamples):
        full = np.concatenate([known, rng.choice(pool, size=unsent)]) if unsent else known
        stats[i] = np.percentile(full, percentile) if percentile is not None else full.mean()
    return float(np.quantile(stats, q))


def progress_of(
    records: Sequence[RequestRecord],
    done: Sequence[bool],
    start: float,
    now: float,
    rate: float,
) -> Progress:
    """What a client knows ``now`` seconds after ``start``: the requests sent (``sent`` set),
    those whose task finished (``done``), the others in flight (with or without a first
    token). The same view serves the live client and a replayed timeline."""
    sent, finished, in_flight = [], [], []
    for r, d in zip(records, done, strict=True):
        if r.sent <= 0.0:
            continue
        t = r.sent - start
        sent.append(t)
        if d:
            finished.append(Finished(t, r.ttft, r.latency if r.success else 0.0, r.success))
        else:
            in_flight.append((t, r.ttft > 0.0))
    return Progress(now, len(records), rate, sent, finished, in_flight)


def rules_for(
    incumbent: dict[str, float],
    max_failed_fraction: float,
    confidence: float,
    short_first: float = 0.0,
) -> StopRules:
    """The rules a study runs: failures always; "worse than the incumbent" on the metrics of
    ``incumbent`` (``p95_e2el_ms``, ``mean_ttft_ms``: the best value a one-objective latency
    study has measured). The backlog rule stays off in studies: an incumbent under overload
    backlogs too, and a backlog that makes a config worse than the incumbent is what the
    bootstrap rule already proves."""
    return StopRules(
        incumbent_p95_ms=incumbent.get("p95_e2el_ms"),
        incumbent_mean_ttft_ms=incumbent.get("mean_ttft_ms"),
        max_failed_fraction=max_failed_fraction,
        backlog_growth=math.inf,
        confidence=confidence,
        short_first=short_first,
    )
