"""Time one engine step's parts in plain PyTorch on a GPU and compare with a shipped step table.

Issue 15, item 7: on a machine with a GPU and PyTorch but no vLLM, this times

- the *linear* part of one step of Llama-3.1-8B or Qwen3-8B (every layer's QKV, output, gate/up
  and down GEMMs, plus the LM head, in bf16) at the token counts of the table's ``tokens`` axis,
  against the table's ``linear_ms``;
- a paged-style decode attention (KV gathered through a block table, then one query per
  sequence attends to its context) at the table's ``batches`` x ``contexts`` grid (capped by
  memory), against ``decode_attn_ms``.

It writes one JSON file (``-o``, default ``bench/results/gpu_step_check.json``) with every
timing, the table's value beside it, the relative errors and their medians
(``h200_linear_rel_err``, ``h200_decode_attn_rel_err``). Nothing but torch is needed.

    python tools/gpu_step_check.py --table src/scoot/engine/embedded/tables/h200.json
    python tools/gpu_step_check.py --device cpu --quick        # a dry run of the script itself

Norms, rotary embeddings and the all-reduce are left out (they are a few percent of a step at
TP 1); so is the CUDA-graph capture vLLM uses for small decode batches: expect the table to be a
little above these timings at 1-16 tokens.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# (hidden, intermediate, layers, heads, kv heads, head dim, vocab): the models' config.json.
MODELS = {
    "llama-3.1-8b": (4096, 14336, 32, 32, 8, 128, 128256),
    "qwen3-8b": (4096, 12288, 36, 32, 8, 128, 151936),
}
BLOCK = 16  # KV-cache block size of the paged layout


def timed(fn: Any, torch: Any, device: str, repeats: int) -> float:
    """Median milliseconds of ``fn()`` over ``repeats`` runs, after two warm-ups."""
    for _ in range(2):
        fn()
    samples = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def linear_step(torch: Any, dims: tuple[int, ...], tokens: int, device: str, dtype: Any) -> Any:
    hidden, inter, layers, heads, kv_heads, head_dim, vocab = dims
    qkv = torch.randn(hidden, (heads + 2 * kv_heads) * head_dim, device=device, dtype=dtype)
    out = torch.randn(heads * head_dim, hidden, device=device, dtype=dtype)
    gate_up = torch.randn(hidden, 2 * inter, device=device, dtype=dtype)
    down = torch.randn(inter, hidden, device=device, dtype=dtype)
    head = torch.randn(hidden, vocab, device=device, dtype=dtype)
    x = torch.randn(tokens, hidden, device=device, dtype=dtype)

    def step() -> None:
        h = x
        for _ in range(layers):  # the same weights each layer: the shapes are what cost
            q = h @ qkv
            h = q[:, : heads * head_dim] @ out
            g = h @ gate_up
            h = torch.nn.functional.silu(g[:, :inter]) * g[:, inter:] @ down
        (h[-1:] @ head).float()  # the LM head runs on the last token of each sequence

    return step


def decode_attention(
    torch: Any, dims: tuple[int, ...], batch: int, context: int, device: str, dtype: Any
) -> Any:
    _, _, layers, heads, kv_heads, head_dim, _ = dims
    blocks_per_seq = -(-context // BLOCK)
    cache_k = torch.randn(
        batch * blocks_per_seq, BLOCK, kv_heads, head_dim, device=device, dtype=dtype
    )
    cache_v = torch.randn_like(cache_k)
    table = torch.randperm(batch * blocks_per_seq, device=device).view(batch, blocks_per_seq)
    q = torch.randn(batch, heads, 1, head_dim, device=device, dtype=dtype)
    group = heads // kv_heads

    def step() -> None:
        for _ in range(layers):
            k = cache_k[table].reshape(batch, -1, kv_heads, head_dim)[:, :context]
            v = cache_v[table].reshape(batch, -1, kv_heads, head_dim)[:, :context]
            k = k.transpose(1, 2).repeat_interleave(group, dim=1)
            v = v.transpose(1, 2).repeat_interleave(group, dim=1)
            torch.nn.functional.scaled_dot_product_attention(q, k, v)

    return step


def rel(measured: float, table: float) -> float:
    return (table - measured) / measured if measured > 0 else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default=str(ROOT / "src/scoot/engine/embedded/tables/h200.json"))
    p.add_argument("--model", default="llama-3.1-8b", choices=sorted(MODELS))
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="a few points, tiny dims on CPU")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--max-kv-gib", type=float, default=40.0, help="skip larger decode points")
    p.add_argument("-o", "--output", default=str(ROOT / "bench/results/gpu_step_check.json"))
    ns = p.parse_args(argv)

    import torch

    doc = json.loads(Path(ns.table).read_text())
    row = next(r for r in doc["models"][ns.model] if r["tp"] == 1)
    axes = doc["axes"]
    dims = MODELS[ns.model]
    dtype = torch.bfloat16
    tokens_axis, batches, contexts = axes["tokens"], axes["batches"], axes["contexts"]
    repeats = ns.repeats
    if ns.quick:  # the script's own check, not a measurement
        dims = (256, 512, 2, 4, 2, 64, 1000)
        tokens_axis, batches, contexts, repeats = [1, 16], [1, 4], [16, 64], 2
        dtype = torch.float32
    out: dict[str, Any] = {
        "table": ns.table,
        "model": ns.model,
        "device": torch.cuda.get_device_name(0) if ns.device.startswith("cuda") else ns.device,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "quick": ns.quick,
        "linear": [],
        "decode_attention": [],
    }
    for i, tokens in enumerate(axes["tokens"]):
        if tokens not in tokens_axis:
            continue
        ms = timed(linear_step(torch, dims, tokens, ns.device, dtype), torch, ns.device, repeats)
        table = row["linear_ms"][i]
        out["linear"].append({"tokens": tokens, "measured_ms": ms, "table_ms": table})
        out["linear"][-1]["rel_err"] = rel(ms, table)
    for bi, batch in enumerate(axes["batches"]):
        for ci, context in enumerate(axes["contexts"]):
            if batch not in batches or context not in contexts:
                continue
            kv = 2 * batch * context * dims[4] * dims[5] * 2 / 2**30
            if kv > ns.max_kv_gib:
                continue
            step = decode_attention(torch, dims, batch, context, ns.device, dtype)
            ms = timed(step, torch, ns.device, repeats)
            table = row["decode_attn_ms"][bi][ci]
            out["decode_attention"].append(
                {"batch": batch, "context": context, "measured_ms": ms, "table_ms": table}
            )
            out["decode_attention"][-1]["rel_err"] = rel(ms, table)
    for key, name in (
        ("linear", "h200_linear_rel_err"),
        ("decode_attention", "h200_decode_attn_rel_err"),
    ):
        errs = [abs(r["rel_err"]) for r in out[key]]
        out[name] = round(statistics.median(errs), 4) if errs else None
    Path(ns.output).parent.mkdir(parents=True, exist_ok=True)
    Path(ns.output).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if not isinstance(v, list)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
