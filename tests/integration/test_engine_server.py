"""The embedded engine as a real process: start-up, streaming, crashes with vLLM's wording."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from scoot.engine.launcher import EngineProcess, free_port
from scoot.stress.arrivals import schedule
from scoot.stress.client import StressPlan, run_stress_sync
from scoot.stress.metrics import compute
from scoot.stress.traces import TraceRequest

ENGINE = [sys.executable, "-m", "scoot.engine.embedded", "serve"]


def _start(tmp_path: Path, *flags: str) -> EngineProcess:
    port = free_port()
    argv = [
        *ENGINE,
        "llama-3.1-8b",
        "--gpu",
        "h100",
        "--port",
        str(port),
        "--startup-seconds",
        "0.2",
        *flags,
    ]
    return EngineProcess(argv, gpu_set="0", port=port, log_path=tmp_path / "engine.log")


def test_serves_streams_and_stops(tmp_path: Path) -> None:
    engine = _start(tmp_path, "--max-model-len", "4096")
    try:
        assert engine.wait_ready(30, "llama-3.1-8b") is None
        with urllib.request.urlopen(engine.base_url + "/v1/models") as r:
            assert json.load(r)["data"][0]["max_model_len"] == 4096
        reqs = [TraceRequest(300 + i, 20) for i in range(12)]
        result = run_stress_sync(
            StressPlan(engine.base_url, "llama-3.1-8b", reqs, schedule(12, 6.0, seed=1))
        )
        m = compute(result.records, result.duration)
        assert result.aborted is None
        assert (m.completed, m.failed, m.total_output_tokens) == (12, 0, 240)
        # H100 decode of an 8B model is ~6-7 ms a step; HTTP adds little.
        assert 4.0 < m.mean_tpot_ms < 20.0
        assert m.mean_ttft_ms < 200.0
        # The client read the engine's /metrics around the run: 12 prompts, no preemption.
        assert result.engine["preemptions"] == 0
        assert result.engine["requests_running_peak"] >= 1
        assert 0 <= result.engine["prefix_cache_hit_rate"] < 1
        with urllib.request.urlopen(engine.base_url + "/metrics") as r:
            text = r.read().decode()
        assert "vllm:num_requests_running" in text and "vllm:kv_cache_usage_perc" in text
    finally:
        engine.stop(3)
    assert not engine.alive()


def test_too_long_request_is_shortened_or_refused_like_vllm(tmp_path: Path) -> None:
    """vLLM 0.32 shortens a completion to what the context leaves, and refuses a prompt that
    fills the context (tests/data/vllm_api.json has its answers)."""
    engine = _start(tmp_path, "--max-model-len", "1024")
    try:
        assert engine.wait_ready(30, "llama-3.1-8b") is None
        reqs = [TraceRequest(1000, 100), TraceRequest(1024, 10)]
        result = run_stress_sync(StressPlan(engine.base_url, "llama-3.1-8b", reqs, [0.0, 0.0]))
        shortened, refused = result.records
        assert shortened.success and shortened.output_tokens == 24
        assert "maximum context length is 1024 tokens" in refused.error
        assert "has 1024 input tokens" in refused.error
    finally:
        engine.stop(3)


@pytest.mark.parametrize(
    ("flags", "code", "needle"),
    [
        (
            ["--max-num-seqs", "512", "--max-num-batched-tokens", "256"],
            1,
            "must be greater than or equal to max_num_seqs",
        ),
        (["--block-size", "24"], 1, "invalid choice"),
        (["--bogus-flag", "1"], 2, "unrecognized arguments"),
        ([], 1, "KV cache is needed"),  # 128k context on an A10
    ],
)
def test_startup_failures(flags: list[str], code: int, needle: str) -> None:
    argv = [*ENGINE, "llama-3.1-8b", "--gpu", "a10", "--startup-seconds", "0.1", *flags]
    # It refuses at start-up (the timeout only bounds a hang; no speed is asserted).
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == code
    assert needle in proc.stdout + proc.stderr


def test_chat_endpoint_streams_text_prompts(tmp_path: Path) -> None:
    engine = _start(tmp_path, "--max-model-len", "4096")
    try:
        assert engine.wait_ready(30, "llama-3.1-8b") is None
        reqs = [TraceRequest(200, 12), TraceRequest(100, 1), TraceRequest(50, 7, prompt="hi")]
        result = run_stress_sync(
            StressPlan(engine.base_url, "llama-3.1-8b", reqs, [0.0, 0.05, 0.1], endpoint="chat")
        )
        m = compute(result.records, result.duration)
        assert (m.completed, m.failed, m.total_output_tokens) == (3, 0, 20)
        assert m.failures == {}
        assert 4.0 < m.mean_tpot_ms < 20.0
    finally:
        engine.stop(3)
