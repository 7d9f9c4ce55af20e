"""The client's timestamps against a scripted server: vllm bench serve's definitions."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import FAKE_ROUTES, answers, wait_for
from scoot.domain import FailureKind, TrialState
from scoot.engine.launcher import free_port
from scoot.jobs.evaluate import judge
from scoot.stress.client import StressPlan, run_stress_sync
from scoot.stress.metrics import compute
from scoot.stress.traces import TraceRequest

SERVE = FAKE_ROUTES

# First chunk carries choices with empty text at 60 ms, then two tokens 60 ms apart, then a
# usage-only chunk (no choices) and [DONE]. A prompt of 1 token gets a 500 error.
SERVER = (
    r"""
import asyncio, json, sys
from aiohttp import web

async def completions(request):
    body = await request.json()
    if len(body["prompt"]) == 1:
        return web.json_response({"error": "nope"}, status=500)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for text in ("", "a", "b"):
        await asyncio.sleep(0.06)
        chunk = {"choices": [{"index": 0, "text": text, "finish_reason": None}]}
        await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    await asyncio.sleep(0.5)  # a late usage chunk: E2E must not wait for it
    usage = {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 3}}
    await resp.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
    return resp

"""
    + SERVE
)


def test_empty_first_chunk_usage_tokens_and_failures() -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/health"), 30, "the fake server")
        reqs = [TraceRequest(4, 3), TraceRequest(1, 3)]
        result = run_stress_sync(StressPlan(f"http://127.0.0.1:{port}", "m", reqs, [0.0, 0.01]))
    finally:
        server.terminate()
        server.wait(5)
    ok, bad = result.records
    # Bounds the server's own pauses set, whatever the machine's speed: TTFT is the first chunk
    # with choices, even with empty text (vllm bench serve does the same), so at least one
    # 60 ms pause; two more pauses until the last token.
    assert ok.ttft >= 0.055
    assert len(ok.itl) == 2 and all(g >= 0.055 for g in ok.itl)
    # E2E ends at the last choice-bearing chunk, not at the usage chunk 0.5 s later, or [DONE].
    assert ok.ttft + sum(ok.itl) == pytest.approx(ok.latency)
    assert ok.latency + 0.4 < result.duration
    assert ok.output_tokens == 3  # from usage
    assert not bad.success and bad.error.startswith("HTTP 500")
    m = compute(result.records, result.duration)
    assert (m.completed, m.failed, m.failures) == (1, 1, {"HTTP 500": 1})
    assert m.mean_tpot_ms == pytest.approx((ok.latency - ok.ttft) / 2 * 1e3)


BROKEN_SERVER = (
    """
import asyncio, json, sys
from aiohttp import web

async def completions(request):
    body = await request.json()
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    chunk = {"choices": [{"index": 0, "text": "a", "finish_reason": None}]}
    await resp.write(b"data: " + json.dumps(chunk).encode() + b"\\n\\n")
    if len(body["prompt"]) == 2:
        await asyncio.sleep(3600)  # tokens came, then the engine stalled
    await resp.write(b"data: {not json\\n\\n")  # a malformed chunk
    return resp

"""
    + SERVE
)


def test_a_stalled_stream_is_a_hang_and_a_malformed_chunk_is_named() -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", BROKEN_SERVER, str(port)])
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/health"), 30, "the fake server")
        reqs = [TraceRequest(2, 3), TraceRequest(3, 3)]
        plan = StressPlan(f"http://127.0.0.1:{port}", "m", reqs, [0.0, 0.0], request_timeout_s=1.0)
        result = run_stress_sync(plan)
    finally:
        server.kill()  # its stalled handler would hold a graceful shutdown for a minute
        server.wait(5)
    stalled, malformed = result.records
    assert stalled.error.startswith("stalled: no token for 1 s"), stalled.error
    assert malformed.error.startswith("malformed stream chunk: b'{not json'"), malformed.error
    m = compute(result.records, result.duration)
    state, kind, message = judge(m, None, True, 0.05, [stalled.error] * 3 + [malformed.error])
    assert (state, kind) == (TrialState.FAILED, FailureKind.HANG)
    assert message is not None and "stalled" in message


COUNTING_SERVER = (
    r"""
import asyncio, json, sys
from aiohttp import web

async def completions(request):
    body = await request.json()
    every = body["stream_options"].get("continuous_usage_stats", False)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for text, made in (("a", 1), ("bc", 3)):  # the second chunk carries two tokens
        chunk = {"choices": [{"index": 0, "text": text, "finish_reason": None}]}
        if every:
            chunk["usage"] = {"prompt_tokens": 4, "completion_tokens": made}
        await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await asyncio.sleep(0.02)
    usage = {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 3}}
    await resp.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
    return resp

"""
    + SERVE
)


def test_continuous_usage_counts_the_tokens_of_every_chunk() -> None:
    """The profiler asks for the count in every chunk: an engine that lags puts several tokens
    in one chunk, and its gap then covers them all."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", COUNTING_SERVER, str(port)])
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/health"), 30, "the fake server")
        url, reqs = f"http://127.0.0.1:{port}", [TraceRequest(4, 3)]
        (counted,) = run_stress_sync(
            StressPlan(url, "m", reqs, [0.0], continuous_usage=True)
        ).records
        (plain,) = run_stress_sync(StressPlan(url, "m", reqs, [0.0])).records
    finally:
        server.terminate()
        server.wait(5)
    assert counted.chunk_tokens == [1, 3] and counted.output_tokens == 3
    assert plain.chunk_tokens == [] and plain.output_tokens == 3
