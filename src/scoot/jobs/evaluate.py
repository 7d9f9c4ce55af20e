"""One evaluation: launch the engine with a trial's config, stress-test it, record the outcome.

A launch that dies or never becomes ready, and a stress test the engine cannot sustain, are
recorded as failed trials with their failure kind (data for the feasibility model), never
raised. The engine's process group is always stopped before this returns.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scoot.domain import (
    AbandonCause,
    EventKind,
    FailureKind,
    Metrics,
    Objective,
    TrialState,
    Value,
)
from scoot.engine.launcher import (
    EngineProcess,
    ProcessRef,
    build_argv,
    free_port,
    wait_gpu_memory_released,
)
from scoot.jobs.store import BEHIND, Store, TrialRow, retry_source
from scoot.stress.arrivals import order, schedule
from scoot.stress.capacity import RateStep, find_capacity
from scoot.stress.client import StressPlan, StressResult, run_stress_sync
from scoot.stress.early_stop import StopRules, rules_for
from scoot.stress.formats import read_trace
from scoot.stress.metrics import attainment, compute
from scoot.stress.traces import HASH_BLOCK, TraceError, TraceRequest, heaviest
from scoot.study import StudySpec, devices_of, fixed_flag_values

HEARTBEAT_S = 2.0


@dataclass(frozen=True, slots=True)
class Workload:
    """The requests and send offsets of one stress test."""

    requests: list[TraceRequest]
    offsets: list[float]


def build_workload(spec: StudySpec, order_seed: int = 0) -> Workload:
    """The study's stress workload: ``rate x duration`` requests from the (heaviest) trace,
    in trace order or a seeded shuffle of it, at the study's arrival process.

    With ``arrival = "trace"`` the trace's own timestamps are the schedule, sped up by
    ``time_scale`` (2 replays twice as fast), cut at ``duration_s``; ``rate`` is ignored.
    """
    t = spec.trace
    pool = fit_context(heaviest(read_trace(t.file, t.format), t.heaviest), spec)
    if t.arrival == "trace":
        if any(r.timestamp is None for r in pool):
            raise TraceError(f"{t.file}: arrival = 'trace' needs a timestamp on every request")
        t0 = min(r.timestamp or 0.0 for r in pool)
        timed = sorted(pool, key=lambda r: r.timestamp or 0.0)
        pairs = [(r, ((r.timestamp or 0.0) - t0) / t.time_scale) for r in timed]
        pairs = [(r, off) for r, off in pairs if off < t.duration_s]
        return Workload([r for r, _ in pairs], [off for _, off in pairs])
    n = max(1, round(t.rate * t.duration_s))
    picked = [pool[i % len(pool)] for i in range(n)]
    perm = order(n, order_seed)
    requests = [picked[i] for i in perm]
    offsets = schedule(n, t.rate, arrival=t.arrival, burstiness=t.burstiness, seed=t.seed)
    return Workload(requests, offsets)


def fit_context(pool: list[TraceRequest], spec: StudySpec) -> list[TraceRequest]:
    """Apply ``[trace] too_long`` to requests longer than the model's context (the fixed
    ``--max-model-len``; unknown, nothing is changed).

    Raises:
        TraceError: with ``too_long = "fail"``, naming how many requests and the limit.
    """
    limit = fixed_flag_values(spec.engine.args).get("max_model_len")
    mode = spec.trace.too_long
    if mode == "send" or not isinstance(limit, int):
        return pool
    long = [r for r in pool if r.input_length + r.output_length > limit]
    if not long:
        return pool
    if mode == "fail":
        raise TraceError(
            f"{spec.trace.file}: {len(long)} of {len(pool)} requests are longer than the "
            f"model's context ({limit} tokens, --max-model-len); set [trace] too_long = "
            '"skip" or "clip", or "send" to let the engine refuse them'
        )
    if mode == "skip":
        kept = [r for r in pool if r.input_length + r.output_length <= limit]
        if not kept:
            raise TraceError(f"{spec.trace.file}: every request is longer than {limit} tokens")
        return kept
    out = []
    for r in pool:  # clip: the input gives way, the output is kept (at most the context - 1)
        if r.input_length + r.output_length <= limit:
            out.append(r)
            continue
        output = min(r.output_length, limit - 1)
        inp = limit - output
        out.append(
            dataclasses.replace(
                r,
                input_length=inp,
                output_length=output,
                hash_ids=r.hash_ids[: inp // HASH_BLOCK],
                prompt=None,  # a text prompt cannot be cut to a token count
            )
        )
    return out


def evaluate(
    store: Store,
    spec: StudySpec,
    trial: TrialRow,
    gpu_set: str,
    workload: Workload,
    log_dir: Path,
) -> TrialState:
    """Run ``trial`` to an outcome and record it; returns the final state."""
    port = free_port()
    fields = {
        "model": spec.engine.model,
        "gpu": spec.engine.gpu,
        "host": "127.0.0.1",
        "port": str(port),
        "gpus": devices_of(gpu_set),
        "hf_cache": os.path.expanduser("~/.cache/huggingface"),
        "vllm_cache": os.path.expanduser(os.environ.get("VLLM_CACHE_ROOT", "~/.cache/vllm")),
    }
    argv = build_argv(
        spec.engine.kind, spec.engine.command, fields, spec.engine.args, trial.config.as_dict()
    )
    log_path = log_dir / f"trial-{trial.number:04d}.log"
    try:
        engine = EngineProcess(
            argv, gpu_set=gpu_set, port=port, log_path=log_path, env=dict(spec.engine.env)
        )
    except OSError as exc:
        store.finish(
            trial.id,
            TrialState.FAILED,
            failure=FailureKind.STARTUP_CRASH,
            message=f"cannot start {argv[0]}: {exc.strerror}",
        )
        return TrialState.FAILED
    store.mark_running(
        trial.id, gpu_set, ProcessRef.of(engine.pgid), shlex.join(argv), str(log_path)
    )
    stop_beat = threading.Event()
    beat = threading.Thread(
        target=_heartbeat,
        args=(
            store.reopen,
            trial.id,
            stop_beat,
            lambda: engine.stop(spec.engine.stop_grace_s),
            log_path,
        ),
        daemon=True,
    )
    beat.start()
    try:
        failure = engine.wait_ready(spec.engine.startup_timeout_s, spec.engine.model)
        if failure is not None:
            store.finish(
                trial.id, TrialState.FAILED, failure=failure.kind, message=failure.message
            )
            return TrialState.FAILED
        store.mark_ready(trial.id)
        rules = stop_rules(store, spec, trial)

        def stress(rate: float) -> StressResult:
            scale = spec.trace.rate / rate  # the same arrival pattern, faster or slower
            return run_stress_sync(
                StressPlan(
                    base_url=engine.base_url,
                    model=spec.engine.model,
                    requests=workload.requests,
                    offsets=[o * scale for o in workload.offsets],
                    request_timeout_s=spec.stress.request_timeout_s,
                    drain_timeout_s=spec.stress.drain_timeout_s,
                    endpoint=spec.trace.endpoint,
                    stop_rules=rules,
                    stop_seed=trial.number,
                )
            )

        if Objective.CAPACITY in spec.objectives:
            result, steps, capacity = rate_search(store, spec, trial, stress)
        else:
            result, steps, capacity = stress(spec.trace.rate), (), None
        metrics, aborted = measured(result, dict(spec.stress.goodput))
        metrics = derived(
            dataclasses.replace(metrics, engine=result.engine), spec, trial.config.as_dict()
        )
        if capacity is not None:
            metrics = dataclasses.replace(metrics, capacity=capacity, rate_steps=steps)
        state, kind, message = judge(
            metrics,
            aborted,
            engine.alive(),
            spec.stress.max_failed_fraction,
            [r.error for r in result.records if r.error],
            spec.stress.max_lateness_ms,
        )
        if state is TrialState.FAILED and not engine.alive():
            message = f"{message}\nengine log tail:\n{engine.log_tail(8)}"
        cause = AbandonCause.INVALID_RUN if state is TrialState.ABANDONED else None
        retry = retry_source(trial, BEHIND) if cause and trial.retest is None else None
        store.finish(
            trial.id,
            state,
            metrics=metrics,
            failure=kind,
            message=message,
            cause=cause,
            retry=retry,
        )
        return state
    finally:
        stop_beat.set()
        engine.stop(spec.engine.stop_grace_s)
        beat.join(timeout=5)
        store.put_log(trial.id, log_end(log_path))
        held = wait_gpu_memory_released(devices_of(gpu_set))
        if held:
            store.event(
                trial.study_id,
                trial.id,
                EventKind.GPU_MEMORY_HELD,
                f"GPU memory still in use 30 s after the engine stopped ({held}); the next "
                f"launch on set {gpu_set} may fail for it",
            )


def stop_rules(store: Store, spec: StudySpec, trial: TrialRow) -> StopRules | None:
    """The early-stop rules of ``trial`` (``[stress] early_stop``), None where it runs to the
    end: re-tests (they measure a winner), capacity searches (attainment is their measure) and
    studies that did not ask. A one-objective p95-latency or TTFT study without SLOs compares
    against its incumbent, the best value of a trial that ran to its end."""
    if not spec.stress.early_stop or trial.retest is not None:
        return None
    if Objective.CAPACITY in spec.objectives:
        return None
    incumbent: dict[str, float] = {}
    if len(spec.objectives) == 1 and not spec.slo:
        objective = spec.objectives[0]
        if objective in (Objective.P95_LATENCY, Objective.TTFT):
            values = [
                t.metrics.value(objective)
                for t in store.trials(trial.study_id)
                if t.counts
                and t.state is TrialState.COMPLETED
                and t.metrics is not None
                and t.metrics.stopped_early is None
            ]
            if values:
                incumbent[objective.metric] = min(values)
    return rules_for(
        incumbent,
        spec.stress.max_failed_fraction,
        spec.stress.early_stop_confidence,
        spec.stress.short_first,
    )


def measured(result: StressResult, goodput: Mapping[str, float]) -> tuple[Metrics, str | None]:
    """The run's metrics, and why it was aborted (None: it measured the config).

    A run stopped early for being worse than the incumbent is a censored observation, not a
    failure: its metrics are those of the requests finished so far, each bound the rule
    proved replacing its metric ("at least this bad"), with ``stopped_early`` saying why. A
    run stopped because it can no longer pass stays an aborted run (a failure)."""
    stop = result.stopped
    if stop is None or not stop.bounds:
        return compute(result.records, result.duration, goodput), result.aborted
    finished = [r for r, d in zip(result.records, result.done, strict=True) if d]
    values = compute(finished, result.duration, goodput).to_dict()
    values.update(stop.bounds, stopped_early=stop.reason)
    return Metrics.from_dict(values), None


def gpus_used(spec: StudySpec, config: Mapping[str, Value]) -> int:
    """GPUs one engine of this config occupies: tensor x pipeline x data parallel sizes
    (tuned or fixed flags; 1 where absent)."""
    fixed = fixed_flag_values(spec.engine.args)
    n = 1
    for name in ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size"):
        value = config.get(name, fixed.get(name, 1))
        n *= int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 1
    return max(1, n)


def derived(metrics: Metrics, spec: StudySpec, config: Mapping[str, Value]) -> Metrics:
    """Per-GPU throughput and, with ``[cost] gpu_hour_usd``, $ per million output tokens."""
    gpus = gpus_used(spec, config)
    tok_s = metrics.output_throughput
    per_gpu = tok_s / gpus
    cost = None
    if spec.gpu_hour_usd is not None and tok_s > 0:
        cost = gpus * spec.gpu_hour_usd / (tok_s * 3600.0) * 1e6
    return dataclasses.replace(metrics, throughput_per_gpu=per_gpu, cost_per_mtok=cost)


def rate_search(
    store: Store,
    spec: StudySpec,
    trial: TrialRow,
    stress: Callable[[float], StressResult],
) -> tuple[StressResult, tuple[tuple[float, float], ...], float]:
    """The ``capacity`` objective's search on one launch: the highest rate whose SLO
    attainment (``[stress] goodput``) reaches ``[capacity] target``, from the study's rate by
    bracket and bisection (:func:`scoot.stress.capacity.find_capacity`). Every step is an
    event of the trial; steps a previous run of this trial recorded are not repeated.

    Returns the stress result at the capacity (at the lowest rate tried when none met it),
    every (rate, attainment) step, and the capacity.
    """
    slos = dict(spec.stress.goodput)
    done = recorded_steps(store, trial)
    results: dict[float, StressResult] = {}

    def attainment_at(rate: float) -> float:
        results[rate] = stress(rate)
        a = attainment(results[rate].records, slos)
        store.event(
            trial.study_id, trial.id, EventKind.RATE_STEP, f"rate {rate:.6g} attainment {a:.6g}"
        )
        return a

    found = find_capacity(
        attainment_at,
        spec.trace.rate,
        target=spec.capacity_target,
        max_steps=spec.capacity_max_steps,
        done=[RateStep(r, a) for r, a in done],
    )
    steps = tuple((s.rate, s.attainment) for s in found.steps)
    at = found.rate if found.rate > 0 else min(r for r, _ in steps)
    if at not in results:  # measured by a previous run of the trial: measure it once more
        results[at] = stress(at)
    return results[at], steps, found.rate


_STEP = re.compile(r"^rate (\S+) attainment (\S+)$")


def recorded_steps(store: Store, trial: TrialRow) -> list[tuple[float, float]]:
    """The rate steps an earlier run of ``trial`` recorded (its events)."""
    out = []
    for e in store.events(trial.study_id):
        if e["trial_id"] == trial.id and e["kind"] == EventKind.RATE_STEP.value:
            m = _STEP.match(e["message"])
            if m:
                out.append((float(m.group(1)), float(m.group(2))))
    return out


def judge(
    metrics: Metrics,
    aborted: str | None,
    engine_alive: bool,
    max_failed_fraction: float,
    errors: Sequence[str],
    max_lateness_ms: float = float("inf"),
) -> tuple[TrialState, FailureKind | None, str | None]:
    """Decide whether a stress test measured the config, or the config failed under load.

    A run whose client fell behind its schedule (send lateness p99 above ``max_lateness_ms``)
    measured the client, not the config: it is abandoned (never a crash, never in a model) so
    the trial can run again.
    """
    total = metrics.completed + metrics.failed
    if not engine_alive:
        return TrialState.FAILED, FailureKind.CRASH_UNDER_LOAD, "the engine exited under load"
    # A client behind its schedule invalidates whatever else the run saw: failures under a
    # load the client did not send as planned say nothing about the config.
    if metrics.lateness_p99_ms > max_lateness_ms:
        return (
            TrialState.ABANDONED,
            None,
            f"invalid run: the load generator fell behind (send lateness p99 "
            f"{metrics.lateness_p99_ms:.1f} ms > {max_lateness_ms:.0f} ms, achieved "
            f"{metrics.achieved_rate:.2f} req/s)",
        )
    stalled = sum(e.startswith("stalled") for e in errors)
    if aborted:
        sample = "; ".join(sorted(set(errors))[:3])
        kind = FailureKind.HANG if 2 * stalled >= len(errors) > 0 else FailureKind.SLO_UNMEASURABLE
        return TrialState.FAILED, kind, f"{aborted}: {sample}"
    if total and metrics.failed / total > max_failed_fraction:
        sample = "; ".join(sorted(set(errors))[:3])
        # Streams that stopped mid-way with the engine alive are a hang; requests that only
        # waited too long for a first token are a config too slow for the load.
        hung = metrics.completed == 0 or 2 * stalled >= len(errors) > 0
        kind = FailureKind.HANG if hung else FailureKind.SLO_UNMEASURABLE
        return (
            TrialState.FAILED,
            kind,
            f"{metrics.failed} of {total} requests failed: {sample}",
        )
    return TrialState.COMPLETED, None, None


def _heartbeat(
    reopen: Callable[[], Store],
    trial_id: int,
    stop: threading.Event,
    on_stop_request: Callable[[], None],
    log_path: Path,
) -> None:
    """Beat every HEARTBEAT_S (a worker that stops beating has died), copy the end of the
    engine log into the store, and stop the engine when the operator asks (``pause --now``,
    ``cancel``), wherever that command was typed. The log's last copy is taken once the
    engine has stopped."""
    store = reopen()  # this thread's own connection
    try:
        while not stop.wait(HEARTBEAT_S):
            store.heartbeat(trial_id)
            store.put_log(trial_id, log_end(log_path))
            if store.trial(trial_id).stop_requested:
                on_stop_request()
                return
    finally:
        store.close()


LOG_KEPT = 64 * 1024
"""How much of the end of an engine log the store keeps."""


def log_end(path: Path) -> str:
    """The last ``LOG_KEPT`` bytes of a log, from a line start ('' if unreadable)."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - LOG_KEPT))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    if size > LOG_KEPT and "\n" in text:
        text = text.split("\n", 1)[1]
    return text
