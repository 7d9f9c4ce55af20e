"""Request traces: SCOOT's internal JSONL format, read strictly, and prompt construction.

Internal format, one JSON object per line: ``input_length`` and ``output_length`` (required,
positive ints), ``timestamp`` (seconds, optional), ``hash_ids`` (optional list of ints: shared
prefix blocks of :data:`HASH_BLOCK` tokens, as in Mooncake traces), ``prompt`` (optional
text, sent as is to engines that need text). Blank lines and lines starting with ``#`` are
skipped. A bad line is an error naming the file and line number.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

HASH_BLOCK = 512
"""Tokens per ``hash_ids`` block (Mooncake's, and vLLM's ``timed_trace`` default)."""

PROMPT_VOCAB = 32000
"""Token ids are drawn below this, so prompts are valid for every supported model."""


class TraceError(ValueError):
    """A trace that cannot be read; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class TraceRequest:
    """One request of a trace."""

    input_length: int
    output_length: int
    timestamp: float | None = None
    hash_ids: tuple[int, ...] = ()
    prompt: str | None = None


def parse_record(line: str, where: str, *, time_scale: float = 1.0) -> TraceRequest:
    """One internal-format JSONL record; ``time_scale`` converts its timestamp to seconds."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TraceError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise TraceError(f"{where}: expected a JSON object")
    lengths = []
    for key in ("input_length", "output_length"):
        value = obj.get(key)
        if value is None:
            raise TraceError(f"{where}: missing '{key}'")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TraceError(f"{where}: '{key}' must be a positive integer, got {value!r}")
        lengths.append(value)
    ts = obj.get("timestamp")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int | float) or ts < 0):
        raise TraceError(f"{where}: 'timestamp' must be a non-negative number, got {ts!r}")
    hash_ids = obj.get("hash_ids", [])
    if not isinstance(hash_ids, list) or not all(
        isinstance(h, int) and not isinstance(h, bool) for h in hash_ids
    ):
        raise TraceError(f"{where}: 'hash_ids' must be a list of integers")
    prompt = obj.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise TraceError(f"{where}: 'prompt' must be a string")
    return TraceRequest(
        lengths[0],
        lengths[1],
        float(ts) * time_scale if ts is not None else None,
        tuple(hash_ids),
        prompt,
    )


def heaviest(requests: Sequence[TraceRequest], fraction: float) -> list[TraceRequest]:
    """The most loaded ``fraction`` of requests (input + output tokens), in trace order.

    The paper stress-tests with the heaviest 50% of each service's requests (§5.1).
    """
    if fraction >= 1.0:
        return list(requests)
    k = max(1, round(len(requests) * fraction))
    ranked = sorted(
        range(len(requests)),
        key=lambda i: (-(requests[i].input_length + requests[i].output_length), i),
    )
    keep = set(ranked[:k])
    return [r for i, r in enumerate(requests) if i in keep]


def prompt_tokens(req: TraceRequest, index: int) -> list[int]:
    """Token ids of exactly ``input_length`` tokens for request number ``index``.

    Blocks named by ``hash_ids`` become identical token runs in every request that shares them
    (so prefix caching has something real to hit); the rest is unique to the request, built as
    vLLM's random dataset does (``(offset + i + arange) % vocab``) so nothing matches by accident.
    """
    tokens: list[int] = []
    for h in req.hash_ids:
        if len(tokens) >= req.input_length:
            break
        base = (h * 7919 + 1) % PROMPT_VOCAB
        tokens.extend((base + j * 31) % PROMPT_VOCAB for j in range(HASH_BLOCK))
    del tokens[req.input_length :]
    offset = (index * 104729 + 17) % PROMPT_VOCAB
    need = req.input_length - len(tokens)
    tokens.extend((offset + j) % PROMPT_VOCAB for j in range(need))
    return tokens


_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "this",
    "be",
    "are",
    "it",
    "or",
    "an",
    "was",
    "which",
    "not",
    "but",
    "have",
    "has",
    "can",
    "will",
    "one",
    "all",
    "more",
    "their",
    "about",
    "time",
    "other",
    "into",
    "model",
    "data",
    "system",
    "may",
    "some",
    "these",
    "two",
    "first",
    "use",
    "than",
    "then",
    "its",
    "also",
    "new",
    "over",
    "only",
    "such",
    "most",
    "any",
    "each",
    "where",
]


def text_prompt(req: TraceRequest, index: int) -> str:
    """A text prompt of about ``input_length`` tokens, for engines that take only text (chat).

    The trace's own ``prompt`` when it has one; otherwise one common English word per token
    (each a single token in the usual BPE vocabularies), ``hash_ids`` blocks shared as text.
    """
    if req.prompt is not None:
        return req.prompt
    ids = prompt_tokens(req, index)
    return " ".join(_WORDS[t % len(_WORDS)] for t in ids)


def summarize(requests: Sequence[TraceRequest]) -> dict[str, object]:
    """Counts and length percentiles of a trace (``scoot trace inspect``)."""
    import numpy as np

    def pct(values: list[int]) -> dict[str, float]:
        arr = np.asarray(values, dtype=float)
        out = {"mean": float(arr.mean())}
        for q in (50, 90, 95, 99):
            out[f"p{q}"] = float(np.percentile(arr, q))
        out["max"] = float(arr.max())
        return out

    stamps = [r.timestamp for r in requests if r.timestamp is not None]
    span = (max(stamps) - min(stamps)) if len(stamps) > 1 else 0.0
    return {
        "requests": len(requests),
        "input_length": pct([r.input_length for r in requests]),
        "output_length": pct([r.output_length for r in requests]),
        "with_timestamps": len(stamps),
        "span_s": span,
        "rate_rps": (len(stamps) - 1) / span if span > 0 else None,
        "with_hash_ids": sum(1 for r in requests if r.hash_ids),
    }
