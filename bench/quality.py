"""Quality of SCOOT against its baselines on suite v1, noisy (issues 5 and 16).

Writes bench/results/quality.json and prints it as its last line. Every service of
bench/services.toml (5 flags over a grid of 280 points) is tuned by every method of suite v2's
benchmark (bench/quality_v2.py: SCOOT as the study runs it and with the paper's batches,
random, GA, vanilla HEBO, Optuna's TPE, BoTorch), ``budget`` evaluations per run, for each
seed and each k. The protocol is suite v2's:

- **noisy evaluations**: each evaluation is a fresh stress test on the embedded engine in
  virtual time, a new draw of the arrivals and of the requests' order (``suite.evaluate`` with
  the draw as its seed; seed 0 is the noise-free grid's workload), the i-th evaluation of a
  (service, seed, k) cell the same draw for every method;
- **the score is the true value of the recommendation**: the three best observed configs (for
  two objectives, up to six points of the observed front) are re-tested twice on fresh draws,
  the best mean is recommended, and its true value (the mean over five further draws,
  ``suite_v2.TRUE_SEEDS``, cached in ``bench/reference/v1-<service>_true.jsonl``) is scored;
  ``mean_score_best_observed`` scores the best noisy observation as observed;
- **against the best known true value**: the grid ranked on its noise-free workload (common
  random numbers), the best :data:`REFERENCE_TOP` points (for two objectives, the first Pareto
  layers) true-valued (``bench/reference/v1-<service>.json``), or anything better a run found;
- one objective scores ``(true(recommended) - true(default)) / (best known - true(default))``,
  floored at 0; TTFT+TPOT the hypervolume of log objectives against twice the default's
  (docs/benchmarks.md); a service counts only where its headroom exceeds 1.26 times the
  default's run-to-run spread (``a100-llama31_8b-rec``'s 0.03 % does not).

SCOOT's variants of suite v2's ``EXPERIMENTS`` that the log holds are compared with ``scoot``
under ``experiments``: ``scoot_fill_paper`` is SCOOT before the model-ranked fill became the
default (the paper's Sobol fill; those runs were logged as ``scoot`` until then).

The noise-free figures of this suite before issue 16 are kept in
bench/results/quality_noise_free.json (its runs in quality_noise_free_runs.jsonl).

``--quick``: 2 services x 1 seed, k = 1, 16 evaluations, three methods (the references of
the full run, cached in the repository). ``--summary`` summarises the log as it stands;
``QUALITY_WORKERS``, ``QUALITY_KS`` and ``QUALITY_METHODS`` as in quality_v2.py. Every finished
run is appended to bench/results/quality_runs.jsonl; a rerun skips what the log holds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import RESULTS, complete_runs, finish, header, parse_args, read_runs, run_logged
from quality_v2 import (
    BATCH_ONLY,
    EXPERIMENTS,
    METHODS,
    experiments,
    minimised,
    run_noisy,
    summarise,
)
from reference_v2 import layers
from suite import Service, evaluate, load_grid, load_suite, search_space
from suite_v2 import REFERENCE, TrueValues

from scoot.optim.results import pareto_mask

REFERENCE_TOP = 24
"""Grid points true-valued for a service's reference (its best on the noise-free workload)."""
QUICK = ("h100-qwen3_32b-cls", "a100-qwen3_8b-sql")


def true_values(service: Service) -> TrueValues:
    return TrueValues(
        service,
        evaluator=lambda values, seed: evaluate(service, values, seed),
        path=REFERENCE / f"{service.cache_name}_true.jsonl",
    )


def reference(service: Service) -> dict[str, Any]:
    """The service's default and best known true values (built once, then read from
    ``bench/reference/v1-<service>.json``)."""
    path = REFERENCE / f"{service.cache_name}.json"
    if path.exists():
        doc: dict[str, Any] = json.loads(path.read_text())
        return doc
    grid = load_grid(service)
    assert grid is not None, f"bench/grids/{service.name}.json is missing: bench/make_grids.py"
    ok = [(json.loads(k), r) for k, r in grid.items() if r["ok"]]
    pts = minimised(service, [r for _, r in ok])
    if len(service.objectives) == 1:
        picks = [int(i) for i in pts[:, 0].argsort()[:REFERENCE_TOP]]
    else:
        picks = layers(pts, REFERENCE_TOP)
    true = true_values(service)
    default = service.default_config()
    valued = [(ok[i][0], true(ok[i][0])) for i in picks]
    good = [(c, v) for c, v in valued if v["ok"]]
    out: dict[str, Any] = {
        "service": service.name,
        "objectives": [o.value for o in service.objectives],
        "true_valued_configs": len(valued),
        "default": {"config": default, "value": true(default)},
    }
    vals = minimised(service, [v for _, v in good])
    if len(service.objectives) == 1:
        i = int(vals[:, 0].argmin())
        out["optimum"] = {"config": good[i][0], "value": good[i][1]}
        # Where the noise-free grid's optimum ranks among the true values (0: it is the best).
        first = valued[0][1]
        if first["ok"]:
            at = float(minimised(service, [first])[0, 0])
            out["grid_optimum_true_rank"] = int((vals[:, 0] < at).sum())
    else:
        out["front"] = [
            {"config": good[i][0], "value": good[i][1]}
            for i, m in enumerate(pareto_mask(vals))
            if m
        ]
    path.write_text(json.dumps(out, indent=1) + "\n")
    return out


def run_one(task: tuple[str, Service, int, int, int]) -> dict[str, Any]:
    service = task[1]
    return run_noisy(
        task,
        search_space(service),
        lambda config, d: evaluate(service, config, d),
        true_values(service),
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    summary_only = "--summary" in argv
    args = parse_args(__doc__, [a for a in argv if a != "--summary"])
    suite = load_suite()
    if args.quick:
        services = [s for s in suite if s.name in QUICK]
        methods, seeds, ks, budget = ("scoot", "random", "tpe"), [0], [1], 16
    else:
        services, methods, seeds, ks, budget = suite, METHODS, [0, 1, 2], [1, 2, 4], 30
    if os.environ.get("QUALITY_METHODS"):
        named = os.environ["QUALITY_METHODS"].split(",")
        methods = tuple(m for m in (*methods, *EXPERIMENTS) if m in named)
    partial = bool(os.environ.get("QUALITY_METHODS"))
    workers = int(os.environ.get("QUALITY_WORKERS", os.cpu_count() or 1))
    REFERENCE.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        refs = dict(zip([s.name for s in services], pool.map(reference, services), strict=True))
    cost = {"vanilla_bo": 3, "scoot": 3, "scoot_paper": 3, "botorch": 3}
    tasks = [
        (m, s, seed, k, budget)
        for m in methods
        for s in services
        for seed in seeds
        for k in ks
        if k > 1 or m not in BATCH_ONLY
    ]
    # Seed by seed, k by k: an interrupted run still holds complete comparisons.
    tasks.sort(key=lambda t: (t[2], t[3], t[1].name, -cost.get(t[0], 1)))
    only = {int(x) for x in os.environ.get("QUALITY_KS", "").split(",") if x.strip()}
    run_tasks = [t for t in tasks if not only or t[3] in only]
    log = RESULTS / f"quality_runs{'_quick' if args.quick else ''}.jsonl"
    done = read_runs(log, budget)
    todo = [t for t in run_tasks if (t[0], t[1].name, t[2], t[3]) not in done]
    if summary_only:
        todo = []
    t0 = time.time()
    run_logged(run_one, todo, log, done, workers)
    wanted = {(t[0], t[1].name, t[2], t[3]) for t in tasks}
    runs, n_complete = complete_runs(
        [r for key_, r in done.items() if key_ in wanted],
        lambda k: {m for m in methods if k > 1 or m not in BATCH_ONLY},
    )
    out = header(args.quick)
    out.update(
        {
            "protocol": "noisy evaluations, true value of the recommendation (issue 16)",
            "services": [s.name for s in services],
            "methods_run": list(methods),
            "seeds": seeds,
            "ks": ks,
            "budget": budget,
            "wall_seconds": round(time.time() - t0, 1),
            "runs_planned": len(tasks),
            "runs_summarised": len(runs),
            "cells_summarised": n_complete,
            "complete": len(runs) == len(tasks),
            **summarise(runs, services, methods, args.quick, lambda s: refs[s.name]),
        }
    )
    if not partial and not args.quick:
        out["experiments"] = experiments(list(done.values()), services, lambda s: refs[s.name])
    for name, ref in refs.items():
        if "grid_optimum_true_rank" in ref:
            out["services_scored"].setdefault(name, {})["grid_optimum_true_rank"] = ref[
                "grid_optimum_true_rank"
            ]
    at100 = RESULTS / "suggest_time.json"
    if at100.exists() and "scoot" in out["methods"]:
        out["methods"]["scoot"]["suggest_seconds_p50_at_100"] = json.loads(at100.read_text())[
            "suggest_seconds_p50_at_100"
        ]
    name = "quality" + ("_quick" if args.quick else "") + ("_partial" if partial else "")
    return finish(name, out)


if __name__ == "__main__":
    raise SystemExit(main())
