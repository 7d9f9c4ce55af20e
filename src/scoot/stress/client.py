"""The streaming client: replays a trace against an OpenAI-compatible server, like vLLM's.

One ``aiohttp.ClientSession`` with no connection cap and a large read buffer; each request is a
task created at its absolute send offset; ``/v1/completions`` with token-id prompts of exactly
the traced length, ``max_tokens`` = traced output, ``ignore_eos`` and usage in the stream. The
garbage collector is frozen during the run (vLLM PR #12288). A run stops early, with a reason,
when the engine stops answering (connection refused) or most recent requests fail, and, with
``stop_rules``, when the run can no longer pass or beat the incumbent (issue 18).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

from scoot.stress.early_stop import Stop, StopRules, check, progress_of
from scoot.stress.metrics import RequestRecord
from scoot.stress.traces import TraceRequest, prompt_tokens, text_prompt


@dataclass(frozen=True, slots=True)
class StressPlan:
    """One stress test: whom to hit, with what, when."""

    base_url: str
    model: str
    requests: Sequence[TraceRequest]
    offsets: Sequence[float]
    request_timeout_s: float = 60.0
    drain_timeout_s: float = 120.0
    abort_window: int = 20
    abort_error_rate: float = 0.5
    endpoint: str = "completions"
    """``completions`` (token-id prompts) or ``chat`` (``/v1/chat/completions``, text)."""
    scrape_metrics: bool = True
    """Read the engine's Prometheus ``/metrics`` before, during (every second) and after."""
    first_index: int = 0
    """Request ``i`` gets the prompt of trace index ``first_index + i``: runs that must not hit
    each other's prefix cache (the profiler's repeats) start at different indices."""
    trust_env: bool = False
    """Honour HTTP(S)_PROXY and ~/.netrc as ``vllm bench serve`` does (aiohttp ``trust_env``);
    off by default, since the lookup costs ~0.8 ms per request before it is sent."""
    stop_rules: StopRules | None = None
    """Early stopping (issue 18): checked every ``stop_check_s`` on what the client knows so
    far (scoot.stress.early_stop); None runs the test to its end."""
    stop_check_s: float = 1.0
    stop_seed: int = 0
    continuous_usage: bool = False
    """Ask for the token count in every chunk (``continuous_usage_stats``), so a chunk that
    carries several tokens is known (the profiler's decode steps); engines that ignore it
    send it at the end only."""


@dataclass(frozen=True, slots=True)
class StressResult:
    """Per-request records, the run's duration, and why it stopped early (if it did)."""

    records: list[RequestRecord]
    duration: float
    aborted: str | None = None
    engine: dict[str, float] = field(default_factory=dict)
    """What the engine's ``/metrics`` said about the run (:func:`engine_summary`); empty when
    the engine has no such endpoint."""
    stopped: Stop | None = None
    """The early-stop rule that ended the run (``aborted`` then says why), if one did."""
    done: list[bool] = field(default_factory=list)
    """Per request, whether it finished (a request cancelled by the stop did not)."""


class _Abort(Exception):
    pass


async def run_stress(plan: StressPlan) -> StressResult:
    """Replay ``plan`` and return what every request saw."""
    n = len(plan.requests)
    records = [RequestRecord() for _ in range(n)]
    chat = plan.endpoint == "chat"
    prompts: list[list[int] | str] = [
        text_prompt(r, i) if chat or r.prompt is not None else prompt_tokens(r, i)
        for i, r in enumerate(plan.requests, start=plan.first_index)
    ]
    recent: deque[bool] = deque(maxlen=plan.abort_window)
    abort_reason: list[str] = []
    done = [False] * n
    stopped: list[Stop] = []
    stop = asyncio.Event()
    url = plan.base_url.rstrip("/") + ("/v1/chat/completions" if chat else "/v1/completions")
    timeout = aiohttp.ClientTimeout(total=None, sock_read=plan.request_timeout_s, sock_connect=10)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, force_close=False)
    gc.collect()
    gc.freeze()
    try:
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            read_bufsize=4 * 1024 * 1024,
            trust_env=plan.trust_env,
        ) as session:

            async def one(i: int, start: float) -> None:
                rec = records[i]
                req = plan.requests[i]
                payload: dict[str, object] = {
                    "model": plan.model,
                    "max_tokens": req.output_length,
                    "ignore_eos": True,
                    "stream": True,
                    "stream_options": {"include_usage": True}
                    | ({"continuous_usage_stats": True} if plan.continuous_usage else {}),
                }
                if chat:
                    payload["messages"] = [{"role": "user", "content": prompts[i]}]
                    payload["max_completion_tokens"] = req.output_length
                else:
                    payload["prompt"] = prompts[i]
                rec.scheduled = start + plan.offsets[i]
                rec.prompt_tokens = req.input_length
                try:
                    await _send(session, url, payload, rec)
                except aiohttp.ClientConnectorError as exc:
                    rec.error = f"connection refused: {exc.os_error}"
                    if not abort_reason:
                        abort_reason.append("engine stopped answering (connection refused)")
                    stop.set()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    rec.error = f"{type(exc).__name__}: {exc}"
                except Exception as exc:  # whatever a broken server does, a reason is kept
                    rec.error = f"{type(exc).__name__}: {exc}"[:300]
                done[i] = True
                recent.append(rec.success)
                if (
                    len(recent) == recent.maxlen
                    and recent.count(False) / len(recent) >= plan.abort_error_rate
                    and not abort_reason
                ):
                    abort_reason.append(
                        f"{recent.count(False)} of the last {len(recent)} requests failed"
                    )
                    stop.set()

            base = plan.base_url.rstrip("/")
            samples: list[dict[str, float]] = []
            sampler = None
            if plan.scrape_metrics:
                first = await scrape(session, base)
                if first is not None:
                    samples.append(first)
                    sampler = asyncio.create_task(_sample_every(session, base, samples, 1.0))
            start = time.perf_counter()
            watcher = None
            if plan.stop_rules is not None and n:
                watcher = asyncio.create_task(
                    _watch(plan, records, done, start, stop, stopped, abort_reason)
                )
            tasks: list[asyncio.Task[None]] = []
            for i in range(n):
                delay = start + plan.offsets[i] - time.perf_counter()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=delay)
                if stop.is_set():
                    break
                tasks.append(asyncio.create_task(one(i, start)))
            for i in range(len(tasks), n):
                records[i].error = "not sent: run aborted"
                records[i].scheduled = start + plan.offsets[i]
                records[i].sent = records[i].scheduled
            if tasks:
                drain_end = time.perf_counter() + plan.drain_timeout_s
                pending: set[asyncio.Future[Any]] = set(tasks)
                while pending and not stop.is_set():
                    left = drain_end - time.perf_counter()
                    if left <= 0:
                        break
                    stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
                    _, pending = await asyncio.wait(
                        pending | {stopper}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                    )
                    pending.discard(stopper)
                    stopper.cancel()
                # A run stopped while sending never waited on its tasks: those already
                # finished are not in flight, whatever ``pending`` still holds.
                pending = {fut for fut in pending if not fut.done()}
                for fut in pending:
                    fut.cancel()
                for i, task in enumerate(tasks):
                    if task in pending and not records[i].error:
                        records[i].error = (
                            "cancelled: run aborted"
                            if stop.is_set()
                            else "timeout: not finished "
                            f"{plan.drain_timeout_s:.0f} s after the last send"
                        )
                        records[i].success = False
                await asyncio.gather(*pending, return_exceptions=True)
            duration = time.perf_counter() - start
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
                last = await scrape(session, base)
                if last is not None:
                    samples.append(last)
    finally:
        gc.unfreeze()
    return StressResult(
        records,
        duration,
        abort_reason[0] if abort_reason else None,
        engine_summary(samples),
        stopped[0] if stopped else None,
        done,
    )


async def _watch(
    plan: StressPlan,
    records: list[RequestRecord],
    done: list[bool],
    start: float,
    stop: asyncio.Event,
    stopped: list[Stop],
    abort_reason: list[str],
) -> None:
    """Check the early-stop rules every ``stop_check_s`` until the run ends or one fires."""
    assert plan.stop_rules is not None
    rng = np.random.default_rng(plan.stop_seed)
    last = plan.offsets[-1] if plan.offsets else 0.0
    rate = len(plan.offsets) / last if last > 0 else float(len(plan.offsets))
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=plan.stop_check_s)
        if stop.is_set():
            return
        now = time.perf_counter() - start
        found = check(progress_of(records, done, start, now, rate), plan.stop_rules, rng)
        if found is not None and not abort_reason:
            stopped.append(found)
            abort_reason.append(f"stopped early: {found.reason}")
            stop.set()


def parse_prometheus(text: str) -> dict[str, float]:
    """``vllm:*`` samples of a Prometheus text page, summed over label sets."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("vllm:"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        try:
            out[name] = out.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return out


async def scrape(session: aiohttp.ClientSession, base: str) -> dict[str, float] | None:
    """One read of ``/metrics``; None where the engine has none or does not answer in 2 s."""
    try:
        async with session.get(base + "/metrics", timeout=aiohttp.ClientTimeout(total=2)) as r:
            if r.status != 200:
                return None
            return parse_prometheus(await r.text())
    except (aiohttp.ClientError, TimeoutError):
        return None


async def _sample_every(
    session: aiohttp.ClientSession, base: str, samples: list[dict[str, float]], period: float
) -> None:
    while True:
        await asyncio.sleep(period)
        got = await scrape(session, base)
        if got is not None:
            samples.append(got)


def engine_summary(samples: Sequence[dict[str, float]]) -> dict[str, float]:
    """Counters as increases over the run, gauges as their peak (vLLM V1 metric names)."""
    if len(samples) < 2:
        return {}
    first, last = samples[0], samples[-1]

    def delta(name: str) -> float:
        return last.get(name, 0.0) - first.get(name, 0.0)

    def peak(*names: str) -> float:
        return max((s.get(n, 0.0) for s in samples for n in names), default=0.0)

    out = {
        "preemptions": delta("vllm:num_preemptions_total"),
        "kv_cache_usage_peak": peak("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
        "requests_waiting_peak": peak("vllm:num_requests_waiting"),
        "requests_running_peak": peak("vllm:num_requests_running"),
    }
    queries = delta("vllm:prefix_cache_queries_total")
    if queries > 0:
        out["prefix_cache_hit_rate"] = delta("vllm:prefix_cache_hits_total") / queries
    return out


async def _send(
    session: aiohttp.ClientSession, url: str, payload: dict[str, object], rec: RequestRecord
) -> None:
    rec.sent = time.perf_counter()
    st = rec.sent
    async with session.post(url, json=payload) as resp:
        if resp.status != 200:
            text = (await resp.text())[:300]
            rec.error = f"HTTP {resp.status}: {text}"
            return
        buf = b""
        last = 0.0
        got_first = False
        chunks = resp.content.iter_any()
        while True:
            try:
                data = await chunks.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError:
                if not got_first:
                    raise
                # Tokens came, then none for a whole read timeout: the engine stalled (hang),
                # unlike a request that waited in a long queue for its first token.
                rec.error = f"stalled: no token for {_read_timeout(session)} s mid-stream"
                return
            buf += data
            while b"\n\n" in buf:
                message, buf = buf.split(b"\n\n", 1)
                message = message.strip()
                if not message.startswith(b"data:"):
                    continue  # comments and keep-alives
                body = message[5:].strip()
                if body == b"[DONE]":
                    continue
                try:
                    obj = json.loads(body)
                except ValueError:
                    rec.error = f"malformed stream chunk: {body[:80]!r}"
                    return
                if not isinstance(obj, dict):
                    rec.error = f"malformed stream chunk: {body[:80]!r}"
                    return
                usage = obj.get("usage")
                if obj.get("choices"):
                    ts = time.perf_counter()
                    if not got_first:
                        got_first = True
                        rec.ttft = ts - st
                    else:
                        rec.itl.append(ts - last)
                    last = ts
                    if usage:
                        rec.chunk_tokens.append(int(usage.get("completion_tokens") or 0))
                if usage:
                    rec.output_tokens = int(usage.get("completion_tokens") or 0)
                    rec.prompt_tokens = int(usage.get("prompt_tokens") or rec.prompt_tokens)
        if not got_first:
            rec.error = "no choices in the stream"
            return
        rec.latency = last - st
        if rec.output_tokens == 0:
            rec.output_tokens = len(rec.itl) + 1  # no usage: count chunks, as vLLM falls back
        rec.success = True


def _read_timeout(session: aiohttp.ClientSession) -> str:
    read = session.timeout.sock_read
    return f"{read:g}" if read is not None else "?"


def run_stress_sync(plan: StressPlan) -> StressResult:
    """Blocking wrapper for callers outside an event loop."""
    return asyncio.run(run_stress(plan))
