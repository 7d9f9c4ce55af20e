"""A store filled by a real short study (embedded engine, foreground driver), built once."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

STUDY = """
name = "tui"
objectives = ["ttft", "tpot"]
budget = 5
seed = 3
gpu_sets = ["0", "1"]
constraints = ["max_num_batched_tokens >= max_num_seqs"]

[engine]
kind = "embedded"
model = "llama-3.1-8b"
gpu = "h100"
args = ["--max-model-len", "4096"]
startup_timeout_s = 30
stop_grace_s = 3
env = {{ SCOOT_ENGINE_STARTUP_S = "0.2" }}

[trace]
file = "{trace}"
rate = 8.0
duration_s = 1.5

[stress]
request_timeout_s = 10
drain_timeout_s = 10
robustness_runs = 1

[params.max_num_seqs]
type = "int"
low = 4
high = 256
log = true
default = 256

[params.max_num_batched_tokens]
type = "int"
low = 256
high = 8192
log = true
default = 2048
"""


@pytest.fixture(scope="session")
def real_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose store holds a finished two-objective study."""
    root = tmp_path_factory.mktemp("tui-real")
    trace = root / "trace.jsonl"
    trace.write_text(
        "".join(
            f'{{"input_length": {200 + 37 * (k % 7)}, "output_length": {8 + 3 * (k % 5)}}}\n'
            for k in range(40)
        )
    )
    study = root / "tui.toml"
    study.write_text(textwrap.dedent(STUDY.format(trace=trace)))
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
