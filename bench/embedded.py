"""Figures of the embedded engine (issue 3): speed, server cost, the two faces agreeing, realism.

Writes bench/results/embedded.json and prints it as the last line. ``--quick`` runs a smaller
version in under 2 minutes (shorter server runs; grids are read, a sample re-evaluated).

- ``virtual_seconds_per_100s_at_10rps``: wall seconds of one core to simulate a 100 s stress test
  at 10 req/s (Llama-3.1-8B on H100, chatbot trace, vLLM defaults), best of 3.
- ``server_cpu_fraction_at_3000_tok_s``: CPU time of the server process over wall time while
  the streaming client drives it at about 3,000 output tokens/s (``server_output_tok_s``).
- ``server_vs_virtual_{ttft,tpot}_rel_diff``: the same workload through the HTTP server (real
  time) and in virtual time; mean over requests of |server - virtual| / virtual.
- ``table_vs_source_max_rel_err``: the engine's step time vs aiconfigurator's own step
  latencies (decode at batch 1 and 64, prefill of 1,024 tokens) over every shipped table.
- ``ttft_tpot_conflict``: mean TTFT and TPOT at a small and a large token budget (the paper's
  appendix: bigger batches, lower TTFT, higher TPOT).
- ``services`` / ``services_with_20pct_headroom`` and ``headroom``: per service of
  bench/services.toml, how much the grid optimum beats vLLM's default (bench/grids/).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import finish, header, parse_args, start_embedded
from suite import Service, evaluate, gains, headroom, key, load_grid, load_suite

from scoot.engine.embedded.core import EngineArgs
from scoot.engine.embedded.perf import StepShape
from scoot.engine.embedded.tables import table_perf, tabulated
from scoot.stress.arrivals import schedule
from scoot.stress.client import StressPlan, run_stress_sync
from scoot.stress.formats import read_trace
from scoot.stress.metrics import compute
from scoot.stress.traces import heaviest
from scoot.virtual import replay

ROOT = Path(__file__).resolve().parent.parent
BOT = ROOT / "sample_traces" / "bot_azure_conv.jsonl"


def virtual_speed(quick: bool) -> float:
    reqs = read_trace(BOT)
    n = 1000
    picked = [reqs[i % len(reqs)] for i in range(n)]
    offsets = schedule(n, 10.0, seed=0)
    args = EngineArgs(model="llama-3.1-8b", gpu="h100", max_model_len=8192)
    times = []
    for _ in range(1 if quick else 3):
        t0 = time.process_time()
        replay(args, picked, offsets)
        times.append(time.process_time() - t0)
    return min(times)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_run(
    flags: list[str], reqs: list[Any], offsets: list[float], model: str
) -> tuple[Any, float, float]:
    """Run the workload through a real server process; (records, cpu fraction, output tok/s)."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = start_embedded(model, flags, Path(tmp) / "engine.log")
        try:
            cpu0, t0 = _cpu_seconds(engine.proc.pid), time.monotonic()
            result = run_stress_sync(StressPlan(engine.base_url, model, reqs, offsets))
            cpu1, t1 = _cpu_seconds(engine.proc.pid), time.monotonic()
        finally:
            engine.stop(3)
    m = compute(result.records, result.duration)
    return result.records, (cpu1 - cpu0) / (t1 - t0), m.output_throughput


def server_cost(quick: bool) -> dict[str, float]:
    # Qwen3-1.7B on H100 decodes in ~4 ms a step: 10 req/s of 300-token answers is ~3,000 tok/s
    # with about 30 requests in flight.
    from scoot.stress.traces import TraceRequest

    duration = 10 if quick else 30
    rate = 10.0
    n = int(rate * duration)
    reqs = [TraceRequest(200, 300) for _ in range(n)]
    offsets = schedule(n, rate, seed=3)
    _, cpu, tok_s = server_run(
        ["--gpu", "h100", "--max-model-len", "4096"], reqs, offsets, "qwen3-1.7b"
    )
    return {
        "server_cpu_fraction_at_3000_tok_s": round(cpu, 3),
        "server_output_tok_s": round(tok_s),
    }


def faces_agree(quick: bool) -> dict[str, float]:
    pool = heaviest(read_trace(BOT), 0.5)
    n = 30 if quick else 120
    rate = 1.5
    reqs = [pool[i] for i in range(n)]
    offsets = schedule(n, rate, seed=5)
    flags = ["--gpu", "l40s", "--max-model-len", "8192"]
    records, _, _ = server_run(flags, reqs, offsets, "qwen3-8b")
    _, virt = replay(EngineArgs(model="qwen3-8b", gpu="l40s", max_model_len=8192), reqs, offsets)
    dt, dp, signed = [], [], []
    for s, v in zip(records, virt, strict=True):
        if not (s.success and v.success):
            continue
        dt.append(abs(s.ttft - v.ttft) / v.ttft)
        signed.append((s.ttft - v.ttft) * 1e3)
        if s.output_tokens > 1 and v.output_tokens > 1:
            ts = (s.latency - s.ttft) / (s.output_tokens - 1)
            tv = (v.latency - v.ttft) / (v.output_tokens - 1)
            dp.append(abs(ts - tv) / tv)
    return {
        "server_vs_virtual_ttft_rel_diff": round(statistics.fmean(dt), 4),
        "server_vs_virtual_tpot_rel_diff": round(statistics.fmean(dp), 4),
        "server_vs_virtual_ttft_median_rel_diff": round(statistics.median(dt), 4),
        "server_minus_virtual_ttft_median_ms": round(statistics.median(signed), 2),
        "server_vs_virtual_requests": len(dt),
    }


def table_errors() -> float:
    worst = 0.0
    for gpu, models in tabulated().items():
        for model, tps in models.items():
            for tp in tps:
                perf = table_perf(gpu, model, tp, 1)
                assert perf is not None
                ours = {
                    "decode_step_ms_b1_s1024": perf.step_ms(StepShape([], [1024])),
                    "decode_step_ms_b64_s1024": perf.step_ms(StepShape([], [1024] * 64)),
                    "prefill_ms_1x1024": perf.step_ms(StepShape([(1024, 0)], [])),
                }
                for k, v in ours.items():
                    ref = perf.source_checks[k]
                    worst = max(worst, abs(v - ref) / ref)
    return round(worst, 4)


def conflict() -> dict[str, dict[str, float]]:
    s = next(x for x in load_suite() if x.name == "h100-llama31_8b-sql")
    out = {}
    for budget in (1024, 16384):
        r = evaluate(s, {"max_num_batched_tokens": budget, "max_num_seqs": 256})
        out[f"max_num_batched_tokens={budget}"] = {
            "mean_ttft_ms": round(r["mean_ttft_ms"], 1),
            "mean_tpot_ms": round(r["mean_tpot_ms"], 2),
        }
    return out


def services(quick: bool) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    reproduced = checked = 0
    rng = random.Random(0)
    for s in load_suite():
        grid = load_grid(s)
        if grid is None:
            rows[s.name] = {"missing_grid": True}
            continue
        default = grid[key(s.default_config())]
        h = headroom(s, default, list(grid.values()))
        feasible = sum(1 for r in grid.values() if r["ok"])
        rows[s.name] = {
            "objectives": [o.value for o in s.objectives],
            "headroom": round(h, 3),
            "gain_per_objective": [
                round(g, 3) for g in gains(s, default, [r for r in grid.values() if r["ok"]])
            ],
            "grid_points": len(grid),
            "feasible": feasible,
            "best": _best(s, grid),
        }
        for k in rng.sample(sorted(grid), 2 if quick else 5):
            checked += 1
            reproduced += evaluate(s, json.loads(k)) == grid[k]
    return {"rows": rows, "grid_points_reproduced": f"{reproduced}/{checked}"}


def _best(s: Service, grid: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    if len(s.objectives) != 1:
        return None
    o = s.objectives[0]
    ok = [(k, r) for k, r in grid.items() if r["ok"]]
    k, r = (max if o.maximize else min)(ok, key=lambda kr: kr[1][o.metric])
    return {"config": json.loads(k), o.metric: round(r[o.metric], 2)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)
    t0 = time.perf_counter()
    out: dict[str, Any] = {
        **header(args.quick),
        "virtual_seconds_per_100s_at_10rps": round(virtual_speed(args.quick), 3),
    }
    out.update(server_cost(args.quick))
    out.update(faces_agree(args.quick))
    out["table_vs_source_max_rel_err"] = table_errors()
    out["ttft_tpot_conflict"] = conflict()
    svc = services(args.quick)
    out["services"] = len(svc["rows"])
    out["services_with_20pct_headroom"] = sum(
        1 for r in svc["rows"].values() if r.get("headroom", 0) >= 0.2
    )
    out["grid_points_reproduced"] = svc["grid_points_reproduced"]
    out["headroom"] = svc["rows"]
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return finish("embedded", out)


if __name__ == "__main__":
    raise SystemExit(main())
