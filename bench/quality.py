"""Quality of the SCOOT optimizer against its baselines over the service suite (issue 5).

Writes bench/results/quality.json and prints it as the last line. Every service of
bench/services.toml is tuned over its grid by every method, ``budget`` evaluations per run
(the default config first, then the Sobol design, then the method), for each seed and each
parallelism degree k (k suggestions per round, as with k GPU sets). Evaluations are lookups in
bench/grids/ (the embedded engine in virtual time, every grid point evaluated once), so each
service's optimum is known exactly and runs cost only the optimizers' own time.

Per method, under ``methods.<name>``:

- ``mean_score``: mean over runs of the score: the fraction of the optimum's improvement
  reached for one objective, the hypervolume ratio for TTFT+TPOT;
- ``median_fraction_of_optimum``: median over one-objective runs of
  ``(best found - default) / (grid optimum - default)``;
- ``improvement_over_default_mean``: mean relative improvement of the best config found;
- ``hv_ratio_median``: median over TTFT+TPOT runs of HV(found) / HV(grid front), both against
  the grid front's nadir pushed out by a tenth of its range. (Against the default's point, the
  EHVI reference, the grid's hypervolume is zero in two of the three services: vLLM V1's
  defaults already sit on the TTFT-TPOT front there, and no config beats them in both.)
- ``winner_hv_ratio_median``: the paper's Eq. 10 figure, the hypervolume of the best single
  config against the default, as a fraction of the grid's best, over the services where some
  config beats the default in both objectives;
- ``failed_after_init_fraction``: failed evaluations after the initial design, over services
  whose space has crash regions (failures beyond the known constraints);
- ``suggest_seconds_p50`` over every model-based round, and ``suggest_seconds_p50_at_30`` over
  rounds with at least 25 observations; ``by_k`` repeats the scores per k.

``--quick``: 2 services x 2 seeds, k = 1, 14 evaluations.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from benchlib import (
    RESULTS,
    complete_runs,
    finish,
    header,
    parse_args,
    per_method,
    read_runs,
    run_logged,
    tune,
)
from suite import Service, gains, key, load_grid, load_suite, observation, search_space

from scoot.domain import Observation
from scoot.optim.baselines import GASuggester, TPESuggester, VanillaBO
from scoot.optim.ehvi import hypervolume
from scoot.optim.mobo import ScootMOBO, nadir_reference
from scoot.optim.protocol import Suggester
from scoot.optim.results import pareto_mask, to_minimize
from scoot.optim.sobo import ScootSOBO
from scoot.optim.sobol import SobolSuggester, initial_design_size
from scoot.optim.space import SearchSpace

METHODS = ("scoot", "scoot_no_rf", "random", "ga", "vanilla_bo", "tpe")


def make(method: str, service: Service, space: SearchSpace, k: int) -> Suggester:
    objs = service.objectives
    multi = len(objs) > 1
    if method in ("scoot", "scoot_no_rf"):
        forest = method == "scoot"
        if multi:
            return ScootMOBO(space, objs, parallelism=k, use_forest=forest)
        return ScootSOBO(space, objs[0], parallelism=k, use_forest=forest)
    factories: dict[str, Callable[[], Suggester]] = {
        "random": lambda: SobolSuggester(space),
        "ga": lambda: GASuggester(space, objs),
        "vanilla_bo": lambda: VanillaBO(space, objs),
        "tpe": lambda: TPESuggester(space, objs),
    }
    return factories[method]()


_GRIDS: dict[str, dict[str, dict[str, Any]]] = {}


def run_one(task: tuple[str, Service, int, int, int]) -> dict[str, Any]:
    """One tuning run: method x service x seed x k, ``budget`` evaluations."""
    method, service, seed, k, budget = task
    name = service.name
    if name not in _GRIDS:
        loaded = load_grid(service)
        assert loaded is not None, f"bench/grids/{name}.json is missing: run bench/make_grids.py"
        _GRIDS[name] = loaded
    grid = _GRIDS[name]
    space = search_space(service)
    suggester = make(method, service, space, k)
    default = space.default()
    assert default is not None
    n_init = initial_design_size(space)
    rng = np.random.default_rng([seed, k, sum(map(ord, name))])
    history: list[Observation] = [observation(default, grid[key(default.as_dict())])]
    rounds, errors = tune(
        suggester,
        space,
        history,
        budget,
        k,
        rng,
        lambda c: observation(c, grid[key(c.as_dict())]),
    )
    return {
        "method": method,
        "budget": budget,
        "service": name,
        "seed": seed,
        "k": k,
        **score(service, grid, history, n_init),
        "rounds": rounds,
        "errors": errors,
    }


def score(
    service: Service, grid: dict[str, dict[str, Any]], history: list[Observation], n_init: int
) -> dict[str, Any]:
    default = grid[key(service.default_config())]
    ok_grid = [r for r in grid.values() if r["ok"]]
    found = [_row(o) for o in history if o.feasible]
    after = history[n_init:]
    out: dict[str, Any] = {
        "evaluations": len(history),
        "failed_after_init": sum(not o.feasible for o in after),
        "evaluated_after_init": len(after),
    }
    if len(service.objectives) == 1:
        best = gains(service, default, found)[0] if found else -math.inf
        opt = gains(service, default, ok_grid)[0]
        out["improvement"] = best
        out["optimum_improvement"] = opt
        out["fraction"] = 1.0 if opt <= 1e-12 else max(best, 0.0) / opt
        out["score"] = out["fraction"]
    else:
        grid_pts = np.array([_point(service, r) for r in ok_grid])
        ref = nadir_reference(grid_pts[pareto_mask(grid_pts)])
        hv_grid = hypervolume(grid_pts, ref)
        hv_found = hypervolume(np.array([_point(service, r) for r in found]), ref)
        out["hv_ratio"] = 1.0 if hv_grid <= 0 else hv_found / hv_grid
        out["score"] = out["hv_ratio"]
        # Eq. 10: the best single config's hypervolume against the default (the paper's
        # reported winner), as a fraction of the grid's best; undefined where nothing beats
        # the default in both objectives.
        d_pt = _point(service, default)
        best_grid = float(np.max(np.prod(np.maximum(d_pt - grid_pts, 0.0), axis=1)))
        if best_grid > 0 and found:
            found_pts = np.array([_point(service, r) for r in found])
            best_found = float(np.max(np.prod(np.maximum(d_pt - found_pts, 0.0), axis=1)))
            out["winner_hv_ratio"] = best_found / best_grid
    return out


def _row(o: Observation) -> dict[str, Any]:
    assert o.metrics is not None
    return o.metrics.to_dict()


def _point(service: Service, r: dict[str, Any]) -> Any:
    return to_minimize([float(r[o.metric]) for o in service.objectives], service.objectives)


def _p50(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 4) if xs else None


def summarise(runs: list[dict[str, Any]], crashy: set[str]) -> dict[str, Any]:
    def block(rs: list[dict[str, Any]]) -> dict[str, Any]:
        single = [r for r in rs if "fraction" in r]
        multi = [r for r in rs if "hv_ratio" in r]
        crash = [r for r in rs if r["service"] in crashy]
        after = sum(r["evaluated_after_init"] for r in crash)
        secs = [dt for r in rs for _, dt in r["rounds"]]
        late = [dt for r in rs for n, dt in r["rounds"] if n >= 25]
        return {
            "runs": len(rs),
            "mean_score": round(statistics.fmean(r["score"] for r in rs), 4),
            "median_fraction_of_optimum": _p50([r["fraction"] for r in single]),
            "improvement_over_default_mean": (
                round(statistics.fmean(r["improvement"] for r in single), 4) if single else None
            ),
            "hv_ratio_median": _p50([r["hv_ratio"] for r in multi]),
            "winner_hv_ratio_median": _p50(
                [r["winner_hv_ratio"] for r in multi if "winner_hv_ratio" in r]
            ),
            "failed_after_init_fraction": (
                round(sum(r["failed_after_init"] for r in crash) / after, 4) if after else None
            ),
            "suggest_seconds_p50": _p50(secs),
            "suggest_seconds_p50_at_30": _p50(late),
            "rounds_with_errors": sum(len(r["errors"]) for r in rs),
        }

    return per_method(runs, METHODS, block)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --summary: no new runs, summarise the log as it stands (a long run still going, or one
    # that was interrupted: the result says how many of the planned runs it covers).
    summary_only = "--summary" in argv
    args = parse_args(__doc__, [a for a in argv if a != "--summary"])
    suite = load_suite()
    if args.quick:
        services = [
            next(s for s in suite if s.name == "h100-qwen3_32b-cls"),
            next(s for s in suite if s.name == "a100-qwen3_8b-sql"),
        ]
        seeds, ks, budget = [0, 1], [1], 14
    else:
        services, seeds, ks, budget = suite, [0, 1, 2, 3, 4], [1, 2], 30
    crashy = set()
    for s in services:
        grid = load_grid(s)
        assert grid is not None
        if any(not r["ok"] and r["failure"] != "invalid_args" for r in grid.values()):
            crashy.add(s.name)
    cost = {"vanilla_bo": 3, "scoot": 2, "scoot_no_rf": 2}
    tasks = [
        (m, s, seed, k, budget) for m in METHODS for s in services for seed in seeds for k in ks
    ]
    # Seed by seed and k by k, every method on every service: an interrupted run still holds
    # complete comparisons (the summary below covers the runs done).
    tasks.sort(key=lambda t: (t[2], t[3], t[1].name, -cost.get(t[0], 1)))
    # Every finished run is appended to a log at once, and a rerun skips what the log holds:
    # hours of work survive a crash or a kill (delete the log to start over).
    log = RESULTS / f"quality_runs{'_quick' if args.quick else ''}.jsonl"
    done = read_runs(log, budget)
    todo = [t for t in tasks if (t[0], t[1].name, t[2], t[3]) not in done]
    if summary_only:
        todo = []
    t0 = time.time()
    workers = max(1, min(os.cpu_count() or 1, 2 if args.quick else os.cpu_count() or 1))
    run_logged(run_one, todo, log, done, workers)
    wanted = {(t[0], t[1].name, t[2], t[3]) for t in tasks}
    runs, n_complete = complete_runs(
        [r for key_, r in done.items() if key_ in wanted], lambda k: set(METHODS)
    )
    out = header(args.quick)
    out.update(
        {
            "services": [s.name for s in services],
            "services_with_crash_regions": sorted(crashy),
            "seeds": seeds,
            "ks": ks,
            "budget": budget,
            "wall_seconds": round(time.time() - t0, 1),
            "runs_planned": len(tasks),
            "runs_summarised": len(runs),
            "cells_summarised": n_complete,
            "complete": len(runs) == len(tasks),
            "methods": summarise(runs, crashy),
        }
    )
    return finish("quality", out)


if __name__ == "__main__":
    raise SystemExit(main())
