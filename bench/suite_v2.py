"""The quality suite v2 (bench/services_v2.toml): mixed spaces of 11-12 flags, noisy evaluations.

Where suite v1 looks every config up in a precomputed grid (one fixed workload: noise-free),
every evaluation here replays a fresh stress test on the embedded engine in virtual time: the
arrival process is drawn with a new seed and the requests are a new draw from the trace (a
random window where the trace's order carries its prefix sharing), as a real stress test is.
A config's *true* value is its mean over :data:`TRUE_SEEDS` such draws, cached in
``bench/reference/<service>.jsonl`` so every method's recommendation is scored on the same
figure.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from suite import KEPT

from scoot.domain import (
    Config,
    Constraint,
    Objective,
    OutcomeConstraint,
    ParamKind,
    ParamSpec,
    Value,
)
from scoot.engine.embedded.core import EngineArgs, EngineStartupError
from scoot.engine.embedded.perf import cudagraph_capture_sizes
from scoot.optim.space import SearchSpace
from scoot.stress.arrivals import schedule
from scoot.stress.capacity import find_capacity
from scoot.stress.formats import read_trace
from scoot.stress.metrics import RequestRecord, attainment
from scoot.stress.traces import TraceRequest, heaviest
from scoot.virtual import replay

ROOT = Path(__file__).resolve().parent.parent
SUITE_V2 = ROOT / "bench" / "services_v2.toml"
REFERENCE = ROOT / "bench" / "reference"
TRUE_SEEDS = tuple(range(1_000_001, 1_000_006))
"""The five stress-test draws a config's true value averages (disjoint from the runs' own)."""

ENGINE_DEFAULTS: dict[str, Value] = {
    "enable_chunked_prefill": True,
    "enable_prefix_caching": True,
    "gpu_memory_utilization": 0.92,
    "block_size": 16,
    "long_prefill_token_threshold": 0,
    "scheduling_policy": "fcfs",
    "enforce_eager": False,
}
"""vLLM 0.32's defaults of the flags that do not depend on the GPU."""


@dataclass(frozen=True)
class ServiceV2:
    """One service of suite v2."""

    name: str
    gpu: str
    model: str
    workload: str
    trace: str
    rate: float
    objectives: tuple[Objective, ...]
    space_spec: dict[str, dict[str, Any]] = field(default_factory=dict)
    gpus: int = 1
    arrival: str = "poisson"
    burstiness: float = 1.0
    keep_order: bool = False
    duration_s: float = 40.0
    heaviest: float = 1.0
    request_timeout_s: float = 60.0
    max_failed_fraction: float = 0.05
    max_model_len: int = 8192
    slo: tuple[OutcomeConstraint, ...] = ()
    """Outcome constraints (issue 17): the recommendation must meet every one."""
    goodput: tuple[tuple[str, float], ...] = ()
    """Per-request SLOs (ms) whose attainment the ``capacity`` objective's rate search reads."""
    capacity_target: float = 0.99
    capacity_max_steps: int = 5
    cache_name: str = ""
    """Whose cached true values and reference this service reads (its own name by default)."""

    def __post_init__(self) -> None:
        if not self.cache_name:
            object.__setattr__(self, "cache_name", self.name)

    @property
    def capacity(self) -> bool:
        return Objective.CAPACITY in self.objectives

    def meets(self, row: dict[str, Any]) -> bool:
        """Whether a result row (one run's or a mean) ran and meets every outcome constraint."""
        if not row.get("ok", True):
            return False
        return all(c.slack(float(row[c.metric])) >= 0 for c in self.slo)

    def args(self, config: dict[str, Any]) -> EngineArgs:
        values = dict(config)
        tp = int(values.pop("tensor_parallel_size", 1))
        return EngineArgs(
            model=self.model,
            gpu=self.gpu,
            gpus_available=self.gpus,
            tensor_parallel_size=tp,
            max_model_len=self.max_model_len,
            timing="table",
            **values,
        )

    def default_config(self) -> dict[str, Value]:
        """vLLM's defaults on every tuned flag (TP 1 unless one GPU cannot hold the model:
        then the smallest TP that starts)."""
        for tp in (1, 2, 4, 8):
            if tp > self.gpus:
                break
            base: dict[str, Value] = {"tensor_parallel_size": tp} if self.gpus > 1 else {}
            try:
                r = self.args(base).resolved()
            except EngineStartupError:
                continue
            out: dict[str, Value] = {
                **base,
                **ENGINE_DEFAULTS,
                "max_num_seqs": r.max_num_seqs,
                "max_num_batched_tokens": r.max_num_batched_tokens,
                "max_num_active_seqs": r.max_num_seqs,
                "max_cudagraph_capture_size": cudagraph_capture_sizes(r.max_num_seqs, None)[-1],
            }
            if self._starts(out):
                return {k: v for k, v in out.items() if k in self.param_names()}
        raise ValueError(f"{self.name}: vLLM's default config does not start on {self.gpus} GPUs")

    def _starts(self, config: dict[str, Value]) -> bool:
        return evaluate(self, config, TRUE_SEEDS[0], horizon_only=True)["ok"] is True

    def param_names(self) -> list[str]:
        names = sorted(self.space_spec)
        return sorted([*names, "tensor_parallel_size"]) if self.gpus > 1 else names


def load_suite_v2(path: Path = SUITE_V2) -> list[ServiceV2]:
    """The services of ``path``. A service with ``like = "NAME"`` (bench/services_slo.toml)
    takes every key of suite v2's service NAME that it does not set; if it measures the same
    thing (no ``capacity`` objective), it shares NAME's cached true values and reference."""
    doc = tomllib.loads(path.read_text())
    parents: dict[str, dict[str, Any]] = {}
    if path != SUITE_V2:
        base = tomllib.loads(SUITE_V2.read_text())
        parents = {s["name"]: s for s in base["service"]}
        doc = {**base, **doc}
    d = doc.get("defaults", {})
    out = []
    for own in doc["service"]:
        s = {**parents[own["like"]], **own} if "like" in own else own
        objectives = tuple(Objective(o) for o in s["objectives"])
        shared = "like" in own and Objective.CAPACITY not in objectives
        out.append(
            ServiceV2(
                name=s["name"],
                gpu=s["gpu"],
                model=s["model"],
                workload=s["workload"],
                trace=str(ROOT / doc["workloads"][s["workload"]]),
                rate=float(s["rate"]),
                objectives=objectives,
                space_spec=dict(doc["space"]),
                gpus=int(s.get("gpus", 1)),
                arrival=str(s.get("arrival", "poisson")),
                burstiness=float(s.get("burstiness", 1.0)),
                keep_order=bool(s.get("keep_order", False)),
                duration_s=float(s.get("duration_s", d.get("duration_s", 40))),
                heaviest=float(s.get("heaviest", d.get("heaviest", 1.0))),
                request_timeout_s=float(d.get("request_timeout_s", 60)),
                max_failed_fraction=float(d.get("max_failed_fraction", 0.05)),
                max_model_len=int(s.get("max_model_len", d.get("max_model_len", 8192))),
                slo=tuple(OutcomeConstraint.parse(e) for e in s.get("slo", [])),
                goodput=tuple((str(k), float(v)) for k, v in s.get("goodput", {}).items()),
                capacity_target=float(s.get("capacity_target", 0.99)),
                capacity_max_steps=int(s.get("capacity_max_steps", 5)),
                cache_name=str(own["like"]) if shared else s["name"],
            )
        )
    return out


def search_space(service: ServiceV2) -> SearchSpace:
    """The service's flags with vLLM's defaults and its known constraints."""
    default = service.default_config()
    params = []
    for name in service.param_names():
        if name == "tensor_parallel_size":
            tps = tuple(t for t in (1, 2, 4, 8) if t <= service.gpus)
            params.append(ParamSpec(name, ParamKind.ENUM, choices=tps, default=default[name]))
            continue
        spec = service.space_spec[name]
        kind = ParamKind(spec["type"])
        if kind is ParamKind.BOOL:
            params.append(ParamSpec(name, kind, choices=(False, True), default=default[name]))
        elif kind is ParamKind.ENUM:
            params.append(
                ParamSpec(name, kind, choices=tuple(spec["choices"]), default=default[name])
            )
        else:
            params.append(
                ParamSpec(
                    name,
                    kind,
                    low=float(spec["low"]),
                    high=float(spec["high"]),
                    log=bool(spec.get("log", False)),
                    default=default[name],
                )
            )
    constraints = (
        Constraint.parse("max_num_batched_tokens >= max_num_seqs"),
        Constraint.parse("enable_chunked_prefill or max_num_batched_tokens >= max_model_len"),
        Constraint.parse("max_num_active_seqs <= max_num_seqs"),
    )
    return SearchSpace(params, constraints, {"max_model_len": service.max_model_len})


@cache
def _pool(trace: str, fraction: float) -> tuple[TraceRequest, ...]:
    return tuple(heaviest(read_trace(trace), fraction))


def workload(service: ServiceV2, seed: int) -> tuple[list[TraceRequest], list[float]]:
    """One stress test's requests and send offsets, drawn with ``seed``."""
    pool = _pool(service.trace, service.heaviest)
    n = max(1, round(service.rate * service.duration_s))
    rng = np.random.default_rng(seed)
    if service.keep_order:
        start = int(rng.integers(len(pool)))
        reqs = [pool[(start + i) % len(pool)] for i in range(n)]
    else:
        idx = rng.permutation(len(pool))
        reqs = [pool[int(idx[i % len(pool)])] for i in range(n)]
    offsets = schedule(
        n, service.rate, arrival=service.arrival, burstiness=service.burstiness, seed=seed
    )
    return reqs, offsets


def evaluate(
    service: ServiceV2, config: dict[str, Any], seed: int, *, horizon_only: bool = False
) -> dict[str, Any]:
    """One noisy evaluation: {"ok": True, metrics...} or {"ok": False, "failure": kind}.

    ``horizon_only`` checks only that the engine starts (no stress test)."""
    return timeline(service, config, seed, horizon_only=horizon_only)[0]


def timeline(
    service: ServiceV2, config: dict[str, Any], seed: int, *, horizon_only: bool = False
) -> tuple[dict[str, Any], list[RequestRecord]]:
    """:func:`evaluate`, and the per-request records of its stress test (virtual seconds from
    the first send; none where the engine did not start or for a capacity search)."""
    args = service.args(config)
    try:
        resolved = args.resolved()
        if horizon_only:
            resolved.plan()
            return {"ok": True}, []
        reqs, offsets = workload(service, seed)
        if service.capacity:
            return _capacity(service, args, reqs, offsets), []
        metrics, records = replay(args, reqs, offsets, request_timeout_s=service.request_timeout_s)
    except EngineStartupError as exc:
        return {"ok": False, "failure": exc.kind}, []
    return _judged(service, metrics), records


def _judged(service: ServiceV2, metrics: Any) -> dict[str, Any]:
    total = metrics.completed + metrics.failed
    if total and metrics.failed / total > service.max_failed_fraction:
        return {"ok": False, "failure": "slo_unmeasurable" if metrics.completed else "hang"}
    m = metrics.to_dict()
    return {"ok": True, **{k: m[k] for k in KEPT}}


def _capacity(
    service: ServiceV2, args: EngineArgs, reqs: list[TraceRequest], offsets: list[float]
) -> dict[str, Any]:
    """The ``capacity`` objective as a study measures it on one launch
    (``scoot.jobs.evaluate.rate_search``): the same draw of requests and arrivals, compressed
    or stretched to each rate the search probes, from the service's rate; the metrics are
    those at the capacity (at the lowest rate tried when none met the target)."""
    slos = dict(service.goodput)
    runs: dict[float, Any] = {}

    def at(rate: float) -> float:
        scale = service.rate / rate
        runs[rate] = replay(
            args, reqs, [t * scale for t in offsets], request_timeout_s=service.request_timeout_s
        )
        return attainment(runs[rate][1], slos)

    found = find_capacity(
        at, service.rate, target=service.capacity_target, max_steps=service.capacity_max_steps
    )
    rate = found.rate if found.rate > 0 else min(runs)
    out = _judged(service, runs[rate][0])  # at 99 % attainment, at most 1 % failed
    if out["ok"]:
        out.update(capacity=found.rate, rate_steps=len(found.steps))
    return out


def key(config: dict[str, Any] | Config) -> str:
    d = config.as_dict() if isinstance(config, Config) else config
    return json.dumps(d, sort_keys=True)


class TrueValues:
    """The mean over :data:`TRUE_SEEDS` of a config's metrics, cached on disk per service
    (one JSON line per config), so a config is averaged once for every method and run."""

    def __init__(
        self,
        service: ServiceV2,
        suffix: str = "",
        evaluator: Callable[[dict[str, Any], int], dict[str, Any]] | None = None,
        path: Path | None = None,
    ) -> None:
        """``evaluator`` runs one draw (suite v2's stress test by default), ``path`` is the
        cache (``bench/reference/<service>_true<suffix>.jsonl`` by default)."""
        self.service = service
        self.evaluator = evaluator or (lambda values, seed: evaluate(service, values, seed))
        self.path = path or REFERENCE / f"{service.cache_name}_true{suffix}.jsonl"
        self.cache: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.cache[row["key"]] = row["value"]

    def __call__(self, config: dict[str, Any] | Config) -> dict[str, Any]:
        k = key(config)
        if k not in self.cache:
            values = json.loads(k)
            runs = [self.evaluator(values, s) for s in TRUE_SEEDS]
            self.cache[k] = mean_result(runs)
            with self.path.open("a") as fh:
                fh.write(json.dumps({"key": k, "value": self.cache[k]}) + "\n")
        return self.cache[k]


def mean_result(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of a config's runs; a config that failed in any run fails (what it failed of
    most often), since an operator cannot deploy a config that crashes one time in five."""
    bad = [r for r in runs if not r["ok"]]
    if bad:
        kinds = [r["failure"] for r in bad]
        return {"ok": False, "failure": max(set(kinds), key=kinds.count), "runs": len(runs)}
    out: dict[str, Any] = {"ok": True, "runs": len(runs)}
    for k in (*KEPT, *(x for x in ("capacity", "rate_steps") if x in runs[0])):
        vals = [float(r[k]) for r in runs]
        out[k] = sum(vals) / len(vals)
        if k in ("request_throughput", "p95_e2el_ms", "mean_ttft_ms", "mean_tpot_ms", "capacity"):
            out[k + "_cv"] = float(np.std(vals) / abs(np.mean(vals))) if np.mean(vals) else 0.0
    return out


def objective_values(service: ServiceV2, result: dict[str, Any]) -> tuple[float, ...]:
    return tuple(float(result[o.metric]) for o in service.objectives)


def finite(x: float) -> bool:
    return math.isfinite(x)
