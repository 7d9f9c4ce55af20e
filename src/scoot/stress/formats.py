"""Readers for the public trace formats, used as they come, into SCOOT's internal format.

- ``internal``: JSONL ``input_length``, ``output_length``, ``timestamp`` (s), ``hash_ids``,
  ``prompt``;
- ``mooncake``: JSONL with the same keys, ``timestamp`` in milliseconds, 512-token ``hash_ids``;
- ``azure``: CSV ``TIMESTAMP,ContextTokens,GeneratedTokens`` (Azure LLM inference traces);
- ``burstgpt``: CSV ``Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type``;
- ``sharegpt``: JSON list of ``{"conversations": [{"from": ..., "value": ...}, ...]}``.

``auto`` picks by extension and header. A malformed record is an error naming the file and
line (or list index); with ``skip_bad`` it is counted and skipped instead. ShareGPT has text,
not token counts: the first human turn becomes the ``prompt``, the first model turn's length the
output length, both counted at 4 characters per token (no tokenizer on the client, as the
brief requires); conversations with fewer than two turns are dropped, as ``vllm bench`` does.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from scoot.stress.traces import TraceError, TraceRequest, parse_record

FORMATS = ("auto", "internal", "mooncake", "azure", "burstgpt", "sharegpt")
CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class TraceLoad:
    """What a reader got: the requests, and how many records it skipped (with ``skip_bad``)."""

    requests: list[TraceRequest]
    skipped: int = 0
    first_errors: list[str] = field(default_factory=list)


def read_trace(path: str | Path, fmt: str = "auto") -> list[TraceRequest]:
    """Read a trace in any supported format, strictly.

    Raises:
        TraceError: naming the file and line of the first bad record.
    """
    return load(path, fmt).requests


def detect(path: Path, head: str) -> str:
    """The format of ``path`` from its extension, else from its first line."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "internal"
    lines = [ln.strip() for ln in head.splitlines() if ln.strip()]
    first = next((ln for ln in lines if not ln.startswith("#")), "")
    if suffix == ".json" or first.startswith("["):
        return "sharegpt"
    if suffix == ".csv" or (first and not first.startswith("{")):
        if first.startswith("TIMESTAMP") and "ContextTokens" in first:
            return "azure"
        if "Request tokens" in first and "Response tokens" in first:
            return "burstgpt"
        raise TraceError(
            f"{path}:1: unknown CSV header {first[:80]!r} (expected Azure's "
            "'TIMESTAMP,ContextTokens,GeneratedTokens' or BurstGPT's '...,Request tokens,"
            "Response tokens,...'); pass --format"
        )
    return "internal"


def load(path: str | Path, fmt: str = "auto", *, skip_bad: bool = False) -> TraceLoad:
    """Read a trace of any supported format.

    Raises:
        TraceError: naming the file and line of the first bad record (unless ``skip_bad``),
            or when nothing usable is left.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise TraceError(f"{path}: unknown trace format {fmt!r}; one of {', '.join(FORMATS)}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"{path}: cannot read trace: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise TraceError(f"{path}: not a UTF-8 text file") from None
    if fmt == "auto":
        fmt = detect(path, text[:4096])
    sink = _Sink(path, skip_bad)
    if fmt in ("internal", "mooncake"):
        scale = 1e-3 if fmt == "mooncake" else 1.0
        for lineno, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if line and not line.startswith("#"):
                sink.take(lineno, lambda w, line=line: parse_record(line, w, time_scale=scale))
    elif fmt == "azure":
        _csv(sink, text, ("TIMESTAMP", "ContextTokens", "GeneratedTokens"), _azure_time)
    elif fmt == "burstgpt":
        _csv(sink, text, ("Timestamp", "Request tokens", "Response tokens"), float)
    else:
        _sharegpt(sink, text)
    if not sink.out:
        extra = f" ({sink.skipped} bad records skipped)" if sink.skipped else ""
        raise TraceError(f"{path}: the trace has no requests{extra}")
    return TraceLoad(sink.out, sink.skipped, sink.errors[:5])


class _Sink:
    def __init__(self, path: Path, skip_bad: bool) -> None:
        self.path = path
        self.skip_bad = skip_bad
        self.out: list[TraceRequest] = []
        self.skipped = 0
        self.errors: list[str] = []

    def take(self, where: int | str, make: object) -> None:
        assert callable(make)
        try:
            self.out.append(make(f"{self.path}:{where}"))
        except TraceError as exc:
            if not self.skip_bad:
                raise
            self.skipped += 1
            self.errors.append(str(exc))


def _azure_time(value: str) -> float:
    # "2023-11-16 18:15:46.6805900": seven fractional digits, more than strptime takes.
    head, _, frac = value.strip().partition(".")
    base = datetime.strptime(head, "%Y-%m-%d %H:%M:%S").timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def _csv(sink: _Sink, text: str, cols: tuple[str, str, str], parse_time: object) -> None:
    assert callable(parse_time)
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return
    header = [h.strip() for h in header]
    missing = [c for c in cols if c not in header]
    if missing:
        raise TraceError(f"{sink.path}:1: missing column(s) {', '.join(missing)}")
    ti, ii, oi = (header.index(c) for c in cols)
    t0: list[float] = []

    def make(row: list[str], where: str) -> TraceRequest:
        try:
            ts = float(parse_time(row[ti]))
            inp, out = int(row[ii]), int(row[oi])
        except (ValueError, IndexError):
            raise TraceError(f"{where}: malformed row {','.join(row)[:80]!r}") from None
        if inp < 1 or out < 1:
            raise TraceError(f"{where}: token counts must be positive, got {inp} and {out}")
        if not t0:
            t0.append(ts)
        return TraceRequest(inp, out, max(0.0, ts - t0[0]))

    for lineno, row in enumerate(reader, start=2):
        if row and any(c.strip() for c in row):
            sink.take(lineno, lambda w, row=row: make(row, w))


def _sharegpt(sink: _Sink, text: str) -> None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TraceError(f"{sink.path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, list):
        raise TraceError(f"{sink.path}: expected a JSON list of conversations")

    def make(item: object, where: str) -> TraceRequest | None:
        if not isinstance(item, dict) or not isinstance(item.get("conversations"), list):
            raise TraceError(f"{where}: expected an object with a 'conversations' list")
        turns = item["conversations"]
        if len(turns) < 2:
            return None
        values = []
        for t in turns[:2]:
            if not isinstance(t, dict) or not isinstance(t.get("value"), str):
                raise TraceError(f"{where}: each turn needs a string 'value'")
            values.append(t["value"])
        prompt, answer = values
        n_in = max(1, round(len(prompt) / CHARS_PER_TOKEN))
        n_out = max(1, round(len(answer) / CHARS_PER_TOKEN))
        return TraceRequest(n_in, n_out, prompt=prompt)

    for i, item in enumerate(data):
        before = len(sink.out)
        sink.take(f"[{i}]", lambda w, item=item: make(item, w))
        if len(sink.out) > before and sink.out[-1] is None:
            sink.out.pop()  # too short a conversation: dropped, not bad


def to_jsonl(requests: list[TraceRequest]) -> str:
    """The internal format (``scoot trace convert``)."""
    lines = []
    for r in requests:
        obj: dict[str, object] = {}
        if r.timestamp is not None:
            obj["timestamp"] = round(r.timestamp, 6)
        obj["input_length"] = r.input_length
        obj["output_length"] = r.output_length
        if r.hash_ids:
            obj["hash_ids"] = list(r.hash_ids)
        if r.prompt is not None:
            obj["prompt"] = r.prompt
        lines.append(json.dumps(obj))
    return "\n".join(lines) + "\n"
