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
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from scoot.engine.embedded.core import Request, Scheduler

VLLM_VERSION = "0.32.0"
"""The vLLM release whose API and scheduler the embedded engine follows."""
FINGERPRINT = f"vllm-{VLLM_VERSION}-scoot"
MAX_LOGPROBS = 20
"""vLLM's default ``--max-logprobs``."""


@dataclass(frozen=True, slots=True)
class Options:
    """A request's sampling options, checked."""

    max_tokens: int
    n: int
    logprobs: int | None
    stop: tuple[str, ...]
    echo: bool
    stream: bool
    usage: bool
    priority: int


@dataclass(slots=True)
class _Choice:
    """What one of a request's ``n`` choices has produced so far."""

    index: int
    echo: str
    tokens: int = 0
    text: str = ""
    finish: str | None = None
    stop_reason: str | None = None
    role_sent: bool = False
    echoed: bool = False
    top: int | None = None
    logprob_tokens: list[str] = field(default_factory=list)
    logprobs_sent: int = 0

    def echo_once(self) -> str:
        """The echoed prompt, in front of the first piece of a stream only."""
        if self.echoed:
            return ""
        self.echoed = True
        return self.echo


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
        self._started = time.time()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/version", self.version)
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

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": VLLM_VERSION, "engine": "scoot-embedded"})

    async def models(self, request: web.Request) -> web.Response:
        """vLLM's model card: the same fields, ``owned_by`` and ``permission`` included."""
        created = int(self._started)
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {
                        "id": self.model_name,
                        "object": "model",
                        "created": created,
                        "owned_by": "vllm",
                        "root": self.model_name,
                        "parent": None,
                        "max_model_len": self.sched.max_model_len,
                        "permission": [
                            {
                                "id": f"modelperm-{uuid.uuid4().hex[:16]}",
                                "object": "model_permission",
                                "created": created,
                                "allow_create_engine": False,
                                "allow_sampling": True,
                                "allow_logprobs": True,
                                "allow_search_indices": False,
                                "allow_view": True,
                                "allow_fine_tuning": False,
                                "organization": "*",
                                "group": None,
                                "is_blocking": False,
                            }
                        ],
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
        if isinstance(prompt, str) and prompt:
            tokens = text_to_tokens(prompt, self.vocab)
            shown = prompt
        elif isinstance(prompt, list) and all(isinstance(t, int) for t in prompt) and prompt:
            tokens = prompt
            bad = next((t for t in tokens if not 0 <= t < self.vocab), None)
            if bad is not None:
                return _error(400, f"Token id {bad} is out of vocabulary")
            shown = "".join(f"<t{t}>" for t in tokens)
        else:
            return _error(
                400,
                "Either prompt or prompt_embeds must be provided and non-empty. "
                "(parameter=prompt)",
                param="prompt",
            )
        return await self._generate(request, body, tokens, chat=False, shown=shown)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._json(request)
        if isinstance(body, web.Response):
            return body
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "messages must be a non-empty list", param="messages")
        text = "".join(
            f"<|{m.get('role', 'user')}|>{m.get('content', '')}"
            for m in messages
            if isinstance(m, dict)
        )
        return await self._generate(
            request, body, text_to_tokens(text, self.vocab), chat=True, shown=""
        )

    async def _json(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = await request.json()
        except json.JSONDecodeError as exc:
            return _error(
                400, f"1 validation error: JSON decode error ({exc.msg})", "Bad Request", "body"
            )
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object", "Bad Request", "body")
        model = body.get("model")
        if model is not None and model != self.model_name:
            return _error(
                404,
                f"The model `{model}` does not exist. Valid aliases: {self.model_name}.",
                "NotFoundError",
                "model",
            )
        return body

    def _options(
        self, body: dict[str, Any], prompt_len: int, chat: bool
    ) -> Options | web.Response:
        """The sampling options SCOOT's engines honour, checked with vLLM 0.32's wording."""
        key = "max_completion_tokens" if chat and "max_completion_tokens" in body else "max_tokens"
        limit = self.sched.max_model_len
        max_tokens = body.get(key)
        if max_tokens is None:
            max_tokens = 16 if not chat else limit - prompt_len
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            return _error(400, f"{key} must be at least 1, got {max_tokens}.", param=key)
        if max_tokens > limit:
            return _error(
                400,
                f"{key}={max_tokens} cannot be greater than max_model_len={limit}. Please "
                f"request fewer output tokens. (parameter={key}, value={max_tokens})",
                param=key,
            )
        if prompt_len >= limit:
            return _error(
                400,
                f"This model's maximum context length is {limit} tokens. However, your request "
                f"has {prompt_len} input tokens. Please reduce the length of the input messages. "
                f"(parameter=input_tokens, value={prompt_len})",
                param="input_tokens",
            )
        # vLLM 0.32 shortens the completion to what the context leaves (it does not refuse).
        max_tokens = min(max_tokens, limit - prompt_len)
        n = body.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            return _error(400, f"n must be at least 1, got {n}.")
        logprobs = body.get("logprobs")
        if chat:
            logprobs = body.get("top_logprobs") if body.get("logprobs") else None
        if logprobs is not None and (not isinstance(logprobs, int) or isinstance(logprobs, bool)):
            return _error(400, f"logprobs must be an integer, got {logprobs!r}", param="logprobs")
        if logprobs is not None and logprobs > MAX_LOGPROBS:
            return _error(
                400,
                f"Requested sample logprobs of {logprobs}, which is greater than max allowed: "
                f"{MAX_LOGPROBS} (parameter=logprobs, value={logprobs})",
                param="logprobs",
            )
        stop = body.get("stop") or []
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(x, str) for x in stop):
            return _error(400, "stop must be a string or a list of strings", param="stop")
        return Options(
            max_tokens=max_tokens,
            n=n,
            logprobs=logprobs,
            stop=tuple(x for x in stop if x),
            echo=bool(body.get("echo", False)) and not chat,
            stream=bool(body.get("stream", False)),
            usage=bool((body.get("stream_options") or {}).get("include_usage", False)),
            priority=int(body.get("priority", 0) or 0),
        )

    async def _generate(
        self,
        request: web.Request,
        body: dict[str, Any],
        tokens: list[int],
        chat: bool,
        shown: str,
    ) -> web.StreamResponse:
        opts = self._options(body, len(tokens), chat)
        if isinstance(opts, web.Response):
            return opts
        loop = asyncio.get_running_loop()
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:16]}"
        event = asyncio.Event()
        # n > 1: one engine request per choice, as vLLM's parallel sampling forks them (the
        # shared prompt is a prefix-cache hit for all but the first).
        reqs = [
            Request(f"{rid}-{i}", tokens, opts.max_tokens, loop.time(), priority=opts.priority)
            for i in range(opts.n)
        ]
        for req in reqs:
            self._events[req] = event
            self.sched.add(req)
        self.prompt_tokens_total += len(tokens)
        self._wake.set()
        echo = shown if opts.echo else ""
        choices = [_Choice(i, echo, top=opts.logprobs) for i in range(opts.n)]
        created = int(time.time())
        resp: web.StreamResponse | None = None
        try:
            if opts.stream:
                resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await resp.prepare(request)
            while not all(c.finish for c in choices):
                await event.wait()
                event.clear()
                for req, choice in zip(reqs, choices, strict=True):
                    piece = self._advance(req, choice, opts)
                    if piece is None or resp is None:
                        continue
                    chunk = self._chunk(rid, created, choice, piece, opts, chat)
                    await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.requests_total += 1
            if resp is None:
                return web.json_response(self._full(rid, created, choices, len(tokens), chat))
            if opts.usage:
                usage: dict[str, Any] = {
                    "id": rid,
                    "object": "chat.completion.chunk" if chat else "text_completion",
                    "created": created,
                    "model": self.model_name,
                    "choices": [],
                    "usage": _usage(len(tokens), choices),
                    "system_fingerprint": FINGERPRINT,
                }
                await resp.write(b"data: " + json.dumps(usage).encode() + b"\n\n")
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            return resp
        finally:
            for req in reqs:
                self._events.pop(req, None)
                if not req.finished:
                    self.sched.abort(req)

    def _advance(self, req: Request, choice: _Choice, opts: Options) -> str | None:
        """The new text of one choice since it was last looked at (None: nothing new); ends
        the choice at its length or at a stop string (vLLM drops the stop string itself)."""
        if choice.finish:
            return None
        k = req.num_output - choice.tokens
        if k <= 0:
            return None
        words = [_WORDS[(choice.tokens + i) % len(_WORDS)] for i in range(k)]
        choice.tokens += k
        before = len(choice.text)
        text = choice.text + "".join(words)
        hits = [(text.find(s, max(0, before - len(s))), s) for s in opts.stop]
        hits = [(at, s) for at, s in hits if at >= 0]
        if hits:
            at, s = min(hits)
            text = text[:at]
            choice.finish, choice.stop_reason = "stop", s
            self.sched.abort(req)  # vLLM aborts the sequence once a stop string matched
        elif choice.tokens >= req.max_tokens:
            choice.finish = "length"
        piece = text[before:]
        choice.text = text
        if opts.logprobs is not None:
            choice.logprob_tokens += words
        return choice.echo_once() + piece

    def _logprobs(self, tokens: list[str], offset: int, top: int) -> dict[str, Any]:
        """vLLM's completions ``logprobs`` object; the numbers are placeholders, the shape is
        what a client parses: per token the sampled one and the ``top`` most likely, as
        vLLM returns them."""
        return {
            "text_offset": [offset + sum(len(t) for t in tokens[:i]) for i in range(len(tokens))],
            "token_logprobs": [-1.0] * len(tokens),
            "tokens": tokens,
            "top_logprobs": [
                {t: -1.0, **{f"<t{k}>": -2.0 - k for k in range(top)}} for t in tokens
            ],
        }

    def _chunk(
        self,
        rid: str,
        created: int,
        c: _Choice,
        text: str,
        opts: Options,
        chat: bool,
    ) -> dict[str, Any]:
        if chat:
            delta: dict[str, str] = {"content": text}
            if not c.role_sent:
                delta["role"] = "assistant"
                c.role_sent = True
            choice: dict[str, Any] = {
                "index": c.index,
                "delta": delta,
                "logprobs": None,
                "finish_reason": c.finish,
                "stop_reason": c.stop_reason,
            }
            obj = "chat.completion.chunk"
        else:
            logprobs = None
            if opts.logprobs is not None:
                new = c.logprob_tokens[c.logprobs_sent :]
                logprobs = self._logprobs(new, len(c.text) - len(text), opts.logprobs)
                c.logprobs_sent = len(c.logprob_tokens)
            choice = {
                "index": c.index,
                "text": text,
                "logprobs": logprobs,
                "finish_reason": c.finish,
                "stop_reason": c.stop_reason,
                "prompt_token_ids": None,
                "token_ids": None,
            }
            obj = "text_completion"
        return {
            "id": rid,
            "object": obj,
            "created": created,
            "model": self.model_name,
            "choices": [choice],
        }

    def _full(
        self, rid: str, created: int, choices: list[_Choice], prompt_len: int, chat: bool
    ) -> dict[str, Any]:
        out = []
        for c in choices:
            if chat:
                out.append(
                    {
                        "index": c.index,
                        "message": {"role": "assistant", "content": c.text},
                        "logprobs": None,
                        "finish_reason": c.finish,
                        "stop_reason": c.stop_reason,
                    }
                )
            else:
                out.append(
                    {
                        "index": c.index,
                        "text": c.echo + c.text,
                        "logprobs": (
                            self._logprobs(c.logprob_tokens, len(c.echo), c.top)
                            if c.top is not None
                            else None
                        ),
                        "finish_reason": c.finish,
                        "stop_reason": c.stop_reason,
                        "token_ids": None,
                        "prompt_logprobs": None,
                        "prompt_token_ids": None,
                    }
                )
        return {
            "id": rid,
            "object": "chat.completion" if chat else "text_completion",
            "created": created,
            "model": self.model_name,
            "choices": out,
            "service_tier": None,
            "system_fingerprint": FINGERPRINT,
            "usage": _usage(prompt_len, choices),
        }


def _die_with_the_engine(task: asyncio.Task[None]) -> None:
    """An engine loop that raised takes the server down, as a dead EngineCore takes vLLM's API
    server: requests must fail, not wait forever on a loop that is gone."""
    if task.cancelled() or task.exception() is None:
        return
    exc = task.exception()
    print(f"ERROR EngineCore encountered a fatal error: {exc!r}", flush=True)
    os._exit(1)


def _usage(prompt_len: int, choices: list[_Choice]) -> dict[str, Any]:
    completion = sum(c.tokens for c in choices)
    return {
        "prompt_tokens": prompt_len,
        "total_tokens": prompt_len + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": None,
    }


def _error(
    status: int, message: str, kind: str = "BadRequestError", param: str | None = None
) -> web.Response:
    """vLLM 0.32's error body: ``{"error": {message, type, param, code}}``."""
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": param, "code": status}},
        status=status,
    )
