"""Quality under SLOs (issue 17): constrained services and a capacity service, noisy.

Writes bench/results/quality_slo.json and prints it as its last line. The services of
bench/services_slo.toml are tuned as suite v2's are (bench/quality_v2.py: the same noisy
evaluations on common draws, the same budget, the same re-test of the best three, the
recommendation scored by its true value), by SCOOT and by each baseline with its own handling
of outcome constraints (scoot.optim.baselines: penalties, Optuna's constraints, BoTorch's
outcome constraints; random search ignores them). Under an SLO the re-test's candidates are
the configs observed meeting it, and the recommendation is the best mean that meets it.

Scores, per run: the recommendation's true value as a fraction of the best known true value
that meets every SLO (``best / value`` for a latency, ``value / best`` for a rate), 0 where the
recommendation misses an SLO in truth or fails. Not the fraction of headroom over the default,
as suite v2 scores: a constrained default may miss the SLO (``a100-qwen3_8b-sql-ttft-slo``
does), and then it has no value to improve on. The best known values: for the constrained
services, every true value cached for the parent service (its reference search refined the
TTFT/TPOT front, where a constrained optimum lies) and every run's; for the capacity service,
its own reference search (bench/reference_v2.py's, 300 Sobol configs and two refinement
rounds, each evaluation a rate search of at most 5 steps), run here when missing.

Figures: per method ``mean_score``, ``by_service``, ``constrained_winner_feasible_fraction``
(the share of runs on constrained services whose recommendation meets every SLO in truth;
target 1.0: each has a feasible config), ``failed_after_init_fraction``; for the capacity
service ``rate_steps_per_trial_mean`` (target <= 5); and ``capacity_vs_dense_sweep_rel_err``
from bench/results/capacity.json (bench/capacity.py measures the search against dense sweeps).

``--quick``: one constrained service, one seed, 16 evaluations, three methods (about 2
minutes). ``--summary`` summarises the log as it stands; ``QUALITY_WORKERS`` sets the
processes. Every finished run is appended to bench/results/quality_slo_runs.jsonl; a rerun
skips what the log holds.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    RESULTS,
    complete_runs,
    finish,
    header,
    parse_args,
    per_method,
    read_runs,
    run_logged,
)
from quality_v2 import EXPERIMENTS, Pairs, paired_experiments, run_one
from reference_v2 import search
from suite_v2 import REFERENCE, ROOT, ServiceV2, TrueValues, load_suite_v2

SUITE_SLO = ROOT / "bench" / "services_slo.toml"
METHODS = ("scoot", "random", "ga", "vanilla_bo", "tpe", "botorch")
QUICK = "a100-qwen3_8b-sql-ttft-slo"
CAPACITY_REFERENCE = (300, 2)
"""The capacity service's reference search: Sobol configs, refinement rounds."""


def best_known(service: ServiceV2, runs: list[dict[str, Any]], quick: bool) -> float:
    """The best true value that meets every SLO: the reference search's and every run's."""
    suffix = "_quick" if quick and service.capacity else ""
    if service.capacity and not (REFERENCE / f"{service.name}{suffix}.json").exists():
        n, rounds = (40, 1) if quick else CAPACITY_REFERENCE
        search((service, n, rounds, quick))
    rows = list(TrueValues(service, suffix=suffix).cache.values())
    rows += [e["true"] for r in runs for e in r["recommended"] + r["observed_best"]]
    metric, maximise = service.objectives[0].metric, service.objectives[0].maximize
    values = [float(v[metric]) for v in rows if service.meets(v)]
    if not values:
        raise SystemExit(f"{service.name}: no config is known to meet {service.slo}")
    return max(values) if maximise else min(values)


def score(service: ServiceV2, best: float, rows: list[dict[str, Any]]) -> float:
    """The fraction of the best known value that the recommendation's true value reaches."""
    if not rows or not service.meets(rows[0]):
        return 0.0
    o = service.objectives[0]
    v = float(rows[0][o.metric])
    if o.maximize:
        return v / best if best > 0 else 0.0
    return best / v if v > 0 else 0.0


def summarise(
    runs: list[dict[str, Any]], services: list[ServiceV2], quick: bool
) -> dict[str, Any]:
    by_name = {s.name: s for s in services}
    best = {
        s: best_known(by_name[s], [r for r in runs if r["service"] == s], quick)
        for s in sorted({r["service"] for r in runs})
    }
    for r in runs:
        s = by_name[r["service"]]
        r["score"] = score(s, best[s.name], [e["true"] for e in r["recommended"]])
        r["feasible"] = bool(r["recommended"]) and s.meets(r["recommended"][0]["true"])
        r["constrained"] = bool(s.slo)

    def block(rs: list[dict[str, Any]]) -> dict[str, Any]:
        constrained = [r for r in rs if r["constrained"]]
        after = sum(r["evaluated_after_init"] for r in rs)
        steps = [r["rate_steps_mean"] for r in rs if r.get("rate_steps_mean") is not None]
        return {
            "runs": len(rs),
            "mean_score": round(statistics.fmean(r["score"] for r in rs), 4),
            "constrained_winner_feasible_fraction": round(
                statistics.fmean(r["feasible"] for r in constrained), 4
            )
            if constrained
            else None,
            "failed_after_init_fraction": round(sum(r["failed_after_init"] for r in rs) / after, 4)
            if after
            else None,
            "rate_steps_per_trial_mean": round(statistics.fmean(steps), 2) if steps else None,
        }

    methods = tuple(m for m in METHODS if any(r["method"] == m for r in runs))
    out = per_method(runs, methods, block)
    steps = [r["rate_steps_mean"] for r in runs if r.get("rate_steps_mean") is not None]
    return {
        "methods": out,
        "best_known": {s: round(v, 4) for s, v in best.items()},
        "rate_steps_per_trial_mean": round(statistics.fmean(steps), 2) if steps else None,
    }


def experiments(
    logged: list[dict[str, Any]], services: list[ServiceV2], quick: bool
) -> dict[str, dict[str, Any]]:
    """Each variant of SCOOT the log holds against the SCOOT it differs from in one option
    (quality_v2.PAIRED_WITH, else ``scoot``), paired on the (service, seed) cells both ran."""
    rows = [dict(r) for r in logged]
    summarise(rows, services, quick)  # sets each run's score and feasibility

    def feasible_winners(pairs: Pairs) -> dict[str, Any]:
        """Constrained runs whose recommendation meets every SLO in truth: the variant's,
        then SCOOT's."""

        def feasible(side: list[dict[str, Any]]) -> int:
            return sum(r["feasible"] for r in side if r["constrained"])

        return {
            "constrained_winner_feasible": [
                feasible([b for _, b in pairs]),
                feasible([a for a, _ in pairs]),
            ]
        }

    return paired_experiments(rows, lambda r: (r["service"], r["seed"]), feasible_winners)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    summary_only = "--summary" in argv
    args = parse_args(__doc__, [a for a in argv if a != "--summary"])
    suite = load_suite_v2(SUITE_SLO)
    if args.quick:
        services = [s for s in suite if s.name == QUICK]
        methods, seeds, budget = ("scoot", "random", "tpe"), [0], 16
    else:
        services, methods, seeds, budget = suite, METHODS, [0, 1, 2], 30
    # SCOOT's variants (quality_v2.EXPERIMENTS) run only when QUALITY_METHODS names them,
    # and are compared with the SCOOT they differ from under ``experiments``.
    named = [m for m in os.environ.get("QUALITY_METHODS", "").split(",") if m in EXPERIMENTS]
    cost = {"vanilla_bo": 3, "scoot": 3, "botorch": 3}
    tasks = [(m, s, seed, 1, budget) for m in methods for s in services for seed in seeds]
    extra = [(m, s, seed, 1, budget) for m in named for s in services for seed in seeds]
    log = RESULTS / f"quality_slo_runs{'_quick' if args.quick else ''}.jsonl"
    done = read_runs(log, budget)
    todo = (
        []
        if summary_only
        else [t for t in tasks + extra if (t[0], t[1].name, t[2], 1) not in done]
    )
    todo.sort(key=lambda t: (t[2], t[1].name, -cost.get(t[0], 1)))
    t0 = time.time()
    workers = int(os.environ.get("QUALITY_WORKERS", os.cpu_count() or 1))
    run_logged(run_one, todo, log, done, workers)
    wanted = {(t[0], t[1].name, t[2], 1) for t in tasks}
    runs, n_complete = complete_runs(
        [r for key_, r in done.items() if key_ in wanted], lambda k: set(methods)
    )
    out = header(args.quick)
    out["experiments"] = experiments(list(done.values()), services, args.quick)
    capacity = RESULTS / "capacity.json"
    out.update(
        {
            "services": {
                s.name: {
                    "objective": s.objectives[0].value,
                    "slo": [str(c) for c in s.slo],
                    "goodput": dict(s.goodput),
                    "capacity_target": s.capacity_target if s.capacity else None,
                }
                for s in services
            },
            "methods_run": list(methods),
            "seeds": seeds,
            "budget": budget,
            "wall_seconds": round(time.time() - t0, 1),
            "runs_planned": len(tasks),
            "runs_summarised": len(runs),
            "cells_summarised": n_complete,
            "complete": len(runs) == len(tasks),
            **(summarise(runs, services, args.quick) if runs else {"methods": {}}),
            "capacity_vs_dense_sweep_rel_err": json.loads(capacity.read_text())[
                "capacity_vs_dense_sweep_rel_err"
            ]
            if capacity.exists()
            else None,
        }
    )
    return finish("quality_slo" + ("_quick" if args.quick else ""), out)


if __name__ == "__main__":
    raise SystemExit(main())
