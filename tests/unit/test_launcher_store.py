from __future__ import annotations

from pathlib import Path

import pytest

from scoot.domain import Config, FailureKind, Metrics, StudyState, TrialState
from scoot.engine.exporters import vllm_serve_command
from scoot.engine.launcher import ProcessRef, build_argv, classify_exit, flags_for
from scoot.jobs.store import Store, StoreError


def test_flags() -> None:
    assert flags_for(
        {
            "max_num_seqs": 64,
            "enable_prefix_caching": False,
            "enable_chunked_prefill": True,
            "gpu_memory_utilization": 0.85,
        }
    ) == [
        "--enable-chunked-prefill",
        "--no-enable-prefix-caching",
        "--gpu-memory-utilization",
        "0.85",
        "--max-num-seqs",
        "64",
    ]


def test_argv_template_and_export() -> None:
    argv = build_argv(
        "vllm",
        (),
        {"model": "m", "host": "127.0.0.1", "port": "9", "gpu": "x"},
        ["--max-model-len", "8192"],
        {"max_num_seqs": 8},
    )
    assert argv == [
        "vllm",
        "serve",
        "m",
        "--host",
        "127.0.0.1",
        "--port",
        "9",
        "--max-model-len",
        "8192",
        "--max-num-seqs",
        "8",
    ]
    with pytest.raises(ValueError, match="placeholder"):
        build_argv("command", ["x", "{nope}"], {}, [], {})
    assert vllm_serve_command(
        "Qwen/Qwen3-8B", ["--max-model-len", "8192"], {"max_num_seqs": 8}
    ) == ("vllm serve Qwen/Qwen3-8B --max-model-len 8192 --max-num-seqs 8")


@pytest.mark.parametrize(
    ("code", "log", "kind"),
    [
        (
            1,
            "ValueError: No available memory for the cache blocks. Try increasing",
            FailureKind.KV_CACHE_TOO_SMALL,
        ),
        (
            1,
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
            FailureKind.STARTUP_OOM,
        ),
        (
            1,
            "ValueError: To serve at least one request with the models's max seq len (131072), "
            "(16.00 GiB KV cache is needed, which is larger than the available KV cache memory",
            FailureKind.KV_CACHE_TOO_SMALL,
        ),
        (
            2,
            "vllm serve: error: unrecognized arguments: --use-v2-block-manager",
            FailureKind.INVALID_ARGS,
        ),
        (
            1,
            "ValueError: max_num_batched_tokens (256) must be greater than or equal to "
            "max_num_seqs (512).",
            FailureKind.INVALID_ARGS,
        ),
        (-11, "Segmentation fault", FailureKind.STARTUP_CRASH),
    ],
)
def test_classify(code: int, log: str, kind: FailureKind) -> None:
    got = classify_exit(code, "INFO starting\n" + log + "\n")
    assert got.kind is kind
    assert got.message


def _metrics(p95: float) -> Metrics:
    return Metrics.of(completed=10, p95_e2el_ms=p95, duration_s=1.0)


def test_store_round_trip_and_reopen(store_at: str | Path) -> None:
    store = Store(store_at)
    study, created = store.open_study("a", '{"x": 1}')
    assert created
    t0 = store.add_trial(study.id, Config.of({"max_num_seqs": 8}), "default")
    t1 = store.add_trial(study.id, Config.of({"max_num_seqs": 16}), "sobol")
    assert (t0.number, t1.number, t0.state) == (0, 1, TrialState.QUEUED)
    store.mark_running(t0.id, "0", ProcessRef("h", 1234, "b/9"), "cmd", "log")
    assert store.trial(t0.id).engine == ProcessRef("h", 1234, "b/9")
    store.finish(t0.id, TrialState.COMPLETED, metrics=_metrics(5.0))
    store.finish(t1.id, TrialState.FAILED, failure=FailureKind.STARTUP_OOM, message="oom")
    with pytest.raises(StoreError, match="not running"):
        store.finish(t0.id, TrialState.FAILED)  # an outcome is never recorded twice
    store.close()

    again = Store(store_at)
    study2, created2 = again.open_study("a", '{"x": 1}')
    assert (study2.id, created2) == (study.id, False)
    obs = again.observations(study.id)
    assert [o.feasible for o in obs] == [True, False]
    assert obs[0].metrics is not None and obs[0].metrics.p95_e2el_ms == 5.0
    assert obs[1].failure is FailureKind.STARTUP_OOM
    with pytest.raises(StoreError, match="different definition"):
        again.open_study("a", '{"x": 2}')


OLD_SCHEMA = """
CREATE TABLE studies (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, spec_json TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '', state TEXT NOT NULL DEFAULT 'active',
    created_at REAL NOT NULL);
CREATE TABLE trials (id INTEGER PRIMARY KEY, study_id INTEGER NOT NULL, number INTEGER NOT NULL,
    config_json TEXT NOT NULL, source TEXT NOT NULL, state TEXT NOT NULL, failure_kind TEXT,
    failure_message TEXT, metrics_json TEXT, gpu_set TEXT, engine_pgid INTEGER, command TEXT,
    log_path TEXT, created_at REAL NOT NULL, started_at REAL, ended_at REAL, heartbeat_at REAL,
    UNIQUE (study_id, number));
INSERT INTO studies VALUES (1, 'old', '{}', '', 'paused', 0);
INSERT INTO trials (id, study_id, number, config_json, source, state, created_at)
    VALUES (1, 1, 0, '{"max_num_seqs": 8}', 'default', 'completed', 0),
           (2, 1, 1, '{"max_num_seqs": 8}', 'robustness 2 of 3 (#0)', 'queued', 0);
"""


def test_a_store_of_an_older_scoot_opens_with_every_row(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA)
    conn.close()
    store = Store(path)
    row = store.study("old")
    assert row is not None and row.state is StudyState.PAUSED and row.advanced_at is None
    default, retest = store.trials(row.id)
    assert (default.retest, default.stop_requested) == (None, False)
    assert (retest.retest, retest.retest_of) == (2, 0)  # read once from the old label
    assert not retest.counts
    store.close()


def test_an_invalid_run_and_its_retry_are_one_step(store_at: str | Path) -> None:
    """The retry of a run whose client fell behind is queued by the same transaction that
    records it abandoned: no advance step can see the study between the two (a race that
    once queued a config of its own beside the retry). An operator's stop queues nothing."""
    from scoot.domain import AbandonCause

    store = Store(store_at)
    study, _ = store.open_study("s", "{}")
    first = store.add_trial(study.id, Config.of({"max_num_seqs": 8}), "default")
    store.finish(
        first.id,
        TrialState.ABANDONED,
        message="invalid run",
        cause=AbandonCause.INVALID_RUN,
        retry="default",
    )
    rows = store.trials(study.id)
    assert [(t.number, t.state, t.source) for t in rows] == [
        (0, TrialState.ABANDONED, "default"),
        (1, TrialState.QUEUED, "default"),
    ]
    retry = store.queued_retry(rows[0])
    assert retry is not None and retry.config == first.config
    kinds = [(e["trial_id"], e["kind"]) for e in store.events(study.id)][-2:]
    assert kinds == [(first.id, "abandoned"), (retry.id, "queued")]
    second = store.add_trial(study.id, Config.of({"max_num_seqs": 16}), "scoot-sobo")
    store.request_stop(second.id)
    store.finish(
        second.id, TrialState.ABANDONED, cause=AbandonCause.INVALID_RUN, retry="retry of #2"
    )
    assert len(store.trials(study.id)) == 3  # stopped by the operator: no retry
    store.close()
