"""Markdown tables of bench/results/quality.json (or quality_v2.json), for docs/benchmarks.md.

``python bench/quality_report.py [FILE]`` prints the per-method table, the scores per k and
the per-service table; the prose around them in docs/benchmarks.md is written by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _num(x: float | None, unit: str = "") -> str:
    return "-" if x is None else f"{x:.3f}{unit}" if not unit else f"{x:.2f}{unit}"


def report(q: dict[str, Any]) -> str:
    # The order of bench/quality.py's METHODS (the JSON file is written with sorted keys).
    order = ("scoot", "scoot_no_rf", "vanilla_bo", "tpe", "random", "ga")
    methods: dict[str, Any] = {n: q["methods"][n] for n in order if n in q["methods"]}
    lines = [
        f"{q['runs_summarised']} of {q['runs_planned']} runs, {q['cells_summarised']} complete "
        f"(service, seed, k) cells; machine: {q['machine']}.",
        "",
        "| method | mean score | median fraction of optimum | mean improvement over default "
        "| HV ratio, median | failed after the initial design | suggest p50 "
        "| p50 at >= 25 observations |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in methods.items():
        lines.append(
            f"| `{name}` | {_num(m['mean_score'])} | {_num(m['median_fraction_of_optimum'])} "
            f"| {_pct(m['improvement_over_default_mean'])} | {_num(m['hv_ratio_median'])} "
            f"| {_pct(m['failed_after_init_fraction'])} | {_num(m['suggest_seconds_p50'], ' s')} "
            f"| {_num(m['suggest_seconds_p50_at_30'], ' s')} |"
        )
    ks = [str(k) for k in q["ks"]]
    lines += ["", f"Mean score per k ({' / '.join('k = ' + k for k in ks)}):", ""]
    lines += ["| method | " + " | ".join(f"k = {k}" for k in ks) + " |"]
    lines += ["|---|" + "---|" * len(ks)]
    for name, m in methods.items():
        cells = [_num(m["by_k"][k]["mean_score"]) if k in m["by_k"] else "-" for k in ks]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines += ["", "Per service (mean score):", ""]
    lines += ["| service | " + " | ".join(f"`{n}`" for n in methods) + " |"]
    lines += ["|---|" + "---|" * len(methods)]
    services = sorted({s for m in methods.values() for s in m["by_service"]})
    for s in services:
        cells = [_num(m["by_service"].get(s)) for m in methods.values()]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_v2(q: dict[str, Any]) -> str:
    order = (
        "scoot", "scoot_paper", "vanilla_bo", "botorch", "optuna_gp", "tpe", "random", "ga"
    )  # fmt: skip
    methods: dict[str, Any] = {n: q["methods"][n] for n in order if n in q["methods"]}
    ks = [str(k) for k in q["ks"]]
    lines = [
        f"{q['runs_summarised']} of {q['runs_planned']} runs, {q['cells_summarised']} complete "
        f"(service, seed, k) cells; machine: {q['machine']}.",
        "",
        "| method | mean score (true value of the recommendation) | one objective | two "
        "| best observation, as observed | best observation, true value "
        "| median fraction of optimum | failed after the initial design | suggest p50 at 25-30 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in methods.items():
        lines.append(
            f"| `{name}` | {_num(m['mean_score'])} | {_num(m['mean_score_single'])} "
            f"| {_num(m['mean_score_two_objective'])} | {_num(m['mean_score_best_observed'])} "
            f"| {_num(m['mean_score_best_observed_true_value'])} "
            f"| {_num(m['median_fraction_of_optimum'])} "
            f"| {_pct(m['failed_after_init_fraction'])} "
            f"| {_num(m['suggest_seconds_p50_at_30'], ' s')} |"
        )
    lines += ["", "Mean score per k (one objective / two objectives):", ""]
    lines += ["| method | " + " | ".join(f"k = {k}" for k in ks) + " |"]
    lines += ["|---|" + "---|" * len(ks)]
    for name, m in methods.items():
        cells = []
        for k in ks:
            b = m["by_k"].get(k)
            cells.append(
                f"{_num(b['mean_score_single'])} / {_num(b['mean_score_two_objective'])}"
                if b and b.get("runs")
                else "-"
            )
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines += ["", "Per service (mean score; headroom and the default's run-to-run spread):", ""]
    lines += ["| service | headroom | spread | " + " | ".join(f"`{n}`" for n in methods) + " |"]
    lines += ["|---|---|---|" + "---|" * len(methods)]
    for s, info in sorted(q["services_scored"].items()):
        cells = [_num(m["by_service"].get(s)) for m in methods.values()]
        mark = "" if info["counted"] else " (not counted)"
        lines.append(
            f"| {s}{mark} | {_pct(info['headroom'])} | {_pct(info['default_cv'])} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("--")]
    path = Path(args[0]) if args else RESULTS / "quality.json"  # (make bench passes --quick)
    doc = json.loads(path.read_text())
    print(report_v2(doc) if "services_scored" in doc else report(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
