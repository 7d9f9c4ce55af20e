"""Reference optima of suite v2 (bench/services_v2.toml): a large search in virtual time.

Suite v2's spaces are continuous, so no grid holds the optimum; this search stands in for it,
per service (3,000 evaluations, each a 40-90 s stress test replayed in virtual time):

1. **Dense random sampling**: 2,400 scrambled-Sobol configs that keep the known constraints,
   each evaluated once on the same stress-test draw (common random numbers: configs are ranked
   on one workload, not on luck).
2. **True values of the best**: the 40 best (for two objectives, the first Pareto layers in log
   space) get their true value, the mean over five fresh draws (``suite_v2.TRUE_SEEDS``).
3. **Local refinement**, four rounds: 50 perturbations (Gaussian steps of 0.05 in the unit
   cube, on about a third of the flags) of the five best true-valued configs (for two
   objectives, five points spread along the true front) are screened on the common draw, and
   the ten best get true values.

The reference optimum is the best true value found (for two objectives, the non-dominated set
of true values). ``moved_in_last_third`` says how much the best true value still improved over
the last third of the true-valued configs (``screen_moved_in_last_third``: the best screened
value over the last third of screening evaluations): small figures say the search settled.

Everything is cached under ``bench/reference/`` (screening results per config and true values
per config, one JSON line each), so a rerun resumes, and the quality benchmark scores every
recommendation against the same cached true values. Writes ``bench/reference/<service>.json``
per service and ``bench/results/reference_v2.json``; ``--quick`` runs the same search with
60 random configs and one refinement round on two services (not cached with the full run).
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

import numpy as np
from benchlib import finish, header, parse_args
from suite_v2 import (
    REFERENCE,
    TRUE_SEEDS,
    ServiceV2,
    TrueValues,
    evaluate,
    key,
    load_suite_v2,
    search_space,
)

from scoot.domain import Config, Objective
from scoot.optim.mobo import log_objectives
from scoot.optim.results import pareto_mask
from scoot.optim.sobol import SobolSuggester

SCREEN_SEED = TRUE_SEEDS[0]
QUICK = ("h100-qwen3_32b-cls-p95", "a100-qwen3_8b-sql-tt")


def minimised(service: ServiceV2, rows: list[dict[str, Any]]) -> np.ndarray:
    """Objective rows (n, m) of feasible results as minimised logs."""
    vals = np.array([[float(r[o.metric]) for o in service.objectives] for r in rows])
    return log_objectives(vals, service.objectives)


def layers(points: np.ndarray, k: int) -> list[int]:
    """Indices of the first ``k`` points by Pareto layers (non-dominated sorting)."""
    left = list(range(len(points)))
    out: list[int] = []
    while left and len(out) < k:
        mask = pareto_mask(points[left])
        layer = [left[i] for i in range(len(left)) if mask[i]]
        layer.sort(key=lambda i: float(points[i].sum()))
        out.extend(layer)
        left = [i for i in left if i not in set(layer)]
    return out[:k]


def spread(points: np.ndarray, k: int) -> list[int]:
    """Up to ``k`` indices of the front of ``points``, evenly spaced along the first objective."""
    front = [i for i, m in enumerate(pareto_mask(points)) if m]
    front.sort(key=lambda i: float(points[i, 0]))
    if len(front) <= k:
        return front
    picks = np.linspace(0, len(front) - 1, k).round().astype(int)
    return [front[int(p)] for p in dict.fromkeys(picks)]


class Cache:
    """Screening results (one evaluation on the common draw) per config key, on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.rows[row["key"]] = row["value"]

    def __call__(self, service: ServiceV2, config: dict[str, Any]) -> dict[str, Any]:
        k = key(config)
        if k not in self.rows:
            self.rows[k] = evaluate(service, config, SCREEN_SEED)
            with self.path.open("a") as fh:
                fh.write(json.dumps({"key": k, "value": self.rows[k]}) + "\n")
        return self.rows[k]


def search(task: tuple[ServiceV2, int, int, bool]) -> dict[str, Any]:
    service, n_random, rounds, quick = task
    t0 = time.time()
    suffix = "_quick" if quick else ""
    screen = Cache(REFERENCE / f"{service.cache_name}_screen{suffix}.jsonl")
    true = TrueValues(service, suffix=suffix)
    space = search_space(service)
    rng = np.random.default_rng(sum(map(ord, service.name)))
    one = len(service.objectives) == 1
    obj: Objective = service.objectives[0]
    evals = 0
    screen_best: list[float] = []  # best screened value after each screening evaluation
    true_best: list[float] = []

    def screened(configs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        nonlocal evals
        out = []
        for c in configs:
            r = screen(service, c)
            evals += 1
            if r["ok"] and one:
                v = float(r[obj.metric]) * (1 if obj.maximize else -1)
                screen_best.append(max(v, screen_best[-1]) if screen_best else v)
            out.append((c, r))
        return out

    valued: dict[str, dict[str, Any]] = {}

    def valuate(configs: list[dict[str, Any]]) -> None:
        nonlocal evals
        for c in configs:
            k = key(c)
            if k in valued:
                continue
            valued[k] = true(c)
            evals += len(TRUE_SEEDS)
            r = valued[k]
            if r["ok"] and one:
                v = float(r[obj.metric]) * (1 if obj.maximize else -1)
                true_best.append(max(v, true_best[-1]) if true_best else v)

    def best(rows: list[tuple[dict[str, Any], dict[str, Any]]], k: int) -> list[dict[str, Any]]:
        ok = [(c, r) for c, r in rows if r["ok"]]
        if not ok:
            return []
        pts = minimised(service, [r for _, r in ok])
        return [ok[i][0] for i in layers(pts, k)]

    default = service.default_config()
    valuate([default])
    sobol = SobolSuggester(space, max_draws=40 * n_random, seed=int(rng.integers(2**31)))
    design = [c.as_dict() for c in sobol.sample(n_random, rng, [space.default()])]
    rows = screened(design)
    valuate(best(rows, 40))
    for _ in range(rounds):
        ok = [(json.loads(k), r) for k, r in valued.items() if r["ok"]]
        pts = minimised(service, [r for _, r in ok])
        parents = [ok[i][0] for i in (layers(pts, 5) if one else spread(pts, 5))]
        children = []
        tries = 0
        while len(children) < 50 and tries < 5000:
            tries += 1
            p = parents[len(children) % len(parents)]
            u = space.encode(Config.of(p))
            mask = rng.random(space.dim) < 1 / 3
            u = np.clip(u + mask * rng.normal(0, 0.05, space.dim), 0, 1)
            c = space.decode(u)
            if space.allowed(c) and key(c) not in screen.rows and c.as_dict() not in children:
                children.append(c.as_dict())
        valuate(best(screened(children), 10))
    ok = [(json.loads(k), r) for k, r in valued.items() if r["ok"]]
    out: dict[str, Any] = {
        "service": service.name,
        "objectives": [o.value for o in service.objectives],
        "evaluations": evals,
        "true_valued_configs": len(valued),
        "screen_feasible_fraction": round(
            sum(r["ok"] for r in screen.rows.values()) / max(1, len(screen.rows)), 4
        ),
        "default": {"config": default, "value": valued[key(default)]},
        "wall_seconds": round(time.time() - t0, 1),
    }
    if one:
        i = int(np.argmin(minimised(service, [r for _, r in ok])[:, 0]))
        out["optimum"] = {"config": ok[i][0], "value": ok[i][1]}
        out["moved_in_last_third"] = _moved(true_best)
        out["screen_moved_in_last_third"] = _moved(screen_best)
    else:
        pts = minimised(service, [r for _, r in ok])
        out["front"] = [
            {"config": ok[i][0], "value": ok[i][1]} for i, m in enumerate(pareto_mask(pts)) if m
        ]
    (REFERENCE / f"{service.name}{suffix}.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def _moved(best: list[float]) -> float | None:
    """Relative improvement of a best-so-far curve over its last third."""
    if len(best) < 3:
        return None
    at = best[(2 * len(best)) // 3 - 1]
    end = best[-1]
    return round((end - at) / abs(at), 5) if at else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)
    suite = load_suite_v2()
    REFERENCE.mkdir(parents=True, exist_ok=True)
    if args.quick:
        tasks = [(s, 60, 1, True) for s in suite if s.name in QUICK]
    else:
        tasks = [(s, 2400, 4, False) for s in suite]
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=min(len(tasks), os.cpu_count() or 1)) as pool:
        results = list(pool.map(search, tasks, chunksize=1))
    out = header(args.quick)
    out["wall_seconds"] = round(time.time() - t0, 1)
    out["services"] = {
        r["service"]: {
            k: v
            for k, v in r.items()
            if k
            in (
                "evaluations",
                "moved_in_last_third",
                "screen_moved_in_last_third",
                "screen_feasible_fraction",
                "true_valued_configs",
            )
        }
        | _gain(r)
        for r in results
    }
    out["evaluations_min"] = min(r["evaluations"] for r in results)
    return finish("reference_v2" + ("_quick" if args.quick else ""), out)


def _gain(r: dict[str, Any]) -> dict[str, Any]:
    d = r["default"]["value"]
    if "optimum" not in r:
        return {"front_points": len(r["front"])}
    o = r["optimum"]["value"]
    m = r["objectives"][0]
    metric = {"throughput": "request_throughput", "p95_latency": "p95_e2el_ms"}[m]
    if not d["ok"]:
        return {"optimum": o[metric]}
    gain = (o[metric] - d[metric]) / d[metric] * (1 if m == "throughput" else -1)
    return {
        "default": d[metric],
        "optimum": o[metric],
        "headroom": round(gain, 4),
        "default_cv": d.get(metric + "_cv"),
    }


if __name__ == "__main__":
    raise SystemExit(main())
