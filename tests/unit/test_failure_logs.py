"""Failure kinds from real engine logs: vLLM 0.32 on CPU refusing bad combinations (captured by
tools/capture_vllm_failures.py into tests/data/vllm/), and the embedded engine's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scoot.domain import FailureKind
from scoot.engine.launcher import classify_exit

DATA = Path(__file__).parents[1] / "data" / "vllm"
CASES = json.loads((DATA / "cases.json").read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_real_vllm_startup_failures_are_classified(name: str) -> None:
    case = CASES[name]
    log = (DATA / f"{name}.log").read_text()
    failure = classify_exit(case["exit_code"], log)
    assert failure.kind is FailureKind(case["expected"]), failure.message
    # The excerpt is the line that proves it, not the traceback's last frame.
    assert failure.message.strip()
    assert "Traceback" not in failure.message


def test_a_crash_without_a_known_message_is_a_startup_crash() -> None:
    failure = classify_exit(1, "Segmentation fault (core dumped)\n")
    assert failure.kind is FailureKind.STARTUP_CRASH
    assert "status 1" in failure.message
