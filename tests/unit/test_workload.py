"""Stress workloads from a study: trace timestamps as the schedule, new study keys, the judge."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from scoot.domain import FailureKind, TrialState
from scoot.jobs.evaluate import build_workload, judge
from scoot.stress.metrics import RequestRecord, compute
from scoot.stress.traces import TraceError
from scoot.study import StudyError, load_study


def test_trace_arrival_replays_timestamps_scaled_and_cut(
    make_study: Callable[..., Path], tmp_path: Path
) -> None:
    trace = tmp_path / "timed.jsonl"
    rows = [
        {"timestamp": 100 + 2 * i, "input_length": 10 + i, "output_length": 3} for i in range(10)
    ]
    trace.write_text("\n".join(json.dumps(r) for r in reversed(rows)) + "\n")
    spec = load_study(make_study())
    t = dataclasses.replace(
        spec.trace, file=str(trace), arrival="trace", time_scale=2.0, duration_s=5.0
    )
    w = build_workload(dataclasses.replace(spec, trace=t))
    # Timestamps 100, 102, ... sped up twice: offsets 0, 1, 2, ...; cut before 5 s.
    assert w.offsets == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [r.input_length for r in w.requests] == [10, 11, 12, 13, 14]


def test_trace_arrival_needs_timestamps(make_study: Callable[..., Path]) -> None:
    spec = load_study(make_study())
    bad = dataclasses.replace(spec, trace=dataclasses.replace(spec.trace, arrival="trace"))
    with pytest.raises(TraceError, match="needs a timestamp"):
        build_workload(bad)


def test_new_study_keys_are_validated(make_study: Callable[..., Path]) -> None:
    path = make_study(lateness=20)
    text = path.read_text()
    ok = text.replace("[stress]", "[stress]\ngoodput = { ttft_ms = 500 }")
    ok = ok.replace("[trace]", '[trace]\nendpoint = "chat"\nformat = "internal"')
    path.write_text(ok)
    spec = load_study(path)
    assert spec.stress.goodput == (("ttft", 500.0),)
    assert (spec.trace.endpoint, spec.stress.max_lateness_ms) == ("chat", 20.0)
    path.write_text(text.replace("[stress]", "[stress]\ngoodput = { ttft = 5 }"))
    with pytest.raises(StudyError, match=r"'stress\.goodput\.ttft'"):
        load_study(path)
    path.write_text(text.replace("[trace]", '[trace]\nendpoint = "grpc"'))
    with pytest.raises(StudyError, match=r"'trace\.endpoint'"):
        load_study(path)


def test_a_client_that_fell_behind_is_not_a_measurement() -> None:
    late = [RequestRecord(0.0, 0.2, 0.1, 0.2, [0.1], 5, 2, True, "") for _ in range(20)]
    m = compute(late, 2.0)
    state, kind, message = judge(m, None, True, 0.05, [], max_lateness_ms=50.0)
    assert (state, kind) == (TrialState.ABANDONED, None)
    assert message is not None and "fell behind" in message
    on_time = [RequestRecord(0.0, 0.001, 0.1, 0.2, [0.1], 5, 2, True, "") for _ in range(20)]
    assert judge(compute(on_time, 2.0), None, True, 0.05, [], 50.0)[0] is TrialState.COMPLETED


def test_a_client_behind_schedule_invalidates_the_failures_it_saw_too() -> None:
    """At a rate the client cannot send, requests also time out: still the client's fault."""
    late_and_failing = [
        RequestRecord(0.0, 9.0, 0.0, 0.0, [], 5, 0, False, "timeout") for _ in range(20)
    ]
    m = compute(late_and_failing, 2.0)
    state, kind, _ = judge(m, "drain timeout", True, 0.05, ["timeout"], max_lateness_ms=50.0)
    assert (state, kind) == (TrialState.ABANDONED, None)
    # An engine that died is the config's failure whatever the client did.
    assert judge(m, None, False, 0.05, ["x"], 50.0)[1] is FailureKind.CRASH_UNDER_LOAD


def test_requests_longer_than_the_context_are_sent_skipped_clipped_or_refused(
    make_study: Callable[..., Path], tmp_path: Path
) -> None:
    from helpers import write_trace

    trace = write_trace(tmp_path / "long.jsonl", [(100, 10), (5000, 20), (200, 4090)])
    path = make_study(trace=trace)  # --max-model-len 4096
    base = path.read_text()

    def workload(mode: str | None) -> list[tuple[int, int]]:
        extra = f'\ntoo_long = "{mode}"' if mode else ""
        path.write_text(base.replace("duration_s = 1.5", "duration_s = 1.5" + extra))
        reqs = build_workload(load_study(path)).requests
        return sorted({(r.input_length, r.output_length) for r in reqs})

    assert workload(None) == [(100, 10), (200, 4090), (5000, 20)]  # sent: the engine refuses
    assert workload("skip") == [(100, 10)]
    assert workload("clip") == [(6, 4090), (100, 10), (4076, 20)]
    with pytest.raises(TraceError, match="2 of 3 requests are longer than the model's context"):
        workload("fail")
    # A study that did not name the key is the very study an older SCOOT recorded.
    path.write_text(base)
    assert "too_long" not in load_study(path).to_json()
