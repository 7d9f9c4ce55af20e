"""Stop rules on synthetic request timelines (issue 18): each has a case where it must fire
and one where it must not."""

from __future__ import annotations

import numpy as np

from scoot.stress.early_stop import Finished, Progress, StopRules, backlog_at, check

RATE = 10.0
PLANNED = 600  # a 60 s test


def timeline(now: float, service_s: float, rate_served: float, seed: int = 0) -> Progress:
    """Requests sent at RATE; a server finishing them in order at ``rate_served`` per second,
    each taking at least ``service_s``."""
    rng = np.random.default_rng(seed)
    sends = np.cumsum(rng.exponential(1 / RATE, size=PLANNED))
    sent = [float(s) for s in sends if s <= now]
    finished, in_flight = [], []
    free = 0.0
    for s in sent:
        start = max(s, free)
        end = start + max(service_s * rng.lognormal(0, 0.2), 0.0)
        free = start + 1 / rate_served if rate_served < RATE else s
        if end <= now:
            finished.append(Finished(s, min(0.05, end - s), end - s))
        else:
            in_flight.append((s, start + 0.05 <= now))
    return Progress(now, PLANNED, RATE, sent, finished, in_flight)


def test_an_engine_falling_behind_is_stopped_for_its_backlog() -> None:
    p = timeline(20.0, 0.3, rate_served=5.0)
    assert backlog_at(p, 20.0) > backlog_at(p, 10.0) + 20
    stop = check(p, StopRules(), np.random.default_rng(0))
    assert stop is not None and stop.rule == "backlog", stop


def test_an_engine_that_keeps_up_is_not_stopped() -> None:
    for seed in range(5):
        p = timeline(30.0, 0.3, rate_served=RATE, seed=seed)
        assert check(p, StopRules(incumbent_p95_ms=600.0), np.random.default_rng(seed)) is None


def test_a_config_surely_slower_than_the_incumbent_is_stopped_with_its_bound() -> None:
    p = timeline(15.0, 1.2, rate_served=RATE)  # latencies about 1.2 s
    stop = check(p, StopRules(incumbent_p95_ms=800.0), np.random.default_rng(0))
    assert stop is not None and stop.rule == "worse", stop
    assert 800.0 < stop.bounds["p95_e2el_ms"] <= 1.2e3 * np.exp(0.2 * 2.5)
    assert "p95 latency >=" in stop.reason
    # Against an incumbent it may still beat (its p95 is about 1.67 s; 2 s), it runs on.
    assert check(p, StopRules(incumbent_p95_ms=2000.0), np.random.default_rng(0)) is None


def test_too_many_failures_stop_only_once_the_run_cannot_pass() -> None:
    p = timeline(15.0, 0.3, rate_served=RATE)
    few = [*p.finished[:-20], *(Finished(f.sent, 0, 0, success=False) for f in p.finished[-20:])]
    assert (
        check(Progress(15.0, PLANNED, RATE, p.sent, few), StopRules(), np.random.default_rng(0))
        is None
    )
    many = [*p.finished[:-40], *(Finished(f.sent, 0, 0, success=False) for f in p.finished[-40:])]
    stop = check(
        Progress(15.0, PLANNED, RATE, p.sent, many), StopRules(), np.random.default_rng(0)
    )
    assert stop is not None and stop.rule == "failures"
    assert "40 of 600 requests failed" in stop.reason


def test_the_clients_view_of_a_run_in_progress() -> None:
    """Records as the live client holds them: unsent (no send time), in flight with and
    without a first token, finished well or not."""
    from scoot.stress.early_stop import progress_of
    from scoot.stress.metrics import RequestRecord

    start = 100.0
    records = [
        RequestRecord(sent=100.5, ttft=0.2, latency=1.0, success=True),
        RequestRecord(sent=101.0, error="HTTP 500: nope"),
        RequestRecord(sent=101.5, ttft=0.3),  # first token came, still streaming
        RequestRecord(sent=102.0),  # waiting for its first token
        RequestRecord(),  # not sent yet
    ]
    done = [True, True, False, False, False]
    p = progress_of(records, done, start, now=2.5, rate=2.0)
    assert p.planned == 5 and p.now == 2.5 and p.rate == 2.0
    assert list(p.sent) == [0.5, 1.0, 1.5, 2.0]
    assert [(f.sent, f.latency, f.success) for f in p.finished] == [
        (0.5, 1.0, True),
        (1.0, 0.0, False),
    ]
    assert list(p.in_flight) == [(1.5, True), (2.0, False)]
    assert backlog_at(p, 2.5) == 2  # the two in flight


def test_a_short_test_decides_once_at_its_point() -> None:
    """Half-way through (``short_first = 0.5`` of a 60 s test), a config whose p95 so far is
    above the incumbent's stops, though the bootstrap cannot prove it worse yet; before that
    point, after it (promoted) and without the option it runs on."""
    rng = np.random.default_rng
    short = StopRules(incumbent_p95_ms=600.0, short_first=0.5)
    at = timeline(30.0, 0.45, rate_served=RATE)  # p95 so far just above 600 ms
    assert check(at, StopRules(incumbent_p95_ms=600.0), rng(0)) is None  # not proved worse
    stop = check(at, short, rng(0))
    assert stop is not None and stop.rule == "short", stop
    assert 600.0 < stop.bounds["p95_e2el_ms"] < 650.0
    assert "worse than the incumbent at 50% of the test" in stop.reason
    assert check(timeline(29.0, 0.45, rate_served=RATE), short, rng(0)) is None  # before
    assert check(timeline(31.5, 0.45, rate_served=RATE), short, rng(0)) is None  # promoted
    faster = StopRules(incumbent_p95_ms=700.0, short_first=0.5)
    assert check(at, faster, rng(0)) is None  # within the incumbent: on to the full test
