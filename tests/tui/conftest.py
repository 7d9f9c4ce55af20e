"""A store filled by a real short study (embedded engine, foreground driver), built once."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import TINY_ROWS, study_text, write_trace


@pytest.fixture(scope="session")
def real_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose store holds a finished two-objective study over two GPU sets,
    with one re-test of the winner."""
    root = tmp_path_factory.mktemp("tui-real")
    trace = write_trace(root / "trace.jsonl", TINY_ROWS)
    study = root / "tui.toml"
    study.write_text(
        study_text(
            name="tui",
            budget=5,
            duration=1.5,
            startup=0.2,
            trace=trace,
            robust=1,
            objectives=("ttft", "tpot"),
            gpu_sets=("0", "1"),
            lateness=1000.0,
        )
    )
    home = root / "home"
    done = subprocess.run(
        [sys.executable, "-m", "scoot", "--data-dir", str(home), "tune", str(study)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    return home


@pytest.fixture
def data_dir(real_store: Path, tmp_path: Path) -> Path:
    """A private copy of the real store (commands in a test change it)."""
    copy = tmp_path / "home"
    shutil.copytree(real_store, copy)
    return copy
