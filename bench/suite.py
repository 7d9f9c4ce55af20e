"""The benchmark service suite (bench/services.toml) on the embedded engine in virtual time.

Shared by the bench scripts: load the suite, enumerate a service's grid, evaluate one config of
one service (the same stress workload every time, so a config's result is deterministic), and
measure how far the grid optimum is from vLLM's default configuration.
"""

from __future__ import annotations

import itertools
import json
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from scoot.domain import Objective
from scoot.engine.embedded.core import EngineArgs, EngineStartupError
from scoot.stress.arrivals import schedule
from scoot.stress.formats import read_trace
from scoot.stress.traces import TraceRequest, heaviest
from scoot.virtual import replay

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "bench" / "services.toml"
GRIDS = ROOT / "bench" / "grids"


KEPT = (
    "completed",
    "failed",
    "duration_s",
    "request_throughput",
    "output_throughput",
    "mean_ttft_ms",
    "p95_ttft_ms",
    "mean_tpot_ms",
    "p95_tpot_ms",
    "mean_e2el_ms",
    "p95_e2el_ms",
)
"""Metrics stored per grid point (everything the objectives and reports need)."""


@dataclass(frozen=True)
class Service:
    """One service of the suite."""

    name: str
    gpu: str
    model: str
    workload: str
    trace: str
    rate: float
    objectives: tuple[Objective, ...]
    tensor_parallel_size: int = 1
    duration_s: float = 60.0
    heaviest: float = 0.5
    request_timeout_s: float = 60.0
    max_failed_fraction: float = 0.05
    max_model_len: int = 8192
    grid: dict[str, list[Any]] = field(default_factory=dict)
    slo: tuple[Any, ...] = ()
    """No outcome constraints in suite v1 (the noisy benchmark's scorer asks)."""
    capacity: bool = False

    @property
    def cache_name(self) -> str:
        """The name of this service's cached true values and reference (``bench/reference/``),
        apart from suite v2's."""
        return f"v1-{self.name}"

    def meets(self, row: dict[str, Any]) -> bool:
        return True

    def args(self, config: dict[str, Any]) -> EngineArgs:
        return EngineArgs(
            model=self.model,
            gpu=self.gpu,
            gpus_available=self.tensor_parallel_size,
            tensor_parallel_size=self.tensor_parallel_size,
            max_model_len=self.max_model_len,
            **config,
        )

    def default_config(self) -> dict[str, Any]:
        """vLLM's defaults for this GPU, on the flags the grid tunes."""
        r = self.args({}).resolved()
        base = {
            "max_num_seqs": r.max_num_seqs,
            "max_num_batched_tokens": r.max_num_batched_tokens,
            "enable_chunked_prefill": True,
            "enable_prefix_caching": True,
            "gpu_memory_utilization": 0.92,
            "block_size": 16,
        }
        return {k: v for k, v in base.items() if k in self.grid}

    def configs(self) -> list[dict[str, Any]]:
        """Every point of the grid, in a fixed order."""
        names = sorted(self.grid)
        return [
            dict(zip(names, values, strict=True))
            for values in itertools.product(*(self.grid[n] for n in names))
        ]


def load_suite(path: Path = SUITE) -> list[Service]:
    doc = tomllib.loads(path.read_text())
    defaults = doc.get("defaults", {})
    grid = doc["grid"]
    out = []
    for s in doc["service"]:
        out.append(
            Service(
                name=s["name"],
                gpu=s["gpu"],
                model=s["model"],
                workload=s["workload"],
                trace=str(ROOT / doc["workloads"][s["workload"]]),
                rate=float(s["rate"]),
                objectives=tuple(Objective(o) for o in s["objectives"]),
                tensor_parallel_size=int(s.get("tensor_parallel_size", 1)),
                duration_s=float(s.get("duration_s", defaults.get("duration_s", 60))),
                heaviest=float(s.get("heaviest", defaults.get("heaviest", 0.5))),
                request_timeout_s=float(defaults.get("request_timeout_s", 60)),
                max_failed_fraction=float(defaults.get("max_failed_fraction", 0.05)),
                max_model_len=int(defaults.get("max_model_len", 8192)),
                grid={k: list(v) for k, v in grid.items()},
            )
        )
    return out


@cache
def _pool(trace: str, fraction: float) -> tuple[TraceRequest, ...]:
    return tuple(heaviest(read_trace(trace), fraction))


def workload(service: Service, order_seed: int = 0) -> tuple[list[TraceRequest], list[float]]:
    """The service's stress workload: rate x duration requests, Poisson arrivals."""
    pool = _pool(service.trace, service.heaviest)
    n = max(1, round(service.rate * service.duration_s))
    reqs = [pool[(i + order_seed * 7919) % len(pool)] for i in range(n)]
    return reqs, schedule(n, service.rate, seed=order_seed)


def key(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


def evaluate(service: Service, config: dict[str, Any], order_seed: int = 0) -> dict[str, Any]:
    """One evaluation: {"ok": True, metrics...} or {"ok": False, "failure": kind}. Seed 0 is
    the grid's workload; any other seed is a fresh draw of arrivals and request order (the
    noisy benchmark's)."""
    reqs, offsets = workload(service, order_seed)
    try:
        metrics, _ = replay(
            service.args(config), reqs, offsets, request_timeout_s=service.request_timeout_s
        )
    except EngineStartupError as exc:
        return {"ok": False, "failure": exc.kind}
    total = metrics.completed + metrics.failed
    if total and metrics.failed / total > service.max_failed_fraction:
        return {"ok": False, "failure": "slo_unmeasurable" if metrics.completed else "hang"}
    m = metrics.to_dict()
    return {"ok": True, **{k: m[k] for k in KEPT}}


def objective_values(service: Service, result: dict[str, Any]) -> tuple[float, ...]:
    return tuple(float(result[o.metric]) for o in service.objectives)


def headroom(service: Service, default: dict[str, Any], grid: list[dict[str, Any]]) -> float:
    """Relative improvement of the grid optimum over the default (positive is better).

    One objective: ``(best - default) / |default|``, sign-adjusted. Two (TTFT and TPOT): the
    largest such improvement of either objective over the feasible grid, i.e. the far end of
    the Pareto front on that axis; what it costs in the other objective is the trade-off the
    tuner must weigh (bench/results/embedded.json reports both ends).
    """
    ok = [r for r in grid if r["ok"]]
    if not default["ok"] or not ok:
        return 0.0
    return max(gains(service, default, ok))


def gains(service: Service, default: dict[str, Any], ok: list[dict[str, Any]]) -> list[float]:
    """Per objective, the best relative improvement over the default among ``ok`` results."""
    out = []
    for o in service.objectives:
        d = float(default[o.metric])
        vals = [float(r[o.metric]) for r in ok]
        best = max(vals) if o.maximize else min(vals)
        out.append((best - d) / abs(d) * (1.0 if o.maximize else -1.0))
    return out


def grid_path(service: Service) -> Path:
    return GRIDS / f"{service.name}.json"


def load_grid(service: Service) -> dict[str, dict[str, Any]] | None:
    path = grid_path(service)
    if not path.exists():
        return None
    doc: dict[str, Any] = json.loads(path.read_text())
    results: dict[str, dict[str, Any]] = doc["results"]
    return results


def search_space(service: Service) -> Any:
    """The grid as the optimizers see it: ordered enums for the numeric flags (so every
    suggestion is a grid point and its result is known), booleans, and vLLM's known
    constraints; the defaults are vLLM's for this GPU."""
    from scoot.domain import Constraint, ParamKind, ParamSpec
    from scoot.optim.space import SearchSpace

    default = service.default_config()
    params = []
    for name in sorted(service.grid):
        values = service.grid[name]
        if all(isinstance(v, bool) for v in values):
            params.append(
                ParamSpec(name, ParamKind.BOOL, choices=(False, True), default=default[name])
            )
        else:
            params.append(
                ParamSpec(
                    name, ParamKind.ENUM, choices=tuple(sorted(values)), default=default[name]
                )
            )
    constraints = (
        Constraint.parse("max_num_batched_tokens >= max_num_seqs"),
        Constraint.parse("enable_chunked_prefill or max_num_batched_tokens >= max_model_len"),
    )
    return SearchSpace(params, constraints, {"max_model_len": service.max_model_len})


def observation(config: Any, result: dict[str, Any]) -> Any:
    """A grid result as the optimizers' :class:`Observation`."""
    from scoot.domain import FailureKind, Metrics, Observation

    if not result["ok"]:
        return Observation(config, False, None, FailureKind(result["failure"]))
    return Observation(config, True, Metrics.of(**{k: result[k] for k in KEPT}), None)
