"""Evaluate every grid point of every service in bench/services.toml; write bench/grids/*.json.

Each evaluation is a full virtual-time stress test of the embedded engine (deterministic: same
workload, same config, same result), so the grid gives each service's exact optimum. Runs on all
cores; about 10-20 minutes for the suite on a 2-core machine. ``--only NAME`` limits it to one
service.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from suite import Service, evaluate, grid_path, key, load_suite

_SERVICES: dict[str, Service] = {}


def _one(job: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    name, config = job
    if not _SERVICES:
        _SERVICES.update({s.name: s for s in load_suite()})
    return key(config), evaluate(_SERVICES[name], config)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", action="append", default=[])
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    services = [s for s in load_suite() if not args.only or s.name in args.only]
    with Pool(args.jobs) as pool:
        for s in services:
            t0 = time.perf_counter()
            configs = s.configs()
            default = s.default_config()
            if key(default) not in {key(c) for c in configs}:
                configs.append(default)
            results = dict(pool.map(_one, [(s.name, c) for c in configs], chunksize=4))
            doc = {
                "service": s.name,
                "default": key(default),
                "objectives": [o.value for o in s.objectives],
                "seconds": round(time.perf_counter() - t0, 1),
                "results": results,
            }
            grid_path(s).write_text(json.dumps(doc, indent=0, sort_keys=True) + "\n")
            ok = sum(1 for r in results.values() if r["ok"])
            print(
                f"{s.name}: {len(results)} configs, {ok} feasible, {doc['seconds']} s", flush=True
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
