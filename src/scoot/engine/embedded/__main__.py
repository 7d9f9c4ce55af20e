"""``scoot-engine serve MODEL [vLLM flags]``: start the embedded engine as its own process.

It behaves like ``vllm serve`` from the outside: the same flags, a start-up of a few seconds
before the port opens, vLLM's error messages and a non-zero exit where vLLM refuses a
configuration, and an OpenAI-compatible API once ready.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence

from scoot.engine.embedded.core import BLOCK_SIZES, EngineArgs, EngineStartupError, Scheduler
from scoot.engine.embedded.hardware import GIB
from scoot.engine.embedded.twin import TwinFacts

log = logging.getLogger("scoot.engine")


def build_parser() -> argparse.ArgumentParser:
    """The engine's argument parser; flag names and choices follow ``vllm serve``."""
    p = argparse.ArgumentParser(prog="scoot-engine serve", description=__doc__)
    p.add_argument("model_tag", nargs="?", help="model name (as vllm serve's positional)")
    p.add_argument("--model", dest="model_opt")
    p.add_argument("--served-model-name")
    p.add_argument("--gpu", default="h100", help="GPU type to stand in for (h100, a100, ...)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--startup-seconds",
        type=float,
        default=None,
        help="time to become ready (env SCOOT_ENGINE_STARTUP_S; default 3, or the profiled "
        "engine's with --table)",
    )
    p.add_argument(
        "--table",
        default="",
        help="a step table made by `scoot engine profile`: serve as that engine's twin",
    )
    p.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
    p.add_argument("--max-num-seqs", type=int)
    p.add_argument("--max-num-batched-tokens", type=int)
    p.add_argument("--max-model-len", type=int)
    # No argparse choices: a twin takes what its engine's parser takes (its refusals come at
    # start-up); the GPU engine checks vLLM's CUDA choices with vLLM's wording in the core.
    p.add_argument("--block-size", type=int, help=f"16 by default; on a GPU one of {BLOCK_SIZES}")
    p.add_argument("--enable-chunked-prefill", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.92)
    p.add_argument("--scheduling-policy", choices=("fcfs", "priority"), default="fcfs")
    p.add_argument("--long-prefill-token-threshold", type=int, default=0)
    p.add_argument("--max-num-active-seqs", type=int)
    p.add_argument("--enforce-eager", action="store_true")
    p.add_argument("--max-cudagraph-capture-size", type=int)
    p.add_argument(
        "--timing",
        choices=("auto", "table", "roofline"),
        default="auto",
        help="step latency: measured tables where shipped (auto), tables only, or roofline",
    )
    p.add_argument("--dtype", default="auto", help="accepted for compatibility (BF16 modelled)")
    p.add_argument("--log-level", default="info")
    return p


def _gpus_available() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None or not visible.strip():
        return 1 if visible is None else 0
    return len([g for g in visible.split(",") if g.strip()])


def _startup_seconds(given: float | None, twin: TwinFacts | None) -> float:
    """The flag, else SCOOT_ENGINE_STARTUP_S (tests shorten start-ups with it), else the
    profiled engine's measured start-up, else 3 s."""
    if given is not None:
        return given
    env = os.environ.get("SCOOT_ENGINE_STARTUP_S")
    if env:
        return float(env)
    return twin.startup_s if twin is not None else 3.0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "serve":
        argv = argv[1:]
    ns = build_parser().parse_args(argv)
    logging.basicConfig(
        level=ns.log_level.upper(),
        format="%(levelname)s %(asctime)s %(message)s",
        datefmt="%m-%d %H:%M:%S",
        stream=sys.stdout,
    )
    model = ns.model_opt or ns.model_tag or "llama-3.1-8b"
    args = EngineArgs(
        model=model,
        gpu=ns.gpu,
        gpus_available=_gpus_available(),
        tensor_parallel_size=ns.tensor_parallel_size,
        max_num_seqs=ns.max_num_seqs,
        max_num_batched_tokens=ns.max_num_batched_tokens,
        max_model_len=ns.max_model_len,
        block_size=ns.block_size,
        enable_chunked_prefill=ns.enable_chunked_prefill,
        enable_prefix_caching=ns.enable_prefix_caching,
        gpu_memory_utilization=ns.gpu_memory_utilization,
        scheduling_policy=ns.scheduling_policy,
        long_prefill_token_threshold=ns.long_prefill_token_threshold,
        enforce_eager=ns.enforce_eager,
        max_cudagraph_capture_size=ns.max_cudagraph_capture_size,
        max_num_active_seqs=ns.max_num_active_seqs,
        timing=ns.timing,
        table=ns.table,
    )
    log.info("vLLM-compatible embedded engine; non-default args: %s", " ".join(argv))
    t0 = time.monotonic()
    try:
        resolved = args.resolved()
        startup_s = _startup_seconds(ns.startup_seconds, resolved.twin)
        # Weights load before memory profiling, so memory errors come after part of start-up.
        time.sleep(startup_s * 0.5)
        log.info("Loading weights took %.2f seconds", startup_s * 0.5)
        plan = resolved.plan()
    except EngineStartupError as exc:
        log.error("EngineCore failed to start.")
        print(str(exc), file=sys.stdout, flush=True)
        return 1
    log.info(
        "Memory profiling: weights %.2f GiB, activation peak %.2f GiB, CUDA graphs %.2f GiB, "
        "non-torch %.2f GiB; KV cache %.2f GiB",
        plan.weights / GIB,
        plan.activations / GIB,
        plan.cuda_graphs / GIB,
        plan.non_torch / GIB,
        plan.kv_cache / GIB,
    )
    log.info("Step latency: %s", resolved.perf.provenance)
    log.info("# GPU blocks: %d", plan.num_blocks)
    log.info(
        "Maximum concurrency for %d tokens per request: %.2fx",
        resolved.max_model_len,
        plan.kv_tokens / resolved.max_model_len,
    )
    time.sleep(max(0.0, startup_s - (time.monotonic() - t0)))
    from aiohttp import web

    from scoot.engine.embedded.server import EngineServer

    sched = Scheduler(resolved, plan)
    server = EngineServer(sched, ns.served_model_name or model, resolved.model_spec.vocab)

    async def serve() -> None:
        runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, ns.host, ns.port, reuse_address=True)
        await site.start()
        log.info("Starting vLLM API server on http://%s:%d", ns.host, ns.port)
        log.info("Application startup complete.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("Shutting down")
        await runner.cleanup()

    try:
        asyncio.run(serve())
    except OSError as exc:
        print(f"OSError: [Errno {exc.errno}] {exc.strerror}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
