"""The design's one-way layering, checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def loaded_after(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in out.stdout.split()}


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("scoot.domain", {"numpy", "textual", "huey", "aiohttp", "torch"}),
        ("scoot.optim.sobol", {"textual", "huey", "aiohttp"}),
        ("scoot.engine.embedded.core", {"textual", "huey", "torch", "hebo", "aiohttp"}),
        ("scoot.stress.client", {"textual", "huey", "torch"}),
        ("scoot.jobs.foreground", {"textual"}),
        ("scoot.jobs.control", {"textual", "torch", "hebo"}),
        ("scoot.jobs.views", {"huey", "torch", "hebo", "aiohttp"}),
        # `scoot --help` starts fast: no console library, optimizer, HTTP client or queue.
        ("scoot.cli", {"rich", "torch", "hebo", "scipy", "sklearn", "aiohttp", "huey", "textual"}),
    ],
)
def test_layers_do_not_pull_in_what_they_must_not(module: str, forbidden: set[str]) -> None:
    assert not loaded_after(module) & forbidden


def test_import_contracts_hold() -> None:
    """The contracts of pyproject's [tool.importlinter]: the layers, only jobs imports huey,
    only tui imports textual, optim does no I/O, stress leaves the embedded engine alone, the
    TUI goes through jobs and domain, and no module circles."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:]
