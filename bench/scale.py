"""Scale-out on real servers (issue 20): one study, 4 GPU sets, 2 workers, 3 worker kills, on
SQLite and on PostgreSQL.

Writes bench/results/scale.json and prints it as its last line. Per back end, a 60-trial study
of the embedded engine (1 s stress tests) runs on GPU sets A:0 A:1 B:0 B:1, worker A serving
the A sets and worker B the B sets:

- ``sqlite``: the default layout on one machine: both workers share one data directory (the
  SQLite store and the SQLite queue in it);
- ``postgresql``: a private PostgreSQL server and a ``redis-server`` on loopback, the two
  workers playing two hosts (``SCOOT_HOST_ID`` A and B, separate data directories).

At three points of the run (after a seeded random number of counted trials in each third of
the budget, once the chosen worker runs a trial), a seeded random worker is SIGKILLed in the
middle of its trial and started again at once. Figures per back
end: ``wall_s`` (from the hand-off to the study's completion), ``trials_per_min`` (counted
trials over that time), ``store_ops_per_trial`` (SQL statements every process sent, counted by
scoot.jobs.backends with ``$SCOOT_STORE_OPS_DIR``; a killed process loses at most 50 of its
count), ``lost`` (budget minus counted trials) and ``doubled`` (trial numbers twice, or counted
trials beyond the budget), ``abandoned`` (the trials the kills interrupted, run again).
``--quick``: 16 trials, one kill.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))

from benchlib import finish, header, parse_args  # noqa: E402

from helpers import TINY_ROWS, redis_server, study_text, write_trace  # noqa: E402
from pg_server import fresh_database, postgres_server  # noqa: E402
from scoot.domain import TrialState  # noqa: E402
from scoot.jobs.store import Store  # noqa: E402

SETS = {"A": ("A:0", "A:1"), "B": ("B:0", "B:1")}
TIMEOUT_S = 600
"""A run that has not completed by then is reported as incomplete, with its state and the end
of each worker's log (once seen: a quick PostgreSQL run that never completed)."""


class Workers:
    """The two worker processes, each restartable with the same identity."""

    def __init__(self, envs: dict[str, dict[str, str]], queue: list[str], logs: Path) -> None:
        self.envs = envs
        self.queue = queue
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.starts = 0

    def start(self, name: str) -> None:
        self.starts += 1
        log = (self.logs / f"worker-{name}-{self.starts}.log").open("wb")
        argv = [sys.executable, "-m", "scoot", "worker", *self.queue, "--gpu-sets", *SETS[name]]
        self.procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=self.envs[name]
        )

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_backend(kind: str, budget: int, kills: int, seed: int, tmp: Path) -> dict[str, Any]:
    work = tmp / kind
    work.mkdir()
    ops = work / "ops"
    ops.mkdir()
    trace = write_trace(work / "trace.jsonl", TINY_ROWS)
    study = work / "scale.toml"
    study.write_text(
        study_text(
            name="scale",
            budget=budget,
            duration=1.0,
            startup=0.2,
            trace=trace,
            robust=0,
            objectives=("p95_latency",),
            gpu_sets=(*SETS["A"], *SETS["B"]),
            lateness=1000.0,
        )
    )
    base = {**os.environ, "SCOOT_STORE_OPS_DIR": str(ops)}
    with contextlib.ExitStack() as stack:
        if kind == "postgresql":
            admin = stack.enter_context(postgres_server())
            url = fresh_database(admin)
            queue = ["--queue", stack.enter_context(redis_server(work))]
            location: str | Path = url
            envs = {
                name: {
                    **base,
                    "SCOOT_HOME": str(work / f"home-{name}"),
                    "SCOOT_HOST_ID": f"host{name}",
                    "SCOOT_STORE": url,
                }
                for name in SETS
            }
            control = {**base, "SCOOT_HOME": str(work / "home-control"), "SCOOT_STORE": url}
        else:
            shared = work / "home"
            location = shared / "scoot.db"
            queue = []
            envs = {name: {**base, "SCOOT_HOME": str(shared)} for name in SETS}
            control = {**base, "SCOOT_HOME": str(shared)}
        workers = Workers(envs, queue, work)
        for name in SETS:
            workers.start(name)
        stack.callback(workers.stop)
        rng = random.Random(seed)
        thirds = [budget * i // kills for i in range(kills + 1)]
        points = [
            rng.randint(thirds[i] + 1, max(thirds[i] + 1, thirds[i + 1] - 2)) for i in range(kills)
        ]
        victims = [rng.choice(sorted(SETS)) for _ in range(kills)]
        t0 = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "scoot", "tune", str(study), "--detach", *queue],
            check=True,
            capture_output=True,
            env=control,
            timeout=120,
        )
        done_kills: list[dict[str, Any]] = []
        state = ""
        while time.monotonic() - t0 < TIMEOUT_S:
            counted, state, running = progress(location)
            if state == "completed":
                break
            victim = victims[len(done_kills)] if len(done_kills) < kills else ""
            # Kill mid-trial: once past the point, when the victim runs one.
            if victim and counted >= points[len(done_kills)] and set(SETS[victim]) & running:
                workers.kill(victim)
                workers.start(victim)
                done_kills.append({"after_trials": counted, "worker": victim})
            time.sleep(0.2)
        wall = time.monotonic() - t0
        workers.stop()
        stuck = []
        if state != "completed":
            stuck = [
                f"{log.name}: " + " | ".join(log.read_text(errors="replace").splitlines()[-5:])
                for log in sorted(work.glob("worker-*.log"))
            ]
        final = Store(location)
        trials = final.trials(1)
        final.close()
    counted_trials = [t for t in trials if t.counts]
    numbers = [t.number for t in trials]
    ops_total = sum(int(p.read_text() or 0) for p in ops.iterdir())
    return {
        "completed": state == "completed",
        "wall_s": round(wall, 1),
        "trials_per_min": round(len(counted_trials) / (wall / 60), 2),
        "store_ops_per_trial": round(ops_total / max(1, len(counted_trials)), 1),
        "counted": len(counted_trials),
        "lost": max(0, budget - len(counted_trials)),
        "doubled": (len(numbers) - len(set(numbers))) + max(0, len(counted_trials) - budget),
        "abandoned": sum(t.state is TrialState.ABANDONED for t in trials),
        "kills": done_kills,
        "state": state,
        "worker_log_ends": stuck,
    }


def progress(location: str | Path) -> tuple[int, str, set[str]]:
    """Counted trials, the study's state, and the GPU sets running a trial now."""
    try:
        store = Store(location)
    except Exception:
        return 0, "", set()
    try:
        study = store.study("scale")
        if study is None:
            return 0, "", set()
        trials = store.trials(study.id)
        running = {t.gpu_set for t in trials if t.state is TrialState.RUNNING and t.gpu_set}
        return sum(t.counts for t in trials), str(study.state), running
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)
    budget, kills = (16, 1) if args.quick else (60, 3)
    out: dict[str, Any] = header(args.quick)
    out.update({"budget": budget, "gpu_sets": 4, "workers": 2, "kills_planned": kills})
    with tempfile.TemporaryDirectory() as tmp:
        for seed, kind in enumerate(("sqlite", "postgresql")):
            out[kind] = run_backend(kind, budget, kills, seed, Path(tmp))
            print(kind, out[kind], flush=True)
    out["zero_lost_or_doubled"] = all(
        out[k]["completed"] and out[k]["lost"] == 0 and out[k]["doubled"] == 0
        for k in ("sqlite", "postgresql")
    )
    return finish("scale" + ("_quick" if args.quick else ""), out)


if __name__ == "__main__":
    raise SystemExit(main())
