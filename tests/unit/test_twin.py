"""The calibrated twin (issue 15, item 2): the embedded engine serving a profiled step table
with that engine's KV capacity, defaults and start-up refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import TWIN_MODEL as MODEL
from helpers import profiled_table as profiled
from scoot.engine.embedded.core import EngineArgs, EngineStartupError, SimRequest, simulate
from scoot.engine.embedded.twin import TwinError, load_twin
from scoot.stress.traces import TraceRequest
from scoot.virtual import replay


def test_a_twin_prices_steps_from_its_table_and_adds_the_clients_overhead(tmp_path: Path) -> None:
    args = EngineArgs(model=MODEL, table=profiled(tmp_path))
    (rec,) = simulate(args, [SimRequest(0.0, list(range(512)), 3)])
    assert rec is not None
    # One prefill step of 512 tokens, then two decode steps of one sequence.
    assert rec.first_token == pytest.approx((1.0 + 5.12) / 1e3)
    assert rec.finish - rec.first_token == pytest.approx(2 * 1.01 / 1e3)
    metrics, (record,) = replay(args, [TraceRequest(512, 3)], [0.0])
    assert record.ttft == pytest.approx(rec.first_token + 1.5e-3)
    assert metrics.median_ttft_ms == pytest.approx(1e3 * rec.first_token + 1.5)


def test_a_twin_takes_its_engines_defaults_and_kv_capacity(tmp_path: Path) -> None:
    table = profiled(tmp_path)
    resolved = EngineArgs(model=MODEL, table=table).resolved()
    assert (resolved.max_num_seqs, resolved.max_num_batched_tokens) == (128, 2048)
    assert resolved.max_model_len == 2048
    plan = resolved.plan()
    assert plan.kv_tokens == 8192
    assert plan.num_blocks == 64  # of the engine's own block size
    assert EngineArgs(model=MODEL, table=table, block_size=64).resolved().plan().num_blocks == 128
    # vLLM-CPU lowers its own max-num-seqs to a smaller budget given alone.
    lowered = EngineArgs(model=MODEL, table=table, max_num_batched_tokens=64).resolved()
    assert lowered.max_num_seqs == 64
    with pytest.raises(EngineStartupError, match="must be greater than or equal to"):
        EngineArgs(
            model=MODEL, table=table, max_num_seqs=128, max_num_batched_tokens=64
        ).resolved()
    small = profiled(tmp_path, kv_tokens=1024)
    with pytest.raises(EngineStartupError) as exc:
        EngineArgs(model=MODEL, table=small).resolved().plan()
    assert exc.value.kind == "kv_cache_too_small"


@pytest.mark.parametrize("block_size", [16, 48])
def test_a_twin_refuses_what_its_engine_refuses(tmp_path: Path, block_size: int) -> None:
    args = EngineArgs(model=MODEL, table=profiled(tmp_path), block_size=block_size)
    resolved = args.resolved()  # the refusal comes part-way through start-up, at the plan
    with pytest.raises(EngineStartupError) as exc:
        resolved.plan()
    assert exc.value.kind == "invalid_args"
    # vLLM-CPU's own words (the profile's message), with this configuration's value.
    assert str(exc.value) == (
        f"ValueError: No common block size for {block_size} (CPU_ATTN: [MultipleOf(32)])."
    )
    assert EngineArgs(model=MODEL, table=profiled(tmp_path), block_size=64).resolved().plan()


def test_a_table_that_cannot_serve_as_a_twin_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        EngineStartupError, match=r"other is not a model.*\(it profiles: /models/tiny-llama\)"
    ):
        EngineArgs(model="other", table=profiled(tmp_path)).resolved()
    broken = profiled(tmp_path, vocab="many")
    with pytest.raises(TwinError, match=r"models\./models/tiny-llama\[0\]\.twin\.vocab"):
        load_twin(broken)
    bad_kind = profiled(tmp_path, refuses=[{"unless": "block_size > 1", "kind": "explodes"}])
    with pytest.raises(TwinError, match=r"refuses\[0\]\.kind"):
        load_twin(bad_kind)
    shipped = tmp_path / "gpu.json"
    doc = json.loads(Path(profiled(tmp_path)).read_text())
    del doc["models"][MODEL][0]["twin"]
    shipped.write_text(json.dumps(doc))
    with pytest.raises(EngineStartupError, match="twin is missing"):
        EngineArgs(model=MODEL, table=str(shipped)).resolved()
    with pytest.raises(EngineStartupError, match="cannot read"):
        EngineArgs(model=MODEL, table=str(tmp_path / "none.json")).resolved()


def test_calibrating_on_one_loaded_run_recovers_its_step_scale(tmp_path: Path) -> None:
    """A 'real' engine that is the same twin running 1.5x slower with 4 ms more per request:
    calibrating the idle twin on one of its runs finds both, and the calibrated table then
    predicts another configuration of that engine."""
    from scoot.stress.arrivals import schedule
    from scoot.virtual import calibrated_table

    requests = [TraceRequest(300 + 40 * (i % 5), 20 + i % 7) for i in range(120)]
    offsets = schedule(len(requests), 40.0, seed=3)
    slow = profiled(tmp_path, step_scale=1.5, request_overhead_ms=5.5)
    real, _ = replay(EngineArgs(model=MODEL, table=slow), requests, offsets)
    idle = profiled(tmp_path)
    target = tmp_path / "calibrated.json"
    got = calibrated_table(
        EngineArgs(model=MODEL, table=idle),
        requests,
        offsets,
        real.mean_tpot_ms,
        real.mean_ttft_ms,
        target,
    )
    assert got["step_scale"] == pytest.approx(1.5, rel=0.02)
    assert got["request_overhead_ms"] == pytest.approx(5.5, abs=0.5)
    assert load_twin(str(target)).facts[MODEL].step_scale == pytest.approx(1.5, rel=0.02)
    want, _ = replay(EngineArgs(model=MODEL, table=slow, max_num_seqs=2), requests, offsets)
    pred, _ = replay(EngineArgs(model=MODEL, table=str(target), max_num_seqs=2), requests, offsets)
    assert pred.p95_e2el_ms == pytest.approx(want.p95_e2el_ms, rel=0.05)


def test_scoot_engine_calibrate_uses_the_studys_default_run(
    make_study: Callable[..., Path], tmp_path: Path
) -> None:
    """`scoot engine calibrate TABLE --study NAME`: the default trial of a study of the real
    engine (here: the same twin 1.5x slower, 5.5 ms more per request) calibrates the idle
    table on that study's own workload."""
    from helpers import TWIN_MODEL
    from scoot.domain import TrialState
    from scoot.jobs.evaluate import build_workload
    from scoot.jobs.store import DEFAULT, Store
    from scoot.study import load_study

    idle = profiled(tmp_path)
    slow = profiled(tmp_path, step_scale=1.5, request_overhead_ms=5.5)
    path = make_study(name="real")
    text = path.read_text().replace('model = "llama-3.1-8b"', f'model = "{TWIN_MODEL}"')
    text = text.replace('args = ["--max-model-len", "4096"]', 'args = ["--max-model-len", "2048"]')
    path.write_text(text.replace('kind = "embedded"', f'kind = "embedded"\ntable = "{slow}"'))
    spec = load_study(path)
    default = spec.space().default()
    assert default is not None
    work = build_workload(spec)
    real, _ = replay(
        EngineArgs(model=TWIN_MODEL, table=slow, max_model_len=2048, **default.as_dict()),  # type: ignore[arg-type]
        work.requests,
        work.offsets,
    )
    store = Store(tmp_path / "home" / "scoot.db")
    study, _ = store.open_study("real", spec.to_json(), str(path))
    trial = store.add_trial(study.id, default, DEFAULT)
    store.finish(trial.id, TrialState.COMPLETED, metrics=real)
    store.close()
    target = tmp_path / "calibrated.json"
    argv = [sys.executable, "-m", "scoot", "--data-dir", str(tmp_path / "home"), "engine"]
    argv += ["calibrate", idle, "--study", "real", "-o", str(target)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "calibrated on trial 0 of 'real'" in done.stdout
    facts = load_twin(str(target)).facts[TWIN_MODEL]
    assert facts.step_scale == pytest.approx(1.5, rel=0.03)
    assert facts.request_overhead_ms == pytest.approx(5.5, abs=0.7)
    missing = subprocess.run([*argv[:7], idle, "--study", "nope", "-o", str(target)],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert missing.returncode == 2 and "no study named 'nope'" in missing.stderr
