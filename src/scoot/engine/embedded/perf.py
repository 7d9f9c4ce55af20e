"""How long one engine iteration takes, and how vLLM splits GPU memory at start-up.

Step time is a roofline over the work of one iteration: the linear layers read every weight
once per step (so decode is bandwidth-bound and batching is nearly free until the GEMMs turn
compute-bound), attention reads each sequence's KV cache, tensor parallelism divides both and
adds two all-reduces per layer, and each step pays a host-side cost that grows with the number
of scheduled sequences. Cross-checked against the measured aiconfigurator figures in
shared/docs/embedded-engine-reference.md §2.4 (Qwen3-32B TP2 on H100: decode 13.4 ms at batch 1
and 32.2 ms at batch 256, prefill of 1,024 tokens 55.5 ms); tests/unit/engine pins those.

The memory plan follows vLLM's start-up arithmetic (``gpu_worker.determine_available_memory``):
the KV cache gets ``gpu_memory_utilization`` x total memory minus weights, the activation peak of
a profiling forward pass over ``max_num_batched_tokens`` tokens (plus the sampler's logits for
``max_num_seqs`` rows), CUDA-graph memory, and non-torch allocations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scoot.engine.embedded.hardware import GIB, GpuSpec, ModelSpec

# Fractions of peak that well-tuned kernels reach: GEMMs ~60% of dense BF16 peak at serving
# shapes, streaming reads ~80% of HBM bandwidth, FlashAttention prefill ~50% of peak.
GEMM_EFFICIENCY = 0.6
HBM_EFFICIENCY = 0.8
ATTENTION_EFFICIENCY = 0.5
# Host side of one iteration: scheduler + input preparation + sampling, in milliseconds.
STEP_OVERHEAD_MS = 0.4
PER_SEQ_OVERHEAD_MS = 0.004
# Without CUDA graphs every kernel is launched from Python: ~10 launches per layer at ~4 us.
EAGER_LAUNCH_MS_PER_LAYER = 0.04
# Collective latency per all-reduce on NVLink-class links.
ALLREDUCE_LATENCY_MS = 0.008


@dataclass(frozen=True, slots=True)
class StepShape:
    """What one iteration computes: prefill chunks as (new tokens, context before them), and the
    context lengths of the decoding sequences."""

    prefills: Sequence[tuple[int, int]]
    decode_contexts: Sequence[int]
    graphed: bool = True


@dataclass(frozen=True, slots=True)
class MemoryFacts:
    """aiconfigurator's vLLM memory model for one (GPU, model, TP), per GPU."""

    weight_bytes: float
    kv_bytes_per_token: float
    activation_bytes_per_token: float
    nccl_bytes: float


class PerfModel:
    """Step latency of one (GPU, model, tensor-parallel size)."""

    provenance = "roofline model (no measured table for this GPU, model and TP)"
    memory: MemoryFacts | None = None  # memory then comes from the model's config.json

    def __init__(self, gpu: GpuSpec, model: ModelSpec, tp: int = 1) -> None:
        self.gpu = gpu
        self.model = model
        self.tp = tp
        m = model
        self._linear_params = m.params_b * 1e9 - m.vocab * m.hidden  # embedding is a lookup
        self._flops = gpu.bf16_tflops * 1e12
        self._bw = gpu.hbm_tb_s * 1e12
        self._kv_token = m.kv_bytes_per_token(tp)
        self._weights = m.weight_bytes(tp)
        # Attention FLOPs per (query token x context token): QK^T and AV, all layers and heads.
        self._attn_flops = 4.0 * m.layers * m.heads * m.head_dim / tp

    def step_ms(self, shape: StepShape) -> float:
        """Milliseconds one iteration of this shape takes on the GPU, host overhead included."""
        prefill_tokens = sum(n for n, _ in shape.prefills)
        n_decode = len(shape.decode_contexts)
        tokens = prefill_tokens + n_decode
        if tokens == 0:
            return 0.0
        # Rows that go through the LM head: every decode, and each prefill chunk's last token.
        n_logits = n_decode + len(shape.prefills)
        linear_flops = 2.0 * (self._linear_params * tokens) / self.tp
        linear_flops += 2.0 * self.model.vocab * self.model.hidden * n_logits / self.tp
        linear_s = max(
            linear_flops / (self._flops * GEMM_EFFICIENCY),
            self._weights / (self._bw * HBM_EFFICIENCY),
        )
        decode_ctx = float(sum(shape.decode_contexts))
        prefill_pairs = sum(n * (ctx + n / 2.0) for n, ctx in shape.prefills)
        prefill_ctx = sum(ctx + n for n, ctx in shape.prefills)
        attn_flops = self._attn_flops * (decode_ctx + prefill_pairs)
        attn_bytes = self._kv_token * (decode_ctx + prefill_ctx)
        attn_s = max(
            attn_flops / (self._flops * ATTENTION_EFFICIENCY),
            attn_bytes / (self._bw * HBM_EFFICIENCY),
        )
        comm_s = 0.0
        if self.tp > 1:
            payload = tokens * self.model.hidden * 2 * 2.0 * (self.tp - 1) / self.tp
            comm_s = (
                2
                * self.model.layers
                * (payload / (self.gpu.link_gb_s * 1e9) + ALLREDUCE_LATENCY_MS / 1e3)
            )
        host_ms = STEP_OVERHEAD_MS + PER_SEQ_OVERHEAD_MS * (n_decode + len(shape.prefills))
        if not shape.graphed:
            host_ms += EAGER_LAUNCH_MS_PER_LAYER * self.model.layers
        return (linear_s + attn_s + comm_s) * 1e3 + host_ms


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """vLLM's start-up memory split for one GPU, in bytes."""

    total: float
    requested: float
    weights: float
    activations: float
    cuda_graphs: float
    non_torch: float
    kv_cache: float
    num_blocks: int
    block_size: int
    kv_bytes_per_token: float

    @property
    def kv_tokens(self) -> int:
        """Tokens the KV cache holds."""
        return self.num_blocks * self.block_size


def cudagraph_capture_sizes(max_num_seqs: int, max_capture: int | None) -> list[int]:
    """Batch sizes vLLM captures graphs for: 1, 2, 4, then multiples of 8 (V1 default list),
    up to ``max_cudagraph_capture_size`` (default min(512, 2 x max_num_seqs))."""
    limit = max_capture if max_capture is not None else min(512, 2 * max_num_seqs)
    sizes = [1, 2, 4, *range(8, 256, 8), *range(256, limit + 1, 16)]
    return [s for s in sizes if s <= limit]


def plan_memory(
    gpu: GpuSpec,
    model: ModelSpec,
    *,
    tp: int,
    gpu_memory_utilization: float,
    max_num_batched_tokens: int,
    max_num_seqs: int,
    block_size: int,
    enforce_eager: bool,
    max_cudagraph_capture_size: int | None = None,
    facts: MemoryFacts | None = None,
) -> MemoryPlan:
    """Split one GPU's memory the way vLLM's profiling run does.

    ``facts`` (aiconfigurator's vLLM memory model, shipped with the step tables) supplies the
    weight bytes, KV bytes per token, activation bytes per token and NCCL buffers where a table
    exists; otherwise they come from the model's config.json.
    """
    total = gpu.memory_gib * GIB
    requested = gpu_memory_utilization * total
    weights = facts.weight_bytes if facts else model.weight_bytes(tp)
    # Profiling forward over max_num_batched_tokens tokens: the MLP's gate/up output and the
    # attention block's QKV and output buffers dominate, BF16.
    per_token = (
        facts.activation_bytes_per_token
        if facts
        else (2 * model.intermediate / tp + 4 * model.hidden) * 2
    )
    activations = max_num_batched_tokens * per_token
    # The sampler's dummy run holds FP32 logits (and a softmax copy) for max_num_seqs rows.
    activations += max_num_seqs * model.vocab / tp * 4 * 2
    cuda_graphs = 0.0
    if not enforce_eager:
        sizes = cudagraph_capture_sizes(max_num_seqs, max_cudagraph_capture_size)
        # Each captured size keeps its intermediate buffers in the shared graph pool; the pool
        # grows with the largest size, plus a small fixed cost per graph.
        cuda_graphs = len(sizes) * 2.0e6 + max(sizes, default=0) * per_token * 1.5
    # CUDA context and cuBLAS workspaces, plus NCCL buffers under tensor parallelism.
    nccl = facts.nccl_bytes if facts else (0.25 * GIB if tp > 1 else 0.0)
    non_torch = 0.35 * GIB + nccl
    kv = requested - weights - activations - cuda_graphs - non_torch
    kv_token = facts.kv_bytes_per_token if facts else model.kv_bytes_per_token(tp)
    per_block = kv_token * block_size
    num_blocks = max(0, math.floor(kv / per_block)) if kv > 0 else 0
    return MemoryPlan(
        total=total,
        requested=requested,
        weights=weights,
        activations=activations,
        cuda_graphs=cuda_graphs,
        non_torch=non_torch,
        kv_cache=kv,
        num_blocks=num_blocks,
        block_size=block_size,
        kv_bytes_per_token=kv_token,
    )
