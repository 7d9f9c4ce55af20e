"""The capacity search against dense sweeps (issue 17), in virtual time.

Writes bench/results/capacity.json and prints it as its last line. For each config of a small
set (GPUs, models, batch limits), the highest rate meeting the SLO at 99 % attainment is found
twice on the embedded engine in virtual time (one arrival draw compressed for every rate, as
on one engine launch):

- by ``find_capacity`` as a study runs it: from the study's rate, at most 5 steps (the
  default of ``[capacity] max_steps``), and at most 7;
- by a dense sweep of 20 rates over +-30 % of a precise search's answer (resolution 3 %).

Figures: ``capacity_vs_dense_sweep_rel_err`` (mean and max of |search - sweep| / sweep; target
<= 0.05), ``rate_steps_per_trial_mean`` (target <= 5) and each config's figures.
``--quick``: two configs.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from benchlib import finish, header, parse_args

from scoot.engine.embedded.core import EngineArgs
from scoot.stress.arrivals import schedule
from scoot.stress.capacity import find_capacity
from scoot.stress.metrics import attainment
from scoot.stress.traces import TraceRequest
from scoot.virtual import replay

SLOS = {"ttft": 500.0, "tpot": 60.0}
TARGET = 0.99
CONFIGS: list[tuple[str, dict[str, Any], float]] = [
    # (name, engine args, the study's first rate)
    ("l40s-llama8b-seqs32", {"gpu": "l40s", "model": "llama-3.1-8b", "max_num_seqs": 32}, 4.0),
    ("l40s-llama8b-default", {"gpu": "l40s", "model": "llama-3.1-8b"}, 4.0),
    ("h100-qwen8b-default", {"gpu": "h100", "model": "qwen3-8b"}, 8.0),
    (
        "h100-qwen8b-mnbt1024",
        {"gpu": "h100", "model": "qwen3-8b", "max_num_batched_tokens": 1024},
        8.0,
    ),
    ("a100-qwen8b-seqs64", {"gpu": "a100", "model": "qwen3-8b", "max_num_seqs": 64}, 2.0),
    ("h200-qwen32b-default", {"gpu": "h200", "model": "qwen3-32b"}, 4.0),
]


def workload() -> tuple[list[TraceRequest], list[float]]:
    rng = np.random.default_rng(7)
    reqs = [
        TraceRequest(int(rng.integers(200, 1200)), int(rng.integers(32, 160))) for _ in range(300)
    ]
    return reqs, schedule(len(reqs), 1.0, seed=3)


def measure(name: str, kw: dict[str, Any], first: float) -> dict[str, Any]:
    args = EngineArgs(max_model_len=8192, **kw)
    reqs, base = workload()
    calls = 0

    def at(rate: float) -> float:
        nonlocal calls
        calls += 1
        _, records = replay(args, reqs, [t / rate for t in base], request_timeout_s=120)
        return attainment(records, SLOS)

    found = find_capacity(at, first, target=TARGET, max_steps=5)
    seven = find_capacity(at, first, target=TARGET, max_steps=7)
    precise = find_capacity(at, first, target=TARGET, max_steps=14, rel_tol=0.005)
    rates = np.linspace(0.7 * precise.rate, 1.3 * precise.rate, 20)
    met = [float(r) for r in rates if at(float(r)) >= TARGET]
    dense = max(met) if met else 0.0
    err = abs(found.rate - dense) / dense if dense else float("nan")
    return {
        "search_7_steps": round(seven.rate, 4),
        "steps_7": len(seven.steps),
        "rel_err_7_steps": round(abs(seven.rate - dense) / dense, 4) if dense else None,
        "config": name,
        "first_rate": first,
        "search": round(found.rate, 4),
        "steps": len(found.steps),
        "dense_sweep": round(dense, 4),
        "rel_err": round(err, 4),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)
    configs = CONFIGS[:2] if args.quick else CONFIGS
    rows = [measure(*c) for c in configs]
    out = header(args.quick)
    errs = [r["rel_err"] for r in rows]
    out.update(
        {
            "slo": SLOS,
            "target": TARGET,
            "configs": rows,
            "capacity_vs_dense_sweep_rel_err": round(statistics.fmean(errs), 4),
            "capacity_vs_dense_sweep_rel_err_max": round(max(errs), 4),
            "rate_steps_per_trial_mean": round(statistics.fmean(r["steps"] for r in rows), 2),
            "capacity_vs_dense_sweep_rel_err_7_steps": round(
                statistics.fmean(r["rel_err_7_steps"] for r in rows), 4
            ),
            "rate_steps_per_trial_mean_7_steps": round(
                statistics.fmean(r["steps_7"] for r in rows), 2
            ),
        }
    )
    return finish("capacity" + ("_quick" if args.quick else ""), out)


if __name__ == "__main__":
    raise SystemExit(main())
