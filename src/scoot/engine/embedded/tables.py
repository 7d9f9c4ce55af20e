"""Step latency from measured tables (``tables/<gpu>.json``, made by tools/make_step_tables.py).

The tables come from NVIDIA aiconfigurator's database of vLLM kernels measured on each GPU
(shared/docs/embedded-engine-reference.md §2). aiconfigurator prices one mixed iteration as
three passes (``mixed_step_breakdown``), and so does :class:`TablePerf`:

    step = linear(all tokens in the step)
         + sum over prefill chunks of [A(context + chunk) - A(context)]
         + D(decoding sequences, their mean context)

``linear`` covers every non-attention op (GEMMs, norms, LM head, tensor-parallel all-reduces),
``A(L)`` is the causal attention of one whole prompt of ``L`` tokens (so a chunk pays exactly the
attention it adds on top of what it already computed), and ``D(b, s)`` is paged decode attention
of ``b`` sequences at context ``s`` (linear in total context, so the mean prices a mixed batch).
Only the standard library is needed at run time; lookups are piecewise linear, extrapolated
linearly past the last measured point.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from scoot.engine.embedded.perf import EAGER_LAUNCH_MS_PER_LAYER, MemoryFacts, StepShape


def interp(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """Piecewise-linear ``y(x)``; linear extrapolation beyond the ends, 0 below 0."""
    if x <= 0:
        return 0.0
    i = bisect_right(xs, x)
    if i == 0 or len(xs) == 1:  # below the first point (or only one): through the origin
        return ys[0] * x / xs[0]
    if i >= len(xs):
        i = len(xs) - 1
    x0, x1 = xs[i - 1], xs[i]
    y0, y1 = ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


class TablePerf:
    """Step latency of one (GPU, model, tensor-parallel size) from its measured table."""

    def __init__(
        self,
        gpu: str,
        model: str,
        tp: int,
        doc: dict[str, Any],
        row: dict[str, Any],
        layers: int,
        scale: float = 1.0,
    ) -> None:
        self.gpu = gpu
        self.scale = scale
        """Every step's time is multiplied by this: a twin calibrated on a loaded run
        (``twin.py``) runs slower than its idle profile."""
        self.model_name = model
        self.tp = tp
        self.layers = layers
        axes = doc["axes"]
        self._tokens: list[float] = axes["tokens"]
        self._prompts: list[float] = axes["prompts"]
        self._batches: list[float] = axes["batches"]
        self._contexts: list[float] = axes["contexts"]
        self._linear: list[float] = row["linear_ms"]
        self._prefill: list[float] = row["prefill_attn_ms"]
        self._decode: list[list[float]] = row["decode_attn_ms"]
        m = row.get("memory")
        # A profiled table (``scoot engine profile``) has no memory model: its engine reported
        # its KV capacity instead (``twin.py``).
        self.memory: MemoryFacts | None = (
            MemoryFacts(
                float(m["weight_bytes"]),
                float(m["kv_bytes_per_token"]),
                float(m["activation_bytes_per_token"]),
                float(m["nccl_bytes"]),
            )
            if m is not None
            else None
        )
        self.provenance: str = doc["provenance"]["source"]
        self.source_checks: dict[str, float] = row.get("source_checks_ms", {})

    def linear_ms(self, tokens: float) -> float:
        return interp(self._tokens, self._linear, tokens)

    def prefill_attention_ms(self, length: float) -> float:
        return interp(self._prompts, self._prefill, length)

    def decode_attention_ms(self, batch: float, context: float) -> float:
        """Bilinear in (batch, context) over the measured grid."""
        if batch <= 0:
            return 0.0
        bs = self._batches
        if len(bs) == 1:  # one measured batch size: in proportion to the batch
            return interp(self._contexts, self._decode[0], context) * batch / bs[0]
        i = bisect_right(bs, batch)
        i = min(max(i, 1), len(bs) - 1)
        lo = interp(self._contexts, self._decode[i - 1], context)
        hi = interp(self._contexts, self._decode[i], context)
        return lo + (hi - lo) * (batch - bs[i - 1]) / (bs[i] - bs[i - 1])

    def step_ms(self, shape: StepShape) -> float:
        """Milliseconds one iteration of this shape takes (same contract as PerfModel)."""
        n_decode = len(shape.decode_contexts)
        prefill_tokens = 0
        attn = 0.0
        for n, ctx in shape.prefills:
            prefill_tokens += n
            attn += self.prefill_attention_ms(ctx + n) - self.prefill_attention_ms(ctx)
        tokens = prefill_tokens + n_decode
        if tokens == 0:
            return 0.0
        if n_decode:
            attn += self.decode_attention_ms(n_decode, sum(shape.decode_contexts) / n_decode)
        ms = self.linear_ms(tokens) + attn
        if not shape.graphed:
            ms += EAGER_LAUNCH_MS_PER_LAYER * self.layers
        return ms * self.scale


@cache
def _doc(gpu: str) -> dict[str, Any] | None:
    try:
        text = resources.files("scoot.engine.embedded").joinpath(f"tables/{gpu}.json").read_text()
    except FileNotFoundError:
        return None
    doc: dict[str, Any] = json.loads(text)
    return doc


def table_perf(gpu: str, model: str, tp: int, layers: int) -> TablePerf | None:
    """The measured table for this combination, or None where aiconfigurator has none."""
    doc = _doc(gpu)
    if doc is None:
        return None
    for row in doc["models"].get(model, []):
        if row["tp"] == tp:
            return TablePerf(gpu, model, tp, doc, row, layers)
    return None


def tabulated() -> dict[str, dict[str, list[int]]]:
    """What the shipped tables cover: gpu -> model -> TP sizes."""
    out: dict[str, dict[str, list[int]]] = {}
    for gpu in ("h100", "h200", "a100", "l40s"):
        doc = _doc(gpu)
        if doc is not None:
            out[gpu] = {m: [r["tp"] for r in rows] for m, rows in doc["models"].items()}
    return out


def profiled_checks(doc: dict[str, Any], model: str) -> dict[str, tuple[float, float]]:
    """A profiled table's off-grid checks (``scoot engine profile --check``): per point
    ``BxS``, what the table predicts there and what was measured (ms). The prediction is at the
    context the measurement decoded at, so only the table's interpolation is judged."""
    row = doc["models"][model][0]
    perf = TablePerf("profiled", model, 1, doc, row, layers=0)  # every step graphed
    out: dict[str, tuple[float, float]] = {}
    for point, got in row.get("measured", {}).get("checks", {}).items():
        batch = int(point.split("x")[0])
        shape = StepShape([], [round(got["context"])] * batch)
        out[point] = perf.step_ms(shape), float(got["step_ms"])
    return out
