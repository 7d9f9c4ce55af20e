"""Published facts about the GPUs and models the embedded engine can stand in for.

GPU figures are the vendors' datasheet numbers (dense BF16 tensor throughput, HBM capacity as
the CUDA driver reports it, HBM bandwidth, per-direction GPU-to-GPU link bandwidth). Model
figures are from each model's Hugging Face ``config.json``. Nothing here is fitted.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """One GPU type."""

    name: str
    bf16_tflops: float
    memory_gib: float
    hbm_tb_s: float
    link_gb_s: float


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A dense decoder-only transformer, as its ``config.json`` describes it."""

    name: str
    params_b: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    max_position: int

    def kv_bytes_per_token(self, tp: int = 1) -> int:
        """K and V, all layers, BF16, for the KV heads one GPU holds under tensor parallelism."""
        kv_heads = max(1, self.kv_heads // tp)
        return 2 * self.layers * kv_heads * self.head_dim * 2

    def weight_bytes(self, tp: int = 1) -> float:
        """BF16 weights held by one GPU under tensor parallelism."""
        return self.params_b * 1e9 * 2 / tp


GPUS: dict[str, GpuSpec] = {
    g.name: g
    for g in (
        # memory_gib: what torch.cuda.mem_get_info reports (slightly below the marketing size).
        GpuSpec("h100", bf16_tflops=989.0, memory_gib=79.1, hbm_tb_s=3.35, link_gb_s=450.0),
        GpuSpec("h200", bf16_tflops=989.0, memory_gib=139.8, hbm_tb_s=4.8, link_gb_s=450.0),
        GpuSpec("a100", bf16_tflops=312.0, memory_gib=79.2, hbm_tb_s=2.04, link_gb_s=300.0),
        GpuSpec("l40s", bf16_tflops=362.0, memory_gib=44.4, hbm_tb_s=0.864, link_gb_s=32.0),
        GpuSpec("a10", bf16_tflops=125.0, memory_gib=22.1, hbm_tb_s=0.6, link_gb_s=32.0),
    )
}

MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        ModelSpec("llama-3.1-8b", 8.03, 32, 4096, 32, 8, 128, 14336, 128256, 131072),
        ModelSpec("qwen3-8b", 8.19, 36, 4096, 32, 8, 128, 12288, 151936, 40960),
        ModelSpec("qwen3-32b", 32.8, 64, 5120, 64, 8, 128, 25600, 151936, 40960),
        ModelSpec("llama-3.1-70b", 70.6, 80, 8192, 64, 8, 128, 28672, 128256, 131072),
        ModelSpec("qwen3-1.7b", 2.03, 28, 2048, 16, 8, 128, 6144, 151936, 40960),
        ModelSpec("qwen2.5-1.5b", 1.54, 28, 1536, 12, 2, 128, 8960, 151936, 32768),
    )
}

ALIASES = {
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "meta-llama/Llama-3.1-70B-Instruct": "llama-3.1-70b",
    "Qwen/Qwen3-8B": "qwen3-8b",
    "Qwen/Qwen3-32B": "qwen3-32b",
    "Qwen/Qwen2.5-1.5B-Instruct": "qwen2.5-1.5b",
    "Qwen/Qwen3-1.7B": "qwen3-1.7b",
    "meta-llama/Meta-Llama-3.1-8B": "llama-3.1-8b",
    "meta-llama/Meta-Llama-3.1-70B": "llama-3.1-70b",
}


def find_model(name: str) -> ModelSpec | None:
    """Look a model up by short name or Hugging Face id (case-insensitive)."""
    key = ALIASES.get(name, name).lower()
    return MODELS.get(key)
