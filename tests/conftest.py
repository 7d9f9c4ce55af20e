"""Shared fixtures: every test gets its own SCOOT_HOME, and small study files on demand."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def scoot_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "scoot-home"
    monkeypatch.setenv("SCOOT_HOME", str(home))
    return home


def write_trace(path: Path, rows: list[tuple[int, int]]) -> Path:
    path.write_text(
        "".join(json.dumps({"input_length": i, "output_length": o}) + "\n" for i, o in rows)
    )
    return path


@pytest.fixture
def tiny_trace(tmp_path: Path) -> Path:
    rows = [(200 + 37 * (k % 7), 8 + 3 * (k % 5)) for k in range(40)]
    return write_trace(tmp_path / "tiny.jsonl", rows)


STUDY = """
name = "{name}"
objectives = ["p95_latency"]
budget = {budget}
seed = 1
constraints = ["max_num_batched_tokens >= max_num_seqs"]

[engine]
kind = "embedded"
model = "llama-3.1-8b"
gpu = "h100"
args = ["--max-model-len", "4096"]
startup_timeout_s = 30
stop_grace_s = 3
env = {{ SCOOT_ENGINE_STARTUP_S = "{startup}" }}

[trace]
file = "{trace}"
rate = 8.0
duration_s = {duration}

[stress]
request_timeout_s = 10
drain_timeout_s = 10
robustness_runs = {robust}

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

[params.enable_prefix_caching]
type = "bool"
default = true
"""


@pytest.fixture
def make_study(tmp_path: Path, tiny_trace: Path) -> Callable[..., Path]:
    def make(
        name: str = "t",
        budget: int = 4,
        duration: float = 1.5,
        startup: float = 0.2,
        extra: str = "",
        robust: int = 0,
    ) -> Path:
        path = tmp_path / f"{name}.toml"
        text = STUDY.format(
            name=name,
            budget=budget,
            duration=duration,
            startup=startup,
            trace=tiny_trace,
            robust=robust,
        )
        path.write_text(textwrap.dedent(text) + extra)
        return path

    return make
