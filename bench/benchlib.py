"""What every bench script shares: its command line, the machine line, the result file."""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def tune(
    suggester: Any,
    space: Any,
    history: list[Any],
    budget: int,
    k: int,
    rng: Any,
    observe: Callable[[Any], Any],
) -> tuple[list[tuple[int, float]], list[str]]:
    """Rounds of ``k`` suggestions until ``history`` holds ``budget`` observations; ``observe``
    turns a config into its observation. Returns (observations before the round, seconds of
    ``suggest``) for the rounds after the initial design, and the rounds' errors (a numerical
    failure costs the round, Sobol standing in, not the whole bench)."""
    import time

    from scoot.optim.sobol import SobolSuggester
    from scoot.optim.space import initial_design_size

    n_init = initial_design_size(space)
    rounds: list[tuple[int, float]] = []
    errors: list[str] = []
    while len(history) < budget:
        n = min(k, budget - len(history))
        t0 = time.perf_counter()
        try:
            out = suggester.suggest(history, n, rng)
        except Exception as exc:
            errors.append(f"{len(history)}: {exc!r}"[:300])
            out = SobolSuggester(space).suggest(history, n, rng)
        dt = time.perf_counter() - t0
        if len(history) >= n_init:
            rounds.append((len(history), dt))
        if not out:
            break
        for s in out:
            history.append(observe(s.config))
    return rounds, errors


def parse_args(doc: str | None, argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smaller run, under 2 minutes")
    return p.parse_args(argv)


def header(quick: bool) -> dict[str, Any]:
    """The keys every result starts with: where it ran, and whether it was the quick run."""
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    return {"machine": machine, "quick": quick}


def finish(name: str, out: dict[str, Any]) -> int:
    """Write ``bench/results/NAME.json`` and print the result as the last line."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    print(json.dumps(out, sort_keys=True))
    return 0


def start_embedded(model: str, flags: list[str], log_path: Path) -> Any:
    """A ready embedded engine process (``scoot-engine serve``) on a free loopback port."""
    import sys

    from scoot.engine.launcher import EngineProcess, free_port

    port = free_port()
    argv = [sys.executable, "-m", "scoot.engine.embedded", "serve", model, "--port", str(port)]
    argv += ["--startup-seconds", "0.2", *flags]
    engine = EngineProcess(argv, gpu_set="0", port=port, log_path=log_path)
    failure = engine.wait_ready(60, model)
    if failure is not None:
        engine.stop(3)
        raise RuntimeError(f"embedded engine did not start: {failure.message}")
    return engine


def read_runs(path: Path, budget: int) -> dict[tuple[str, str, int, int], dict[str, Any]]:
    """A quality benchmark's run log: (method, service, seed, k) -> run, for ``budget``."""
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            run = json.loads(line)
            if run.get("budget") == budget:
                out[(run["method"], run["service"], run["seed"], run["k"])] = run
    return out


def per_method(
    runs: list[dict[str, Any]],
    methods: Sequence[str],
    block: Callable[[list[dict[str, Any]]], dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """``block`` of each method's runs, with ``by_k`` (the same per k) and ``by_service``
    (mean score per service)."""
    out: dict[str, dict[str, Any]] = {}
    for m in methods:
        rs = [r for r in runs if r["method"] == m]
        if not rs:
            continue
        entry = block(rs)
        entry["by_k"] = {
            str(k): block([r for r in rs if r["k"] == k]) for k in sorted({r["k"] for r in rs})
        }
        entry["by_service"] = {
            s: round(
                sum(r["score"] for r in rs if r["service"] == s)
                / sum(1 for r in rs if r["service"] == s),
                4,
            )
            for s in sorted({r["service"] for r in rs})
        }
        out[m] = entry
    return out


def run_logged(
    run_one: Callable[[Any], dict[str, Any]],
    todo: Sequence[Any],
    log: Path,
    done: dict[tuple[str, str, int, int], dict[str, Any]],
    workers: int,
    key: Callable[[dict[str, Any]], tuple[str, str, int, int]] | None = None,
) -> None:
    """Run ``todo`` on ``workers`` processes, appending each finished run to ``log`` at once
    (a crash or a kill loses only the runs in flight) and to ``done`` under ``key(run)``
    (method, service, seed, k by default)."""
    from concurrent.futures import ProcessPoolExecutor

    def by_method(run: dict[str, Any]) -> tuple[str, str, int, int]:
        return (run["method"], run["service"], run["seed"], run["k"])

    with ProcessPoolExecutor(max_workers=workers) as pool, log.open("a") as fh:
        for run in pool.map(run_one, todo, chunksize=1):
            fh.write(json.dumps(run) + "\n")
            fh.flush()
            done[(key or by_method)(run)] = run


def complete_runs(
    runs: list[dict[str, Any]], needed: Callable[[int], set[str]]
) -> tuple[list[dict[str, Any]], int]:
    """The runs of the (service, seed, k) cells where every method ``needed(k)`` finished
    (comparisons over the same draws), and how many such cells there are."""
    cells: dict[tuple[str, int, int], set[str]] = {}
    for r in runs:
        cells.setdefault((r["service"], r["seed"], r["k"]), set()).add(r["method"])
    complete = {c for c, ms in cells.items() if ms >= needed(c[2])}
    return [r for r in runs if (r["service"], r["seed"], r["k"]) in complete], len(complete)
