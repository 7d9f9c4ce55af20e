"""The design's one-way layering, checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest


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
        ("scoot.jobs.driver", {"textual", "torch"}),
    ],
)
def test_layers_do_not_pull_in_what_they_must_not(module: str, forbidden: set[str]) -> None:
    assert not loaded_after(module) & forbidden
