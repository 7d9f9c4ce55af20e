"""`scoot demo` end to end, as `make demo` runs it (issue 18: a gain that holds up).

Slow (about 3 minutes: twelve 12-second stress tests of the embedded engine in real time), so
marked ``slow`` with its own timeout. The demo's service was chosen for a gain well beyond the
run-to-run spread (the default's p95 5.4-6.4 s, the winner's 1.8-2.1 s on a 2-core machine):
the report must show the gain across the re-tests with its range, and not call it noise.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_the_demo_reports_a_gain_beyond_the_noise(tmp_path: Path) -> None:
    scoot = Path(sys.executable).with_name("scoot")
    out = subprocess.run(
        [str(scoot), "demo"], cwd=tmp_path, capture_output=True, text=True, timeout=840
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    line = next(x for x in text.splitlines() if x.startswith("gain over the default"))
    assert "no significant gain" not in line, line
    low = re.search(r"range ([+-][\d.]+)% to ([+-][\d.]+)%", line)
    assert low is not None, line
    assert float(low.group(1)) >= 20.0, line  # the worst pairing still gains a fifth
    assert "ready to run:" in text and "vllm serve Qwen/Qwen3-32B" in text
