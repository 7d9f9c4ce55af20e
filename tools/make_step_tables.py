"""Generate the embedded engine's step-latency tables from NVIDIA aiconfigurator's measured data.

Runs in its own virtual environment (``make tables``): ``aiconfigurator-core==0.12.0`` needs
numpy>=2.1 while SCOOT's optimizer (HEBO 0.3.6) needs numpy<1.25. The output is plain JSON, one
file per GPU in ``src/scoot/engine/embedded/tables/``, read at run time with the standard library.

One engine iteration of vLLM on a GPU is decomposed the way aiconfigurator composes its own
mixed step (``EngineHandle.mixed_step_breakdown``: shared non-attention ops, context attention,
decode attention), so the embedded scheduler can price any batch it forms:

- ``linear_ms[t]``: every non-attention op (QKV/O/MLP GEMMs, norms, all-reduces under tensor
  parallelism, LM head, embedding) for ``t`` tokens in the step, prefill and decode together;
- ``prefill_attn_ms[L]``: the attention of one whole prompt of ``L`` tokens (causal, no cached
  prefix). A chunk of ``n`` tokens after ``c`` computed ones costs ``A(c + n) - A(c)``;
- ``decode_attn_ms[b][s]``: paged decode attention for ``b`` sequences at context ``s``.

Each axis is smoothed to be non-decreasing (pool-adjacent-violators), because a few neighbouring
cells of the measured database are non-monotone interpolation artefacts (reference notes §2.5).

Memory facts come from aiconfigurator's vLLM memory model (``KVCacheEstimator.from_request``):
weight bytes per GPU, KV bytes per token, activation bytes per scheduled token, NCCL buffers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from importlib import metadata
from pathlib import Path

# gpu name in SCOOT -> aiconfigurator system
SYSTEMS = {"h100": "h100_sxm", "h200": "h200_sxm", "a100": "a100_sxm", "l40s": "l40s"}
# model name in SCOOT -> aiconfigurator model path (config bundled in the wheel)
MODELS = {
    "qwen3-1.7b": "Qwen/Qwen3-1.7B",
    "llama-3.1-8b": "meta-llama/Meta-Llama-3.1-8B",
    "qwen3-8b": "Qwen/Qwen3-8B",
    "qwen3-32b": "Qwen/Qwen3-32B",
    "llama-3.1-70b": "meta-llama/Meta-Llama-3.1-70B",
}
HEADS = {
    "qwen3-1.7b": 16,
    "llama-3.1-8b": 32,
    "qwen3-8b": 32,
    "qwen3-32b": 64,
    "llama-3.1-70b": 64,
}
TP_SIZES = (1, 2, 4, 8)

TOKENS = [1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072]
TOKENS += [4096, 6144, 8192, 12288, 16384, 24576, 32768, 49152, 65536]
PROMPTS = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072]
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
CONTEXTS = [16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072]


def isotonic(values: list[float]) -> list[float]:
    """Least-squares non-decreasing fit (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [sum, count]
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
    out: list[float] = []
    for s, c in blocks:
        out.extend([s / c] * int(c))
    return out


def table_for(system: str, model_path: str, tp: int) -> dict[str, object]:
    from aiconfigurator_core.sdk.engine import EngineHandle
    from aiconfigurator_core.sdk.memory import KVCacheEstimator

    h = EngineHandle.compile(model_path, system, "vllm", tp_size=tp)
    linear = [h.mixed_step_breakdown(t, 0, t, 2)[1] for t in TOKENS]
    prefill = [h.mixed_step_breakdown(n, 0, n, 2)[2] for n in PROMPTS]
    # decode_step_latency prices context s = isl + osl // 2 + 1; osl = 2 makes it isl + 2.
    decode = [
        isotonic([h.mixed_step_breakdown(0, b, max(1, s - 2), 2)[3] for s in CONTEXTS])
        for b in BATCHES
    ]
    # Smooth along the batch axis too, column by column.
    for j in range(len(CONTEXTS)):
        col = isotonic([decode[i][j] for i in range(len(BATCHES))])
        for i, v in enumerate(col):
            decode[i][j] = v
    mem = KVCacheEstimator.from_request(
        model_path,
        system,
        "vllm",
        "current",
        max_num_tokens=8192,
        max_batch_size=256,
        tp_size=tp,
    ).breakdown
    checks = {
        "decode_step_ms_b1_s1024": h.decode_step_latency(1, 1022, 2),
        "decode_step_ms_b64_s1024": h.decode_step_latency(64, 1022, 2),
        "prefill_ms_1x1024": h.predict_prefill_latency(1, 1024, 0),
    }
    return {
        "tp": tp,
        "linear_ms": [round(v, 5) for v in isotonic(linear)],
        "prefill_attn_ms": [round(v, 5) for v in isotonic(prefill)],
        "decode_attn_ms": [[round(v, 5) for v in row] for row in decode],
        "memory": {
            "weight_bytes": mem["weights_bytes"],
            "kv_bytes_per_token": mem["kv_size_per_token_bytes"],
            "activation_bytes_per_token": mem["activations_bytes"] / 8192,
            "nccl_bytes": mem["comm_overhead_bytes"],
        },
        "source_checks_ms": {k: round(v, 4) for k, v in checks.items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("src/scoot/engine/embedded/tables"))
    args = p.parse_args(argv)
    logging.disable(logging.WARNING)
    version = metadata.version("aiconfigurator-core")
    args.out.mkdir(parents=True, exist_ok=True)
    import yaml  # aiconfigurator-core depends on it
    from aiconfigurator_core.sdk import perf_database

    for gpu, system in SYSTEMS.items():
        db = perf_database.get_database(system, "vllm", "current")
        spec = db.system_spec
        capacity = float(spec["gpu"]["mem_capacity"])
        versions = yaml.safe_load(
            (
                Path(perf_database.__file__).parent.parent / "systems" / "query_versions.yaml"
            ).read_text()
        )
        vllm_version = (
            versions["overrides"]
            .get(system, {})
            .get("vllm", {})
            .get("current", versions["defaults"]["vllm"]["current"])
        )
        models: dict[str, list[dict[str, object]]] = {}
        for name, path in MODELS.items():
            rows = []
            for tp in TP_SIZES:
                if HEADS[name] % tp:
                    continue
                t = table_for(system, path, tp)
                weights = t["memory"]["weight_bytes"]  # type: ignore[index]
                if weights > 0.95 * capacity:
                    continue  # cannot even load: vLLM's own OOM covers it without a table
                rows.append(t)
            models[name] = rows
            print(f"{gpu} {name}: tp {[r['tp'] for r in rows]}", file=sys.stderr)
        doc = {
            "provenance": {
                "generator": "tools/make_step_tables.py",
                "source": f"aiconfigurator-core=={version} (Apache-2.0), system {system}, "
                f"backend vllm {vllm_version}, measured kernel database",
                "generated": dt.date.today().isoformat(),
                "gpu_memory_capacity_bytes": capacity,
                "mem_bw_bytes_s": float(spec["gpu"]["mem_bw"]),
            },
            "axes": {
                "tokens": TOKENS,
                "prompts": PROMPTS,
                "batches": BATCHES,
                "contexts": CONTEXTS,
            },
            "models": models,
        }
        path = args.out / f"{gpu}.json"
        path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
