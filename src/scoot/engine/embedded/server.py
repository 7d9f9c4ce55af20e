"""The embedded engine's server face: an OpenAI-compatible HTTP server paced in real time.

The engine loop runs the core scheduler one iteration at a time and sleeps each iteration's
modelled GPU time against absolute deadlines (so sleep overshoot does not accumulate); requests
stream one SSE chunk per iteration that produced tokens for them, as vLLM's output processor
does. Endpoints mirror vLLM's: ``/health``, ``/v1/models``, ``/v1/completions``,
``/v1/chat/completions`` and Prometheus ``/metrics`` with vLLM's metric names.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import zlib
from typing import Any

from aiohttp import web

from scoot.engine.embedded.core import Request, Scheduler

_WORDS = ("the", " model", " says", " hello", " to", " you", ",", " and", " then", " more")


def text_to_tokens(text: str, vocab: int) -> list[int]:
    """A tokenizer proxy: one token per ~4 characters, ids stable for equal text.

    Lengths in SCOOT's traces come from token ids or ``max_tokens``; text prompts only need a
    plausible count and stable prefixes (so prefix caching still hits on shared text).
    """
    tokens: list[int] = []
    for i in range(0, len(text), 4):
        tokens.append(zlib.crc32(text[i : i + 4].encode()) % vocab)
    return tokens or [0]


class EngineServer:
    """Serves one scheduler over HTTP; ``run`` drives it in real time."""

    def __init__(self, sched: Scheduler, model_name: str, vocab: int) -> None:
        self.sched = sched
        self.model_name = model_name
        self.vocab = vocab
        self._wake = asyncio.Event()
        self._events: dict[Request, asyncio.Event] = {}
        self._counter = 0
        self.requests_total = 0
        self.tokens_total = 0
        self.prompt_tokens_total = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.on_startup.append(self._start_loop)
        return app

    async def _start_loop(self, app: web.Application) -> None:
        task = asyncio.get_running_loop().create_task(self.run())
        task.add_done_callback(_die_with_the_engine)
        app["engine_loop"] = task

    # -- engine loop -------------------------------------------------------------------------
    async def run(self) -> None:
        """Advance the scheduler forever, one modelled GPU iteration at a time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            if not self.sched.has_work():
                self._wake.clear()
                await self._wake.wait()
                deadline = loop.time()
            plan = self.sched.schedule()
            dt = self.sched.step_seconds(plan)
            now = loop.time()
            # Back-to-back iterations as on a GPU; if we fell behind by more than a step,
            # restart the clock instead of bursting to catch up.
            deadline = max(deadline, now - dt) + dt
            delay = deadline - now
            if delay > 0:
                await asyncio.sleep(delay)
            elif not plan.scheduled:
                await asyncio.sleep(0.001)  # nothing fits yet: let arrivals and aborts happen
            for req in self.sched.complete(plan, loop.time()):
                self.tokens_total += 1
                event = self._events.get(req)
                if event is not None:
                    event.set()

    # -- endpoints ---------------------------------------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="")

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {
                        "id": self.model_name,
                        "object": "model",
                        "owned_by": "scoot-embedded",
                        "max_model_len": self.sched.max_model_len,
                    }
                ],
            }
        )

    async def metrics(self, request: web.Request) -> web.Response:
        s = self.sched
        name = self.model_name
        lines = [
            f'vllm:num_requests_running{{model_name="{name}"}} {len(s.running)}',
            f'vllm:num_requests_waiting{{model_name="{name}"}} {s.num_waiting}',
            f'vllm:kv_cache_usage_perc{{model_name="{name}"}} {s.pool.usage:.6f}',
            f'vllm:num_preemptions_total{{model_name="{name}"}} {s.num_preemptions}',
            f'vllm:prefix_cache_queries_total{{model_name="{name}"}} {s.pool.queries}',
            f'vllm:prefix_cache_hits_total{{model_name="{name}"}} {s.pool.hits}',
            f'vllm:generation_tokens_total{{model_name="{name}"}} {self.tokens_total}',
            f'vllm:prompt_tokens_total{{model_name="{name}"}} {self.prompt_tokens_total}',
            f'vllm:request_success_total{{model_name="{name}"}} {self.requests_total}',
            # vLLM's CacheConfig as an info gauge: what `scoot engine profile` reads the KV
            # capacity from.
            f'vllm:cache_config_info{{block_size="{s.pool.block_size}",'
            f'enable_prefix_caching="{s.pool.caching}",'
            f'kv_cache_size_tokens="{s.pool.num_blocks * s.pool.block_size}",'
            f'num_gpu_blocks="{s.pool.num_blocks}"}} 1.0',
        ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._json(request)
        if isinstance(body, web.Response):
            return body
        prompt = body.get("prompt")
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], list):
            prompt = prompt[0]
        if isinstance(prompt, str):
            tokens = text_to_tokens(prompt, self.vocab)
        elif isinstance(prompt, list) and all(isinstance(t, int) for t in prompt) and prompt:
            tokens = prompt
            bad = next((t for t in tokens if not 0 <= t < self.vocab), None)
            if bad is not None:
                return _error(400, f"Token id {bad} is out of vocabulary")
        else:
            return _error(400, "prompt must be a string or a non-empty list of token ids")
        return await self._generate(request, body, tokens, chat=False)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._json(request)
        if isinstance(body, web.Response):
            return body
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "messages must be a non-empty list")
        text = "".join(
            f"<|{m.get('role', 'user')}|>{m.get('content', '')}"
            for m in messages
            if isinstance(m, dict)
        )
        return await self._generate(request, body, text_to_tokens(text, self.vocab), chat=True)

    async def _json(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "request body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object")
        return body

    async def _generate(
        self, request: web.Request, body: dict[str, Any], tokens: list[int], chat: bool
    ) -> web.StreamResponse:
        key = "max_completion_tokens" if chat and "max_completion_tokens" in body else "max_tokens"
        max_tokens = body.get(key, 16)
        if not isinstance(max_tokens, int) or max_tokens < 1:
            return _error(400, f"{key} must be a positive integer")
        limit = self.sched.max_model_len
        if len(tokens) + max_tokens > limit:
            return _error(
                400,
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{len(tokens) + max_tokens} tokens ({len(tokens)} in the messages, {max_tokens} "
                "in the completion). Please reduce the length of the messages or completion.",
            )
        loop = asyncio.get_running_loop()
        self._counter += 1
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{self._counter}"
        priority = body.get("priority", 0)
        req = Request(rid, tokens, max_tokens, loop.time(), priority=int(priority))
        event = asyncio.Event()
        self._events[req] = event
        self.sched.add(req)
        self.prompt_tokens_total += len(tokens)
        self._wake.set()
        stream = bool(body.get("stream", False))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage", False))
        try:
            if not stream:
                while not req.finished:
                    await event.wait()
                    event.clear()
                self.requests_total += 1
                return web.json_response(self._full(req, rid, chat))
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            sent = 0
            created = int(time.time())
            first = True
            while sent < req.max_tokens:
                await event.wait()
                event.clear()
                n = req.num_output - sent
                if n <= 0:
                    continue
                text = "".join(_WORDS[(sent + i) % len(_WORDS)] for i in range(n))
                sent += n
                done = sent >= req.max_tokens
                chunk = self._chunk(rid, created, text, "length" if done else None, chat, first)
                first = False
                await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            if include_usage:
                usage: dict[str, Any] = {
                    "id": rid,
                    "object": "chat.completion.chunk" if chat else "text_completion",
                    "created": created,
                    "model": self.model_name,
                    "choices": [],
                    "usage": _usage(req),
                }
                await resp.write(b"data: " + json.dumps(usage).encode() + b"\n\n")
            await resp.write(b"data: [DONE]\n\n")
            self.requests_total += 1
            await resp.write_eof()
            return resp
        finally:
            self._events.pop(req, None)
            if not req.finished:
                self.sched.abort(req)

    def _chunk(
        self, rid: str, created: int, text: str, finish: str | None, chat: bool, first: bool
    ) -> dict[str, Any]:
        if chat:
            delta: dict[str, str] = {"content": text}
            if first:
                delta["role"] = "assistant"
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
            obj = "chat.completion.chunk"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
            obj = "text_completion"
        return {
            "id": rid,
            "object": obj,
            "created": created,
            "model": self.model_name,
            "choices": [choice],
        }

    def _full(self, req: Request, rid: str, chat: bool) -> dict[str, Any]:
        text = "".join(_WORDS[i % len(_WORDS)] for i in range(req.num_output))
        if chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "length",
            }
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
        return {
            "id": rid,
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [choice],
            "usage": _usage(req),
        }


def _die_with_the_engine(task: asyncio.Task[None]) -> None:
    """An engine loop that raised takes the server down, as a dead EngineCore takes vLLM's API
    server: requests must fail, not wait forever on a loop that is gone."""
    if task.cancelled() or task.exception() is None:
        return
    exc = task.exception()
    print(f"ERROR EngineCore encountered a fatal error: {exc!r}", flush=True)
    os._exit(1)


def _usage(req: Request) -> dict[str, int]:
    return {
        "prompt_tokens": req.prompt_len,
        "completion_tokens": req.num_output,
        "total_tokens": req.prompt_len + req.num_output,
    }


def _error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"object": "error", "message": message, "type": "BadRequestError", "code": status},
        status=status,
    )
