"""Early stopping inside a live stress test (issue 18), against a scripted server whose every
answer takes at least three 60 ms pauses: a stop that must fire and one that must not."""

from __future__ import annotations

import subprocess
import sys

from helpers import FAKE_ROUTES, answers, wait_for
from scoot.engine.launcher import free_port
from scoot.jobs.evaluate import measured
from scoot.stress.client import StressPlan, StressResult, run_stress_sync
from scoot.stress.early_stop import StopRules
from scoot.stress.traces import TraceRequest

SERVER = (
    r"""
import asyncio, json, sys
from aiohttp import web

async def completions(request):
    await request.json()
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for text in ("a", "b", "c"):
        await asyncio.sleep(0.06)
        chunk = {"choices": [{"index": 0, "text": text, "finish_reason": None}]}
        await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    return resp

"""
    + FAKE_ROUTES
)


def _run(rules: StopRules) -> StressResult:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/health"), 30, "the fake server")
        n = 100
        reqs = [TraceRequest(4, 3)] * n
        offsets = [i / 20.0 for i in range(n)]  # 20 req/s for 5 s
        plan = StressPlan(
            f"http://127.0.0.1:{port}", "m", reqs, offsets, stop_rules=rules, stop_check_s=0.2
        )
        return run_stress_sync(plan)
    finally:
        server.terminate()
        server.wait(5)


def test_a_run_worse_than_the_incumbent_stops_with_a_bound() -> None:
    # Every request takes >= 180 ms; the incumbent's p95 was 50 ms.
    result = _run(StopRules(incumbent_p95_ms=50.0, min_requests=10))
    assert result.stopped is not None and result.stopped.rule == "worse"
    assert result.aborted is not None and result.aborted.startswith("stopped early: ")
    assert result.stopped.bounds["p95_e2el_ms"] > 50.0
    assert not all(result.done)  # requests were left unsent or cancelled
    assert any(r.error == "not sent: run aborted" for r in result.records)
    # A censored observation, not a failure: the bound replaces the p95, the reason is kept.
    metrics, aborted = measured(result, {})
    assert aborted is None
    assert metrics.p95_e2el_ms == result.stopped.bounds["p95_e2el_ms"]
    assert metrics.stopped_early == result.stopped.reason
    assert metrics.failed == 0  # the requests the stop cancelled are not failures
    assert metrics.completed == sum(result.done)


def test_a_run_that_can_still_win_runs_to_its_end() -> None:
    result = _run(StopRules(incumbent_p95_ms=60_000.0, min_requests=10))
    assert result.stopped is None and result.aborted is None
    assert all(result.done) and all(r.success for r in result.records)
    metrics, aborted = measured(result, {})
    assert aborted is None and metrics.stopped_early is None and metrics.completed == 100
