"""A store with fixed contents, for snapshots that must not change from run to run."""

from __future__ import annotations

import textwrap
from pathlib import Path

from scoot.domain import Config, FailureKind, Metrics, StudyState, TrialState
from scoot.engine.exporters import vllm_serve_command
from scoot.engine.launcher import ProcessRef
from scoot.jobs.store import Store
from scoot.study import parse_study

RECORDED = ProcessRef("a-host", 4321, "boot/1")
"""The process a fake trial ran in: another host's, so nothing here ever signals it."""

SPEC = """
name = "{name}"
objectives = {objectives}
budget = 8
seed = 0
gpu_sets = ["0", "1"]

[engine]
kind = "embedded"
model = "Qwen/Qwen3-8B"
gpu = "h100"
args = ["--max-model-len", "8192"]

[trace]
file = "{trace}"
rate = 8.0
duration_s = 60

[params.max_num_seqs]
type = "int"
low = 8
high = 512
log = true
default = 256

[params.max_num_batched_tokens]
type = "int"
low = 512
high = 16384
log = true
default = 2048
"""

# (seqs, tokens, ttft, tpot, p95, req/s) or a failure kind
ROWS: list[tuple[int, int, float, float, float, float] | tuple[int, int, str]] = [
    (256, 2048, 180.0, 24.0, 5400.0, 7.9),
    (16, 512, "kv_cache_too_small"),
    (64, 8192, 95.0, 28.5, 4900.0, 7.95),
    (128, 4096, 120.0, 23.1, 4700.0, 7.97),
    (400, 16000, 70.0, 33.0, 6100.0, 7.8),
    (32, 1024, "startup_oom"),
    (200, 3000, 140.0, 22.4, 4650.0, 7.98),
]


def metrics(ttft: float, tpot: float, p95: float, rps: float) -> Metrics:
    z: dict[str, float] = {"completed": 480, "duration_s": 60.0}
    z.update(mean_ttft_ms=ttft, median_ttft_ms=ttft * 0.9, p95_ttft_ms=ttft * 2.1)
    z.update(p99_ttft_ms=ttft * 3, mean_tpot_ms=tpot, median_tpot_ms=tpot, p95_tpot_ms=tpot * 1.3)
    z.update(p99_tpot_ms=tpot * 1.6, mean_e2el_ms=p95 / 2, median_e2el_ms=p95 / 2.2)
    z.update(p95_e2el_ms=p95, p99_e2el_ms=p95 * 1.2, request_throughput=rps)
    z.update(output_throughput=rps * 200, mean_itl_ms=tpot, median_itl_ms=tpot)
    z.update(p95_itl_ms=tpot * 1.4, p99_itl_ms=tpot * 2)
    return Metrics.of(**z)


def fake_store(home: Path, *, two_objectives: bool = True) -> Path:
    """Write a store with one study of seven finished trials and one queued; returns ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    trace = home / "trace.jsonl"
    trace.write_text('{"input_length": 100, "output_length": 10}\n')
    objectives = '["ttft", "tpot"]' if two_objectives else '["p95_latency"]'
    name = "chat-h100" if two_objectives else "cls-h100"
    text = textwrap.dedent(SPEC.format(name=name, objectives=objectives, trace=trace))
    import tomllib

    spec = parse_study(tomllib.loads(text), str(home / "study.toml"), home)
    store = Store(home / "scoot.db")
    study, _ = store.open_study(spec.name, spec.to_json(), "study.toml")
    for i, row in enumerate(ROWS):
        config = Config.of({"max_num_seqs": row[0], "max_num_batched_tokens": row[1]})
        t = store.add_trial(study.id, config, "default" if i == 0 else "scoot-sobo")
        store.claim(t.id, str(i % 2), RECORDED)
        command = vllm_serve_command(spec.engine.model, list(spec.engine.args), config.as_dict())
        store.mark_running(t.id, str(i % 2), RECORDED, command, "")
        if len(row) == 3:
            store.finish(t.id, TrialState.FAILED, failure=FailureKind(row[2]), message=row[2])
        else:
            _, _, ttft, tpot, p95, rps = row
            store.finish(t.id, TrialState.COMPLETED, metrics=metrics(ttft, tpot, p95, rps))
    store.add_trial(
        study.id, Config.of({"max_num_seqs": 96, "max_num_batched_tokens": 6000}), "scoot-sobo"
    )
    store.set_study_state(study.id, StudyState.PAUSED)
    store.close()
    return home
