"""Shared fixtures: every test gets its own SCOOT_HOME, and small study files on demand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import TINY_ROWS, study_text, write_trace


@pytest.fixture(autouse=True)
def scoot_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "scoot-home"
    monkeypatch.setenv("SCOOT_HOME", str(home))
    return home


@pytest.fixture
def tiny_trace(tmp_path: Path) -> Path:
    return write_trace(tmp_path / "tiny.jsonl", TINY_ROWS)


@pytest.fixture
def make_study(tmp_path: Path, tiny_trace: Path) -> Callable[..., Path]:
    def make(
        name: str = "t",
        budget: int = 4,
        duration: float = 1.5,
        startup: float = 0.2,
        extra: str = "",
        robust: int = 0,
        objectives: tuple[str, ...] = ("p95_latency",),
        gpu_sets: tuple[str, ...] = ("0",),
        folder: Path | None = None,
        trace: Path | None = None,
        lateness: float = 1000.0,
    ) -> Path:
        path = (folder or tmp_path) / f"{name}.toml"
        text = study_text(
            name=name,
            budget=budget,
            duration=duration,
            startup=startup,
            trace=trace or tiny_trace,
            robust=robust,
            objectives=objectives,
            gpu_sets=gpu_sets,
            lateness=lateness,
        )
        path.write_text(text + extra)
        return path

    return make
