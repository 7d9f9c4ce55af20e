"""Parallel suggestion (issue 6, paper Figure 13): the same study with one GPU set and with two.

Writes bench/results/parallel.json and prints it as the last line. The study tunes p95 latency
of the embedded engine (server face, real time: each evaluation starts an engine process and
stress-tests it over HTTP) on the CLS sample trace. With two GPU sets the driver runs two trials
at once and asks SCOOT for two configs whenever both sets are free (k = 2).

- ``wall_seconds_k1`` / ``wall_seconds_k2``: wall time of the whole study (``scoot tune``);
- ``wall_ratio_k2_over_k1``: their ratio (target <= 0.55);
- ``quality_k1`` / ``quality_k2``: the default's p95 latency over the best config's (the
  speed-up found), averaged over seeds; ``quality_ratio_k2_over_k1`` their ratio (1.0: equal).

``--quick``: budget 6, 4 s stress tests, one seed (about a minute).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import finish, header, parse_args

from scoot.domain import Objective, TrialState
from scoot.jobs.store import Store

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "sample_traces" / "cls_synthetic.jsonl"

STUDY = """
name = "par"
objectives = ["p95_latency"]
budget = {budget}
seed = {seed}
gpu_sets = [{sets}]
constraints = [
    "max_num_batched_tokens >= max_num_seqs",
    "max_num_batched_tokens >= max_model_len if not enable_chunked_prefill else True",
]

[engine]
kind = "embedded"
model = "llama-3.1-8b"
gpu = "l40s"
args = ["--max-model-len", "8192"]
startup_timeout_s = 60
stop_grace_s = 3
env = {{ SCOOT_ENGINE_STARTUP_S = "0.5" }}

[trace]
file = "{trace}"
rate = 12.0
duration_s = {duration}
heaviest = 0.5

[stress]
request_timeout_s = 30
drain_timeout_s = 30
robustness_runs = 0
max_lateness_ms = 500

[params.max_num_seqs]
type = "int"
low = 8
high = 512
log = true
default = 256

[params.max_num_batched_tokens]
type = "int"
low = 512
high = 16384
log = true
default = 2048

[params.enable_chunked_prefill]
type = "bool"
default = true
"""


def run(budget: int, duration: float, seed: int, k: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        sets = ", ".join(f'"{i}"' for i in range(k))
        study = home / "par.toml"
        study.write_text(
            textwrap.dedent(
                STUDY.format(budget=budget, seed=seed, sets=sets, trace=TRACE, duration=duration)
            )
        )
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "scoot", "--data-dir", str(home), "tune", str(study)],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"scoot tune failed:\n{done.stderr[-2000:]}")
        store = Store(home / "scoot.db")
        row = store.study("par")
        assert row is not None
        trials = store.trials(row.id)
        store.close()
    ok = [t for t in trials if t.state is TrialState.COMPLETED and t.metrics is not None]
    default = next(t for t in ok if t.source == "default")
    assert default.metrics is not None
    best = min(t.metrics.value(Objective.P95_LATENCY) for t in ok if t.metrics)
    return {
        "k": k,
        "seed": seed,
        "wall_seconds": round(wall, 1),
        "completed": len(ok),
        "failed": sum(t.state is TrialState.FAILED for t in trials),
        "abandoned": sum(t.state is TrialState.ABANDONED for t in trials),
        "default_p95_ms": round(default.metrics.p95_e2el_ms, 1),
        "best_p95_ms": round(best, 1),
        "quality": default.metrics.p95_e2el_ms / best,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)
    budget, duration, seeds = (6, 4.0, [0]) if args.quick else (12, 10.0, [0, 1])
    runs = [run(budget, duration, seed, k) for seed in seeds for k in (1, 2)]

    def mean(k: int, key: str) -> float:
        return statistics.fmean(r[key] for r in runs if r["k"] == k)

    out = header(args.quick)
    out.update(
        {
            "budget": budget,
            "stress_duration_s": duration,
            "seeds": seeds,
            "wall_seconds_k1": round(mean(1, "wall_seconds"), 1),
            "wall_seconds_k2": round(mean(2, "wall_seconds"), 1),
            "wall_ratio_k2_over_k1": round(mean(2, "wall_seconds") / mean(1, "wall_seconds"), 3),
            "quality_k1": round(mean(1, "quality"), 3),
            "quality_k2": round(mean(2, "quality"), 3),
            "quality_ratio_k2_over_k1": round(mean(2, "quality") / mean(1, "quality"), 3),
            "runs": runs,
        }
    )
    return finish("parallel", out)


if __name__ == "__main__":
    raise SystemExit(main())
