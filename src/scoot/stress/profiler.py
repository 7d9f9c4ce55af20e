"""Measure what one step of a running engine costs, from the outside, into a step table.

``scoot engine profile URL -o TABLE.json`` sends controlled requests with SCOOT's own client to
any OpenAI-compatible engine (real vLLM on CPU here, vLLM on a GPU elsewhere) and writes what it
measured in the format of the embedded engine's ``tables/*.json`` (issue 15):

- **decode**: ``b`` requests of ``s`` prompt tokens sent at once, ``n`` output tokens each; once
  every prompt is prefilled the engine runs pure decode steps of batch ``b``, so the median gap
  between streamed tokens over the last half of each stream (a burst's gap shared by its
  chunks, :func:`tail_step`) is one step, ``linear(b) + D(b, s)``;
- **prefill**: one request of ``L`` prompt tokens and one output token; its time to first token,
  less the client's own overhead (a one-token prompt's TTFT less one decode step), is one
  prefill step, ``linear(L) + A(L)``.

The parts are separated as the table's pricing wants them (``tables.py``): ``linear(b)`` is the
intercept over contexts of a line through ``step(b, s)``, ``D(b, s)`` the rest; over prompts
``linear(L) + A(L)`` is fitted by ``a + b L + c L^2`` and the quadratic term is the attention.
Every point is repeated until its ``min_repeats`` fastest repeats agree (coefficient of
variation under ``settle_cv``, or a spread under ``settle_ms``) or it fails with a clear
error. The raw step times travel with the table (``measured``), with their spread, so a reader
can tell a measurement from a fit.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import platform
import re
import secrets
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from scoot.stress.client import StressPlan, run_stress_sync
from scoot.stress.traces import PROMPT_VOCAB, TraceRequest

PREFILL_SAMPLES = 5
"""Requests per prefill repeat."""


class ProfileError(RuntimeError):
    """The endpoint is not an engine, stopped answering, or its timings did not settle."""


@dataclass(frozen=True, slots=True)
class ProfilePlan:
    """Where to measure and on which grid."""

    base_url: str
    model: str
    batches: Sequence[int] = (1, 4, 16)
    contexts: Sequence[int] = (128, 512, 2048)
    prompts: Sequence[int] = (128, 512, 2048)
    checks: Sequence[tuple[int, int]] = ()
    """Decode points (batch, context) off the grid, measured in the same passes as the grid
    and kept out of the table: what the table predicts there against what was measured is
    its interpolation error (``scoot engine profile --check``)."""
    output_tokens: int = 32
    min_repeats: int = 2
    max_repeats: int = 6
    settle_cv: float = 0.05
    settle_ms: float = 1.0
    """Repeats within this many milliseconds of each other agree, whatever their ratio (a
    one-token prompt's few milliseconds carry the loopback's jitter)."""
    request_timeout_s: float = 120.0


@dataclass
class Measured:
    """Raw step times in milliseconds, each the median of its repeats, with their spread."""

    decode: dict[tuple[int, int], float] = field(default_factory=dict)
    decode_context: dict[tuple[int, int], float] = field(default_factory=dict)
    prefill: dict[int, float] = field(default_factory=dict)
    checks: dict[tuple[int, int], float] = field(default_factory=dict)
    checks_context: dict[tuple[int, int], float] = field(default_factory=dict)
    overhead_ms: float = 0.0
    spread: list[float] = field(default_factory=list)
    repeats: int = 0


def check_engine(base_url: str, model: str) -> dict[str, Any]:
    """What ``/v1/models`` says; an endpoint that is not an OpenAI-compatible engine serving
    ``model`` is an error naming it."""
    url = base_url.rstrip("/") + "/v1/models"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.loads(r.read().decode())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ProfileError(f"{url}: not an OpenAI-compatible engine ({exc})") from None
    ids = [m.get("id") for m in doc.get("data", []) if isinstance(m, dict)]
    if model not in ids:
        raise ProfileError(f"{url}: serves {ids}, not {model!r}; pass --model")
    return dict(doc)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        raise ProfileError(f"{url}: the engine stopped answering ({exc})") from None


def _accepts_token(base_url: str, model: str, token: int) -> bool:
    """Whether a one-token prompt of id ``token`` is served (vLLM refuses ids out of its
    vocabulary with a 400)."""
    body = json.dumps({"model": model, "prompt": [token], "max_tokens": 1}).encode()
    req = urllib.request.Request(
        base_url.rstrip("/") + "/v1/completions",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return bool(r.status == 200)
    except urllib.error.HTTPError as exc:
        if exc.code == 400:
            return False
        raise ProfileError(f"{base_url}: a one-token request got HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ProfileError(f"{base_url}: the engine stopped answering ({exc})") from None


def probe_vocab(base_url: str, model: str, limit: int = 1 << 22) -> int:
    """The vocabulary size, from the outside: the least token id refused, by bisection
    (about 22 one-token requests)."""
    if not _accepts_token(base_url, model, 0):
        raise ProfileError(f"{base_url}: refuses even token id 0; is it serving {model!r}?")
    lo, hi = 0, limit  # lo accepted; hi refused or the limit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _accepts_token(base_url, model, mid):
            lo = mid
        else:
            hi = mid
    return hi


def engine_facts(base_url: str, model: str, models: dict[str, Any]) -> dict[str, Any]:
    """What the engine says of itself: version (``/version``), context length
    (``/v1/models``), KV-cache capacity (``vllm:cache_config_info`` in ``/metrics``) and its
    vocabulary (:func:`probe_vocab`).

    Raises:
        ProfileError: where the engine reports no KV-cache capacity.
    """
    base = base_url.rstrip("/")
    facts: dict[str, Any] = {}
    status, text = _get(base + "/version")
    if status == 200:
        with contextlib.suppress(ValueError):
            facts["version"] = json.loads(text).get("version")
    entry = next(m for m in models.get("data", []) if m.get("id") == model)
    if isinstance(entry.get("max_model_len"), int):
        facts["max_model_len"] = entry["max_model_len"]
    status, text = _get(base + "/metrics")
    info = _labels(text, "vllm:cache_config_info") if status == 200 else {}
    try:
        block = int(info["block_size"])
        tokens = info.get("kv_cache_size_tokens", "None")
        facts["kv_tokens"] = (
            int(tokens) if tokens.isdigit() else int(info["num_gpu_blocks"]) * block
        )
        facts["block_size"] = block
        if info.get("kv_cache_memory_bytes", "").isdigit():
            facts["kv_bytes"] = int(info["kv_cache_memory_bytes"])
    except (KeyError, ValueError):
        raise ProfileError(
            f"{base}/metrics: no vllm:cache_config_info with num_gpu_blocks and block_size, so "
            "the KV-cache capacity is unknown"
        ) from None
    facts["vocab"] = probe_vocab(base_url, model)
    return facts


def _labels(text: str, metric: str) -> dict[str, str]:
    """The labels of the first sample of ``metric`` in a Prometheus text page."""
    for line in text.splitlines():
        if line.startswith(metric + "{"):
            inside = line[len(metric) + 1 : line.rindex("}")]
            return dict(re.findall(r'(\w+)="([^"]*)"', inside))
    return {}


_indices = itertools.count(secrets.randbelow(PROMPT_VOCAB))
"""Trace indices of the prompts sent: each request's tokens are new (no prefix-cache hit
between repeats, nor, but by a ~2 % chance of overlapping ranges, with an earlier profile of the
same engine); 104729, the client's index stride, is prime to its vocabulary."""


def _stream(plan: ProfilePlan, prompt: int, batch: int, output: int) -> list[Any]:
    requests = [TraceRequest(prompt, output) for _ in range(batch)]
    first, *_ = itertools.islice(_indices, batch)  # this run's ``batch`` indices
    result = run_stress_sync(
        StressPlan(
            plan.base_url,
            plan.model,
            requests,
            [0.0] * batch,
            request_timeout_s=plan.request_timeout_s,
            drain_timeout_s=plan.request_timeout_s,
            scrape_metrics=False,
            first_index=first,
            continuous_usage=True,
        )
    )
    bad = [r.error for r in result.records if not r.success]
    if bad:
        raise ProfileError(f"{plan.base_url}: {len(bad)} of {batch} requests failed: {bad[0]}")
    return result.records


def _settled(
    plan: ProfilePlan,
    points: dict[str, Callable[[], float]],
    spread: list[float],
    on_settle: Callable[[str], None] = lambda what: None,
) -> dict[str, tuple[float, int]]:
    """Repeat every point until its ``min_repeats`` fastest repeats agree: each point's median
    of those and how many repeats it took; ``on_settle`` hears of each point as it settles.

    A step's time only grows with noise (another process taking the core, a page fault, the
    loopback's jitter), never shrinks, so the fastest repeats are the step and the slow ones
    are the machine. Asking every repeat to agree failed a profile on a shared CI machine
    (six decode repeats of one point spread 23 %) where a pair of them agreed.

    The points are repeated in passes, each pass measuring once every point not yet settled,
    not one point to the end before the next: a slow spell of the machine then lands on the
    repeats of several points alike, where point by point it could settle one of them on two
    slow repeats and bend the table around it (CI's off-grid check missed by 16 %)."""
    values: dict[str, list[float]] = {what: [] for what in points}
    done: dict[str, tuple[float, int]] = {}
    while len(done) < len(points):
        pending = [what for what in points if what not in done]
        for what in pending:
            values[what].append(points[what]())
        for what in pending:
            got = values[what]
            if len(got) < plan.min_repeats:
                continue
            fastest = sorted(got)[: plan.min_repeats]
            mean = statistics.fmean(fastest)
            sd = statistics.pstdev(fastest)
            cv = sd / mean if mean > 0 else 0.0
            if cv <= plan.settle_cv or sd <= plan.settle_ms:
                spread.append(cv)
                done[what] = statistics.median(fastest), len(got)
                on_settle(what)
            elif len(got) >= plan.max_repeats:
                raise ProfileError(
                    f"{what}: in {len(got)} repeats no {plan.min_repeats} agreed (the "
                    f"fastest spread {cv:.1%}, wanted <= {plan.settle_cv:.0%}): is something "
                    "else running on the machine?"
                )
    return done


BURST = 0.35
"""A gap under this fraction of a stream's mean time per chunk is a chunk of a burst."""


def tail_step(ttft: float, itl: Sequence[float], tokens: Sequence[int] = ()) -> float:
    """The step one stream's last half gives: the median time per token, where the chunks that
    came in a burst share the gap that led the burst.

    Under load the gaps stop being steps: a client (or an engine's output process) that stalls
    then reads every token made meanwhile at once, one long gap and a run of zeros (on a loaded
    vLLM-CPU, an 87 ms gap then 29 gaps of 0 ms on a 2.8 ms step; or a whole stream in one
    read), so the median gap came out at 0 and the fastest repeats that agreed were bursts.
    The long gap is the time the whole burst took to make: spread over its tokens, each is a
    step again, and a stream read at once is led by its time to first token, so it comes out
    slow, never fast (noise only adds, as :func:`_settled` wants). An engine that lags puts
    several tokens in one chunk: ``tokens`` (the count so far at each chunk, where the engine
    sends it) says how many; without it every chunk is one token."""
    gaps = [ttft, *itl]  # the first chunk's gap is from the request
    counts = [1] * len(gaps)
    if len(tokens) == len(gaps):
        counts = [max(1, b - a) for a, b in zip([0, *tokens[:-1]], tokens, strict=True)]
    cut = BURST * sum(gaps) / sum(counts)
    groups: list[list[int]] = []  # the chunks of one burst: its leader and those after it
    for i, gap in enumerate(gaps):
        if groups and gap < cut * counts[i]:
            groups[-1].append(i)
        else:
            groups.append([i])
    half = len(gaps) // 2  # every prompt is prefilled by then: pure decode
    per_token: list[float] = []
    for g in groups:
        if g[-1] >= half:
            n = sum(counts[i] for i in g)
            per_token += [sum(gaps[i] for i in g) / n] * n
    return statistics.median(per_token)


def decode_step(plan: ProfilePlan, batch: int, context: int) -> tuple[float, float]:
    """One decode repeat: ``batch`` requests of ``context`` prompt tokens at once; the step
    their streams give (ms, :func:`tail_step`, the median over streams) and the mean context
    it decoded at."""
    records = _stream(plan, context, batch, plan.output_tokens)
    steps: list[float] = []
    contexts: list[float] = []
    for r in records:
        if not r.itl:
            continue
        steps.append(tail_step(float(r.ttft), r.itl, r.chunk_tokens))
        made = max(r.output_tokens, len(r.itl) + 1)
        contexts.append(context + 0.75 * made)  # the middle of the last half
    if not steps:
        raise ProfileError(f"decode at batch {batch}: no tokens after the first were streamed")
    return statistics.median(steps) * 1e3, statistics.fmean(contexts)


def measure(plan: ProfilePlan, on_step: Callable[[str], None] = lambda s: None) -> Measured:
    """Run every measurement of ``plan``; ``on_step`` hears of each point as it settles."""
    out = Measured()
    contexts: dict[tuple[int, int], list[float]] = {}

    def decode_once(b: int, s: int) -> float:
        ms, ctx = decode_step(plan, b, s)
        contexts.setdefault((b, s), []).append(ctx)
        return ms

    grid = [(b, s) for b in plan.batches for s in plan.contexts]
    checks = [p for p in dict.fromkeys(plan.checks) if p not in grid]
    label = {p: f"decode batch {p[0]} context {p[1]}" for p in grid + checks}
    decode = _settled(
        plan, {label[p]: partial(decode_once, *p) for p in grid + checks}, out.spread, on_step
    )
    for p in grid + checks:
        ms, reps = decode[label[p]]
        steps, steps_context = (
            (out.decode, out.decode_context) if p in grid else (out.checks, out.checks_context)
        )
        steps[p], steps_context[p] = ms, statistics.fmean(contexts[p])
        out.repeats = max(out.repeats, reps)

    def ttft_once(length: int) -> float:
        """One repeat: the least TTFT of a few requests in a row. A TTFT is one sample where a
        decode repeat has dozens of gaps, and its noise only adds: on vLLM-CPU, requests of one
        length came in two modes about 4 ms apart, so medians of five disagreed by 27 % between
        repeats where the least agreed. The step's cost under load is the calibration's part
        (``virtual.calibrated_table``)."""
        samples = []
        for _ in range(PREFILL_SAMPLES):
            (record,) = _stream(plan, length, 1, 1)
            samples.append(float(record.ttft) * 1e3)
        return min(samples)

    on_step("client overhead")
    # The overhead is what a one-token prompt costs beyond one step: the least of a few tries
    # (a few milliseconds, where one scheduling hiccup of the machine would double a mean).
    tiny = min(ttft_once(1) for _ in range(plan.min_repeats))
    one_step = out.decode.get((min(plan.batches), min(plan.contexts)), 0.0)
    out.overhead_ms = max(0.0, tiny - one_step)
    prefill = _settled(
        plan,
        {f"prefill {n} tokens": partial(ttft_once, n) for n in plan.prompts},
        out.spread,
        on_step,
    )
    for length in plan.prompts:
        ms, reps = prefill[f"prefill {length} tokens"]
        out.prefill[length] = max(0.0, ms - out.overhead_ms)
        out.repeats = max(out.repeats, reps)
    return out


def _line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares ``y = a + b x``."""
    if len(xs) < 2:
        return (ys[0] if ys else 0.0), 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return my - b * mx, b


def _quadratic(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares ``y = a + b x + c x^2`` (a line with fewer than three points)."""
    if len(xs) < 3:
        a, b = _line(xs, ys)
        return a, b, 0.0
    # Normal equations, solved by Cramer's rule (3 x 3).
    s = [sum(x**k for x in xs) for k in range(5)]
    t = [sum(y * x**k for x, y in zip(xs, ys, strict=True)) for k in range(3)]
    m = [[s[0], s[1], s[2]], [s[1], s[2], s[3]], [s[2], s[3], s[4]]]

    def det(a: list[list[float]]) -> float:
        return (
            a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
        )

    d = det(m)
    if d == 0:
        a, b = _line(xs, ys)
        return a, b, 0.0
    coef = []
    for col in range(3):
        mc = [row[:] for row in m]
        for r in range(3):
            mc[r][col] = t[r]
        coef.append(det(mc) / d)
    return coef[0], coef[1], max(0.0, coef[2])


def twin_facts(
    facts: dict[str, Any],
    m: Measured,
    *,
    startup_s: float,
    defaults: dict[str, int],
    refusals: Sequence[dict[str, str]] = (),
) -> dict[str, Any]:
    """The ``twin`` section of a profiled row (``engine/embedded/twin.py`` reads it): what the
    engine reported of itself, what was measured, and what the operator knows of its launch
    (start-up time, the batch limits it picks, the configurations it refuses)."""
    return {
        "kv_tokens": facts["kv_tokens"],
        "kv_bytes": facts.get("kv_bytes"),
        "max_model_len": facts["max_model_len"],
        "vocab": facts["vocab"],
        "startup_s": round(startup_s, 2),
        "request_overhead_ms": round(m.overhead_ms, 3),
        "defaults": {"block_size": facts["block_size"], **defaults},
        "refuses": list(refusals),
    }


def table(
    plan: ProfilePlan,
    m: Measured,
    engine: dict[str, Any] | None = None,
    twin: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The step table of the embedded engine's format, from measurements; with ``twin``
    (:func:`twin_facts`) the embedded engine can serve it as that engine's twin."""
    batches, contexts, prompts = list(plan.batches), list(plan.contexts), list(plan.prompts)
    linear_b: dict[int, float] = {}
    decode_attn: list[list[float]] = []
    for b in batches:
        xs = [m.decode_context[(b, s)] for s in contexts]
        ys = [m.decode[(b, s)] for s in contexts]
        a, _ = _line(xs, ys)
        linear_b[b] = max(0.0, a)
        decode_attn.append([max(0.0, m.decode[(b, s)] - linear_b[b]) for s in contexts])
    qa, qb, qc = _quadratic(prompts, [m.prefill[p] for p in prompts])
    linear_p = {p: max(0.0, qa + qb * p) for p in prompts}
    tokens = sorted(set(batches) | set(prompts))
    linear = [linear_b.get(t, linear_p.get(t, 0.0)) for t in tokens]
    return {
        "provenance": {
            "generator": "scoot engine profile",
            "source": f"measured at {plan.base_url} serving {plan.model}",
            "engine": engine or {},
            "generated": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {platform.node()}",
            "repeats": m.repeats,
            "spread_max_cv": round(max(m.spread, default=0.0), 4),
            "client_overhead_ms": round(m.overhead_ms, 3),
        },
        "axes": {"tokens": tokens, "prompts": prompts, "batches": batches, "contexts": contexts},
        "models": {
            plan.model: [
                {
                    "tp": 1,
                    "linear_ms": [round(v, 4) for v in linear],
                    "prefill_attn_ms": [round(qc * p * p, 4) for p in prompts],
                    "decode_attn_ms": [[round(v, 4) for v in row] for row in decode_attn],
                    **({"twin": twin} if twin is not None else {}),
                    "measured": {
                        "decode_step_ms": {f"{b}x{s}": m.decode[(b, s)] for b, s in m.decode},
                        "decode_context": {
                            f"{b}x{s}": m.decode_context[(b, s)] for b, s in m.decode_context
                        },
                        "prefill_step_ms": {str(p): v for p, v in m.prefill.items()},
                        "checks": {
                            f"{b}x{s}": {"step_ms": ms, "context": m.checks_context[(b, s)]}
                            for (b, s), ms in m.checks.items()
                        },
                    },
                }
            ]
        },
    }
