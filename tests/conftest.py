"""Shared fixtures: every test gets its own SCOOT_HOME, and small study files on demand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[str]:
    """One private PostgreSQL server for the session (tests/pg_server.py)."""
    from pg_server import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_at(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a store test's store lives: a SQLite file, then a fresh PostgreSQL database; a
    test taking it runs against both back ends."""
    if request.param == "sqlite":
        return tmp_path / "store" / "scoot.db"
    from pg_server import fresh_database

    return fresh_database(request.getfixturevalue("pg_admin"))
