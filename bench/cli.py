"""Start-up of the command line (issue 13): how long ``scoot --help`` takes, and what it loads.

Writes bench/results/cli.json and prints it as the last line.

- ``cli_help_seconds``: median wall time of ``scoot --help`` in a fresh interpreter (the
  console script's own start-up included), target <= 0.5 s; ``cli_help_seconds_max`` the
  slowest run;
- ``heavy_modules_loaded``: which of the optimizer, HTTP client, queue, console and TUI
  libraries ``import scoot.cli`` loads (none: every command imports what it uses).

``--quick``: 5 runs instead of 25.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import finish, header, parse_args

HEAVY = ("torch", "hebo", "scipy", "sklearn", "aiohttp", "huey", "rich", "textual")
SCOOT = Path(sys.executable).with_name("scoot")


def main() -> int:
    ns = parse_args(__doc__)
    runs = 5 if ns.quick else 25
    subprocess.run([str(SCOOT), "--help"], capture_output=True, check=True)  # warm the caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(SCOOT), "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    code = "import sys, scoot.cli; print(' '.join(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    roots = {m.split(".")[0] for m in loaded}
    out = header(ns.quick) | {
        "runs": runs,
        "cli_help_seconds": round(statistics.median(times), 3),
        "cli_help_seconds_max": round(max(times), 3),
        "cli_help_target_seconds": 0.5,
        "heavy_modules_loaded": sorted(roots & set(HEAVY)),
    }
    return finish("cli", out)


if __name__ == "__main__":
    sys.exit(main())
