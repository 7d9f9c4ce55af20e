"""A store with fixed contents, for snapshots that must not change from run to run."""

from __future__ import annotations

import textwrap
from pathlib import Path

from scoot.domain import Config, FailureKind, Metrics, StudyState, TrialState, Value
from scoot.engine.exporters import vllm_serve_command
from scoot.engine.launcher import ProcessRef
from scoot.jobs.store import Store
from scoot.study import parse_study

RECORDED = ProcessRef("a-host", 4321, "boot/1")
"""The process a fake trial ran in: another host's, so nothing here ever signals it."""

SPEC = """
name = "{name}"
objectives = {objectives}
budget = 14
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

[stress]
robustness_runs = 2

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

[params.enable_chunked_prefill]
type = "bool"
default = true

[params.enable_prefix_caching]
type = "bool"
default = true

[params.gpu_memory_utilization]
type = "float"
low = 0.8
high = 0.95
default = 0.9

[params.block_size]
type = "enum"
choices = [16, 32, 64]
default = 16

[params.long_prefill_token_threshold]
type = "int"
low = 0
high = 4096
default = 0

[params.max_num_active_seqs]
type = "int"
low = 8
high = 512
log = true
default = 256

[params.scheduling_policy]
type = "enum"
choices = ["fcfs", "priority"]
default = "fcfs"

[params.enforce_eager]
type = "bool"
default = false
"""

FLAGS = (
    "max_num_seqs",
    "max_num_batched_tokens",
    "enable_chunked_prefill",
    "enable_prefix_caching",
    "gpu_memory_utilization",
    "block_size",
    "long_prefill_token_threshold",
    "max_num_active_seqs",
    "scheduling_policy",
    "enforce_eager",
)

# The ten flags' values, then (ttft, tpot, p95, req/s) or a failure kind; the first row is
# the default.
Row = tuple[tuple[Value, ...], tuple[float, float, float, float] | str]
ROWS: list[Row] = [
    ((256, 2048, True, True, 0.9, 16, 0, 256, "fcfs", False), (180.0, 24.0, 5400.0, 7.9)),
    ((16, 512, True, False, 0.8, 32, 0, 16, "fcfs", False), "kv_cache_too_small"),
    ((64, 8192, True, True, 0.92, 16, 1024, 64, "fcfs", False), (95.0, 28.5, 4900.0, 7.95)),
    ((128, 4096, True, True, 0.88, 32, 512, 96, "priority", False), (120.0, 23.1, 4700.0, 7.97)),
    ((400, 16000, True, True, 0.95, 64, 4096, 400, "fcfs", True), (70.0, 33.0, 6100.0, 7.8)),
    ((32, 1024, True, False, 0.81, 16, 0, 32, "fcfs", True), "startup_oom"),
    ((200, 3000, True, True, 0.9, 16, 256, 160, "fcfs", False), (140.0, 22.4, 4650.0, 7.98)),
    ((96, 6000, True, True, 0.93, 32, 2048, 96, "priority", False), (88.0, 26.0, 4550.0, 7.99)),
    ((300, 9000, False, False, 0.85, 64, 0, 300, "fcfs", False), (230.0, 21.9, 5900.0, 7.85)),
    ((180, 12000, True, True, 0.91, 16, 3000, 128, "fcfs", True), (76.0, 30.1, 5200.0, 7.9)),
    ((48, 2500, True, True, 0.87, 32, 128, 48, "fcfs", False), (150.0, 25.5, 4800.0, 7.96)),
    ((140, 5000, True, True, 0.94, 16, 800, 140, "priority", False), (99.0, 24.2, 4600.0, 7.98)),
]
RETESTS = {7: [4610.0, 4680.0], 0: [5350.0, 5480.0]}
"""p95 of the re-tests (two arrival orders) of the one-objective winner and of the default."""


def metrics(ttft: float, tpot: float, p95: float, rps: float) -> Metrics:
    z: dict[str, float] = {"completed": 480, "duration_s": 60.0}
    z.update(mean_ttft_ms=ttft, median_ttft_ms=ttft * 0.9, p95_ttft_ms=ttft * 2.1)
    z.update(p99_ttft_ms=ttft * 3, mean_tpot_ms=tpot, median_tpot_ms=tpot, p95_tpot_ms=tpot * 1.3)
    z.update(p99_tpot_ms=tpot * 1.6, mean_e2el_ms=p95 / 2, median_e2el_ms=p95 / 2.2)
    z.update(p95_e2el_ms=p95, p99_e2el_ms=p95 * 1.2, request_throughput=rps)
    z.update(output_throughput=rps * 200, mean_itl_ms=tpot, median_itl_ms=tpot)
    z.update(p95_itl_ms=tpot * 1.4, p99_itl_ms=tpot * 2)
    return Metrics.of(**z)


def fake_store(
    home: Path, *, two_objectives: bool = True, store_at: str | Path | None = None
) -> Path:
    """Write a store with one study of twelve finished trials over ten flags (two failed),
    the re-tests of the winner and the default, and one queued, in ``store_at`` (default: the
    SQLite file in ``home``); returns ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    trace = home / "trace.jsonl"
    trace.write_text('{"input_length": 100, "output_length": 10}\n')
    objectives = '["ttft", "tpot"]' if two_objectives else '["p95_latency"]'
    name = "chat-h100" if two_objectives else "cls-h100"
    text = textwrap.dedent(SPEC.format(name=name, objectives=objectives, trace=trace))
    import tomllib

    spec = parse_study(tomllib.loads(text), str(home / "study.toml"), home)
    store = Store(store_at or home / "scoot.db")
    study, _ = store.open_study(spec.name, spec.to_json(), "study.toml")

    def run(config: Config, i: int, source: str, outcome: object, **retest: int | None) -> None:
        t = store.add_trial(study.id, config, source, **retest)
        store.claim(t.id, str(i % 2), RECORDED)
        command = vllm_serve_command(spec.engine.model, list(spec.engine.args), config.as_dict())
        store.mark_running(t.id, str(i % 2), RECORDED, command, "")
        if isinstance(outcome, str):
            store.finish(t.id, TrialState.FAILED, failure=FailureKind(outcome), message=outcome)
        elif isinstance(outcome, tuple):
            ttft, tpot, p95, rps = outcome
            store.finish(t.id, TrialState.COMPLETED, metrics=metrics(ttft, tpot, p95, rps))

    configs = [Config.of(dict(zip(FLAGS, values, strict=True))) for values, _ in ROWS]
    for i, (config, (_, outcome)) in enumerate(zip(configs, ROWS, strict=True)):
        run(config, i, "default" if i == 0 else "scoot-sobo", outcome)
    if not two_objectives:
        for of, p95s in RETESTS.items():
            measured = ROWS[of][1]
            assert isinstance(measured, tuple)
            ttft, tpot, _, rps = measured
            for seed, p95 in enumerate(p95s, start=1):
                source = f"robustness {seed} of {len(p95s)} (#{of})"
                run(configs[of], seed, source, (ttft, tpot, p95, rps), retest=seed, retest_of=of)
    queued: dict[str, Value] = dict(zip(FLAGS, ROWS[7][0], strict=True))
    queued["max_num_seqs"] = 112
    queued["max_num_active_seqs"] = 112
    store.add_trial(study.id, Config.of(queued), "scoot-sobo")
    store.set_study_state(study.id, StudyState.PAUSED)
    store.close()
    return home
