"""Values shared by every layer of SCOOT: parameters, configurations, metrics, trials.

Everything here is a frozen dataclass or an enum and imports nothing else of SCOOT's, so the
engine, stress, optim and jobs packages can exchange these values without depending on each
other (the one-way data flow of the design: trace -> stress -> Observation -> store -> optimizer
-> Suggestion -> engine).
"""

from __future__ import annotations

import ast
import difflib
import enum
import functools
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Value = int | float | str | bool
"""A parameter's value: what one engine flag is set to."""


class ParamKind(enum.StrEnum):
    """The four parameter types of the paper's search space (Table 1)."""

    INT = "int"
    FLOAT = "float"
    ENUM = "enum"
    BOOL = "bool"


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One tunable engine flag: its type, its range or choices, and the engine's default.

    ``name`` uses underscores (``max_num_seqs``); the launcher turns it into ``--max-num-seqs``.
    """

    name: str
    kind: ParamKind
    low: float | None = None
    high: float | None = None
    choices: tuple[Value, ...] = ()
    log: bool = False
    default: Value | None = None

    def contains(self, value: Value) -> bool:
        """Whether ``value`` is a legal value of this parameter."""
        if self.kind is ParamKind.BOOL:
            return isinstance(value, bool)
        if self.kind is ParamKind.ENUM:
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind is ParamKind.INT and not float(value).is_integer():
            return False
        assert self.low is not None and self.high is not None
        return self.low <= value <= self.high

    @property
    def flag(self) -> str:
        """The command-line flag this parameter sets, vLLM style."""
        return "--" + self.name.replace("_", "-")


class ConstraintError(ValueError):
    """A constraint expression that cannot be parsed or names an unknown parameter."""


_ALLOWED_NODES = (
    ast.Expression,
    ast.Compare,
    ast.BoolOp,
    ast.UnaryOp,
    ast.BinOp,
    ast.IfExp,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.And,
    ast.Or,
    ast.Not,
    ast.USub,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Tuple,
)


@dataclass(frozen=True, slots=True)
class Constraint:
    """A known constraint: a boolean expression over parameter names.

    Examples: ``max_num_batched_tokens >= max_num_seqs``, or the conditional
    ``max_num_batched_tokens >= 8192 if not enable_chunked_prefill else True``. Only arithmetic,
    comparisons, ``and``/``or``/``not``, ``in`` and ``x if c else y`` are allowed, so an expression
    from a study file can never run code. The paper prunes the solver's space with these (§4.5.3).
    """

    expr: str
    names: frozenset[str] = field(default_factory=frozenset)

    @staticmethod
    def parse(expr: str, known: set[str] | None = None) -> Constraint:
        """Parse and check ``expr``; ``known`` lists the names it may use."""
        try:
            tree = ast.parse(expr, mode="eval")
        except SyntaxError as exc:
            raise ConstraintError(f"cannot parse constraint {expr!r}: {exc.msg}") from None
        names: set[str] = set()
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED_NODES):
                raise ConstraintError(
                    f"constraint {expr!r} uses {type(node).__name__}, which is not allowed"
                )
            if isinstance(node, ast.Name) and node.id not in ("True", "False"):
                names.add(node.id)
        if known is not None:
            unknown = sorted(names - known)
            if unknown:
                raise ConstraintError(
                    f"constraint {expr!r} names unknown parameter(s): {', '.join(unknown)}"
                )
        return Constraint(expr=expr, names=frozenset(names))

    def holds(self, values: Mapping[str, Value]) -> bool:
        """Evaluate the constraint; names it uses that are not tuned are taken from ``values``."""
        missing = self.names - values.keys()
        if missing:
            # A constraint over a flag that is neither tuned nor fixed cannot be checked here.
            return True
        return bool(eval(_compiled(self.expr), {"__builtins__": {}}, dict(values)))


@functools.cache
def _compiled(expr: str) -> Any:
    """Compile a (parsed and checked) constraint once: samplers evaluate it per draw."""
    return compile(expr, "<constraint>", "eval")


@dataclass(frozen=True, slots=True)
class Config:
    """One point of the search space: parameter name -> value, immutable and hashable."""

    items: tuple[tuple[str, Value], ...]

    @staticmethod
    def of(values: Mapping[str, Value]) -> Config:
        """Build a config from a mapping; the key order is normalised."""
        return Config(tuple(sorted(values.items())))

    def as_dict(self) -> dict[str, Value]:
        """The config as a plain dict (a copy)."""
        return dict(self.items)

    def __getitem__(self, name: str) -> Value:
        for key, value in self.items:
            if key == name:
                return value
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self.items)


class Objective(enum.StrEnum):
    """What a study optimises. TTFT and TPOT together form a Pareto problem (paper §4.2)."""

    THROUGHPUT = "throughput"
    P95_LATENCY = "p95_latency"
    TTFT = "ttft"
    TPOT = "tpot"
    GOODPUT = "goodput"
    """Requests per second meeting every SLO of ``[stress] goodput`` (issue 17)."""
    CAPACITY = "capacity"
    """The highest arrival rate whose SLO attainment reaches ``[capacity] target``."""
    COST_PER_MTOK = "cost_per_mtok"
    """Dollars per million output tokens: GPUs used x ``[cost] gpu_hour_usd`` / throughput."""
    THROUGHPUT_PER_GPU = "throughput_per_gpu"
    """Output tokens per second per GPU used (TP 1, 2 or 4 of one GPU set compare fairly)."""

    @property
    def maximize(self) -> bool:
        """Throughputs, goodput and capacity are maximised; latencies and cost minimised."""
        return self in _MAXIMISED

    @property
    def metric(self) -> str:
        """The :class:`Metrics` field this objective reads."""
        return {
            Objective.THROUGHPUT: "request_throughput",
            Objective.P95_LATENCY: "p95_e2el_ms",
            Objective.TTFT: "mean_ttft_ms",
            Objective.TPOT: "mean_tpot_ms",
            Objective.GOODPUT: "goodput",
            Objective.CAPACITY: "capacity",
            Objective.COST_PER_MTOK: "cost_per_mtok",
            Objective.THROUGHPUT_PER_GPU: "throughput_per_gpu",
        }[self]


_MAXIMISED = frozenset(
    {Objective.THROUGHPUT, Objective.GOODPUT, Objective.CAPACITY, Objective.THROUGHPUT_PER_GPU}
)


_OUTCOME = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=)\s*(\S+)\s*$")


@dataclass(frozen=True, slots=True)
class OutcomeConstraint:
    """An SLO on a measured metric, ``p95_ttft_ms <= 500`` (issue 17's ``slo`` key).

    Unlike a known :class:`Constraint` (over flags, checked before a launch), it is learned:
    a config that runs but misses it is not a crash, only not deployable.
    """

    metric: str
    op: str
    bound: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"

    def holds(self, metrics: Metrics) -> bool:
        value = getattr(metrics, self.metric, None)
        if value is None or not math.isfinite(float(value)):
            return False
        return float(value) <= self.bound if self.op == "<=" else float(value) >= self.bound

    def slack(self, value: float) -> float:
        """How far ``value`` is inside the bound (negative: outside), in the metric's unit."""
        return self.bound - value if self.op == "<=" else value - self.bound

    @staticmethod
    def parse(expr: str) -> OutcomeConstraint:
        """``METRIC <= NUMBER`` or ``METRIC >= NUMBER``, METRIC one of :data:`OUTCOME_METRICS`.

        Raises:
            ConstraintError: saying what is wrong and at which character (1-based), with the
                closest metric names for an unknown one.
        """
        m = _OUTCOME.match(expr)
        if m is None:
            at = _first_bad(expr)
            raise ConstraintError(
                f"{expr!r}: expected 'METRIC <= NUMBER' or 'METRIC >= NUMBER' (at character {at})"
            )
        name, op, number = m.groups()
        if name not in OUTCOME_METRICS:
            close = difflib.get_close_matches(name, OUTCOME_METRICS, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConstraintError(
                f"{expr!r}: unknown metric {name!r} at character {expr.index(name) + 1}{hint}"
            )
        try:
            bound = float(number)
        except ValueError:
            raise ConstraintError(
                f"{expr!r}: {number!r} is not a number (at character {expr.rindex(number) + 1})"
            ) from None
        if not math.isfinite(bound):
            raise ConstraintError(f"{expr!r}: the bound must be finite")
        return OutcomeConstraint(name, op, bound)


def _first_bad(expr: str) -> int:
    """The 1-based position where ``expr`` stops looking like ``NAME OP NUMBER``."""
    i = 0
    while i < len(expr) and expr[i].isspace():
        i += 1
    j = i
    while j < len(expr) and (expr[j].isalnum() or expr[j] == "_"):
        j += 1
    if j == i:
        return i + 1
    k = j
    while k < len(expr) and expr[k].isspace():
        k += 1
    if expr[k : k + 2] not in ("<=", ">="):
        return k + 1
    k += 2
    while k < len(expr) and expr[k].isspace():
        k += 1
    return k + 1


@dataclass(frozen=True, slots=True)
class Metrics:
    """What one stress test measured, with the definitions of ``vllm bench serve``.

    Latency statistics are over successful requests only; throughputs divide by the whole run's
    duration (first scheduled send to last completion), as vLLM does.
    """

    duration_s: float
    completed: int
    failed: int
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    mean_ttft_ms: float
    median_ttft_ms: float
    p95_ttft_ms: float
    p99_ttft_ms: float
    mean_tpot_ms: float
    median_tpot_ms: float
    p95_tpot_ms: float
    p99_tpot_ms: float
    mean_itl_ms: float
    p95_itl_ms: float
    mean_e2el_ms: float
    median_e2el_ms: float
    p95_e2el_ms: float
    p99_e2el_ms: float
    total_input_tokens: int = 0
    total_output_tokens: int = 0
    lateness_p99_ms: float = 0.0
    achieved_rate: float = 0.0
    p90_ttft_ms: float = 0.0
    p90_tpot_ms: float = 0.0
    median_itl_ms: float = 0.0
    p90_itl_ms: float = 0.0
    p99_itl_ms: float = 0.0
    p90_e2el_ms: float = 0.0
    lateness_p50_ms: float = 0.0
    lateness_max_ms: float = 0.0
    goodput: float | None = None
    """Requests per second that met every given SLO (``vllm bench serve --goodput``); None
    (not a rate of 0) when the study gives no goodput SLO, as ``vllm bench serve`` omits it."""
    capacity: float | None = None
    """The highest rate found to meet the SLO target (a ``capacity`` study only)."""
    rate_steps: tuple[tuple[float, float], ...] = ()
    """(rate, attainment) of every step of the capacity search, in the order run."""
    cost_per_mtok: float | None = None
    """$ per million output tokens (a study with ``[cost] gpu_hour_usd`` only)."""
    throughput_per_gpu: float | None = None
    """Output tokens per second per GPU the config uses."""
    stopped_early: str | None = None
    """Why the stress test was stopped before its end (issue 18), None if it ran to the end.
    Its latency metrics are then *bounds*, "at least this bad" (a censored observation): the
    value the rule proved, or what the requests finished so far measured."""
    failures: Mapping[str, int] = field(default_factory=dict)
    """Failed requests by error kind (``timeout``, ``HTTP 500``, ``connection refused``...)."""
    engine: Mapping[str, float] = field(default_factory=dict)
    """The engine's own view from its Prometheus ``/metrics``: preemptions, peak KV-cache usage,
    peak waiting/running requests, prefix-cache hit rate (empty if it exposes none)."""

    def value(self, objective: Objective) -> float:
        """The raw value of ``objective`` (not sign-adjusted)."""
        return float(getattr(self, objective.metric))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["failures"] = dict(self.failures)
        out["engine"] = dict(self.engine)
        out["rate_steps"] = [list(s) for s in self.rate_steps]
        return out

    @staticmethod
    def of(**values: Any) -> Metrics:
        """Zeros but for ``values``: the metrics of a grid lookup or a test, where only the
        objectives matter."""
        base: dict[str, Any] = dict.fromkeys(Metrics.__dataclass_fields__, 0.0)
        base.update(
            failures={}, engine={}, completed=0, failed=0, rate_steps=(), stopped_early=None
        )
        return Metrics.from_dict({**base, **values})

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Metrics:
        """Inverse of :meth:`to_dict`; unknown keys are ignored (older stores stay readable)."""
        fields = Metrics.__dataclass_fields__
        kept = {k: v for k, v in data.items() if k in fields}
        if "rate_steps" in kept:
            kept["rate_steps"] = tuple((float(r), float(a)) for r, a in kept["rate_steps"])
        return Metrics(**kept)


OUTCOME_METRICS = tuple(
    name
    for name in Metrics.__dataclass_fields__
    if name not in ("failures", "engine", "rate_steps", "completed", "failed", "stopped_early")
)
"""The metrics an outcome constraint (``slo``) may bound."""


class TrialState(enum.StrEnum):
    """A trial's life cycle (Ax/Optuna terms).

    ``failed`` is a crash or timeout: data for the feasibility model. ``abandoned`` is an
    interruption that says nothing about the config (operator stop, driver killed): excluded
    from every model.
    """

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    ABANDONED = "abandoned"

    @property
    def finished(self) -> bool:
        """Completed, failed or abandoned."""
        return self in (TrialState.COMPLETED, TrialState.FAILED, TrialState.ABANDONED)


class AbandonCause(enum.StrEnum):
    """Why a trial was abandoned: none of these says anything about its config."""

    INTERRUPTED = "interrupted"
    """The process running it died (SIGKILL, a lost SSH session, a restarted machine)."""
    OPERATOR = "operator"
    """``pause --now`` or ``cancel``."""
    INVALID_RUN = "invalid_run"
    """The load generator fell behind its schedule: the run measured the client, not the
    engine. Three in a row pause the study (:data:`scoot.jobs.policy.MAX_INVALID_RUNS`)."""
    BUDGET_SPENT = "budget_spent"
    """Still queued when the budget was spent (a retry made redundant)."""
    ERROR = "error"
    """The trial could not be built or run for a reason of the study, not the config (a
    trace unusable for its arrival mode, say): the study pauses with the message."""


class StudyState(enum.StrEnum):
    """A study's life cycle. ``active`` and ``running`` both make progress: ``active`` in a
    foreground ``scoot tune`` (a new study starts so), ``running`` on ``scoot worker``
    processes through the queue. Only an operator command or the policy changes a state."""

    ACTIVE = "active"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


class EventKind(enum.StrEnum):
    """What the store's event log records. A trial's own transitions use the trial state's
    name (``queued``, ``completed``, ...); the rest are the study's."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    ABANDONED = "abandoned"
    PAUSED = "paused"
    RESUMED = "resumed"
    CANCELLED = "cancelled"
    RECOVERED = "recovered"
    OPTIMIZER_ERROR = "optimizer-error"
    GPU_MEMORY_HELD = "gpu_memory_held"
    ERROR = "error"
    STUDY_COMPLETED = "study-completed"
    RATE_STEP = "rate-step"
    """One probe of a ``capacity`` trial's rate search: ``rate R attainment A`` (kept so a
    resumed trial repeats none)."""

    @property
    def notable(self) -> bool:
        """Worth an operator's eye in ``study status`` and the TUI (a trial's own state
        changes are in the trial table already)."""
        return self in _NOTABLE


_NOTABLE = frozenset(
    {
        EventKind.PAUSED,
        EventKind.RESUMED,
        EventKind.CANCELLED,
        EventKind.RECOVERED,
        EventKind.OPTIMIZER_ERROR,
        EventKind.GPU_MEMORY_HELD,
        EventKind.ERROR,
    }
)


class FailureKind(enum.StrEnum):
    """Why a trial failed; feeds the feasibility model and the operator's view."""

    STARTUP_OOM = "startup_oom"
    KV_CACHE_TOO_SMALL = "kv_cache_too_small"
    INVALID_ARGS = "invalid_args"
    STARTUP_CRASH = "startup_crash"
    STARTUP_TIMEOUT = "startup_timeout"
    CRASH_UNDER_LOAD = "crash_under_load"
    HANG = "hang"
    SLO_UNMEASURABLE = "slo_unmeasurable"


@dataclass(frozen=True, slots=True)
class Observation:
    """What the optimizer learns from one finished trial.

    ``metrics`` is set for completed trials; ``failure`` for failed ones. Abandoned trials are
    never turned into observations.
    """

    config: Config
    feasible: bool
    metrics: Metrics | None = None
    failure: FailureKind | None = None

    def objective(self, objective: Objective) -> float:
        """The objective's raw value; only meaningful for feasible observations."""
        if self.metrics is None:
            return math.nan
        return self.metrics.value(objective)


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A config an optimizer proposes, and which of its parts proposed it."""

    config: Config
    source: str
