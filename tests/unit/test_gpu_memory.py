"""The GPU-memory-released check after an engine stops, against a stand-in nvidia-smi."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from scoot.engine.launcher import gpu_memory_used_mib, wait_gpu_memory_released


def fake_smi(folder: Path, lines: str) -> None:
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '{lines}'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_no_nvidia_smi_means_nothing_to_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert gpu_memory_used_mib("0") is None
    assert wait_gpu_memory_released("0", timeout=0.1) is None


def test_held_memory_is_reported_released_memory_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    fake_smi(tmp_path, "0, 300\\n1, 70000\\n2, 12\\n")
    assert gpu_memory_used_mib("0,1") == {0: 300, 1: 70000}
    assert wait_gpu_memory_released("0,2", timeout=0.2, poll=0.05) is None
    held = wait_gpu_memory_released("1", timeout=0.2, poll=0.05)
    assert held == "GPU 1: 70000 MiB"
