"""``scoot report``: the page a browser renders, checked in headless Chromium (Debian's
package, installed by tools/debian-packages): not blank, every plot decoded."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fake_store import fake_store
from helpers import CHROMIUM_FLAGS


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("chromium")
    assert exe is not None, "chromium is missing: tools/debian-packages installs it"
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def report(home: Path, name: str, out: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "scoot", "--data-dir", str(home), "report", name, "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote {out / 'index.html'}" in done.stdout
    return out / "index.html"


@pytest.mark.parametrize("two", [True, False], ids=["ttft+tpot", "p95"])
def test_the_report_renders_with_every_plot_loaded(tmp_path: Path, two: bool) -> None:
    from PIL import Image

    home = fake_store(tmp_path / "home", two_objectives=two)
    page = report(home, "chat-h100" if two else "cls-h100", tmp_path / "report")
    text = page.read_text()
    # Self-contained: nothing fetched from elsewhere.
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", text)
    assert "Best vs default" in text and "Deploy trial" in text and "vllm serve" in text
    if two:
        assert "the front: 7 deployable points" in text
    else:
        assert "trial 7 beats the default: p95_latency +14.6%" in text
    expected = text.count("class='plot'")
    assert expected >= (6 if two else 4)
    dom = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    marked = re.search(r'<body[^>]*data-plots="(\d+)/(\d+)"', dom.stdout)
    assert marked is not None, dom.stderr[-2000:]
    assert marked.groups() == (str(expected), str(expected))  # every plot decoded
    shot = tmp_path / "shot.png"
    chromium(tmp_path, "--window-size=1200,1800", f"--screenshot={shot}", page.as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert int(pixels.max()) - int(pixels.min()) > 100  # not a blank page
    assert (pixels < 128).mean() > 0.005  # text and plots, not a few stray pixels


def test_report_of_an_unknown_study_is_one_clear_error(tmp_path: Path) -> None:
    home = fake_store(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, "-m", "scoot", "--data-dir", str(home), "report", "nope", "-o", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "no study named 'nope'" in done.stderr
    assert not (tmp_path / "x").exists()
