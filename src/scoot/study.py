"""Study files: one TOML file describes a whole tuning study; it is validated once, here.

Every error names the file and the key (``examples/x.toml: key 'trace.rate': must be > 0``),
so a broken study never starts an engine. Relative paths in a study (the trace) are resolved
against the study file's folder, so a study can be run from anywhere.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from scoot.domain import (
    Constraint,
    ConstraintError,
    Objective,
    OutcomeConstraint,
    ParamKind,
    ParamSpec,
    Value,
)
from scoot.engine.catalog import (
    Catalog,
    CatalogError,
    Flag,
    load_catalog,
    load_profile,
)
from scoot.engine.kinds import KINDS
from scoot.engine.launcher import parse_flags
from scoot.stress.formats import FORMATS as TRACE_FORMATS

if TYPE_CHECKING:
    from scoot.optim.space import SearchSpace

ENGINE_KINDS = tuple(KINDS)
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""What a study may be called: safe in file names, shell lines and terminal markup."""
ARRIVALS = ("poisson", "gamma", "constant", "trace")
ENDPOINTS = ("completions", "chat")


class StudyError(ValueError):
    """A study file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """Which engine to launch and how.

    ``command`` is an argv template (never a shell string) with ``{model}``, ``{host}`` and
    ``{port}`` placeholders; empty means the kind's built-in template. ``args`` are fixed flags
    appended to every launch (e.g. ``--max-model-len 8192``).
    """

    kind: str = "embedded"
    model: str = "llama-3.1-8b"
    gpu: str = "h100"
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    startup_timeout_s: float = 120.0
    stop_grace_s: float = 10.0
    catalog: str = ""
    """The parameter catalog flags are checked against (``vllm-0.32``); empty: none."""
    profile: str = ""
    """An engine profile whose fixed flags, environment and constraints apply (``vllm-cpu``)."""
    table: str = ""
    """A step table made by ``scoot engine profile`` (embedded kind only): the study runs on
    that engine's twin; the profile's constraints, defaults and stress limits still apply, its
    launch flags and environment (for the real engine) do not."""


@dataclass(frozen=True, slots=True)
class TraceSpec:
    """The request trace and how it is replayed."""

    file: str
    rate: float
    duration_s: float = 100.0
    arrival: str = "poisson"
    burstiness: float = 1.0
    heaviest: float = 1.0
    seed: int = 0
    format: str = "auto"
    time_scale: float = 1.0
    endpoint: str = "completions"
    too_long: str = "send"
    """Requests longer than the model's context (``--max-model-len``): ``send`` them as
    ``vllm bench serve`` would (vLLM 0.32 shortens the completion to what the context leaves
    and refuses a prompt that fills it), ``skip`` them, ``clip`` their input, or ``fail``:
    refuse the study, saying how many there are."""


@dataclass(frozen=True, slots=True)
class StressSpec:
    """Limits of one stress test."""

    request_timeout_s: float = 60.0
    drain_timeout_s: float = 120.0
    max_failed_fraction: float = 0.05
    max_lateness_ms: float = 50.0
    goodput: tuple[tuple[str, float], ...] = ()
    robustness_runs: int = 3
    """Re-tests of the winner with shuffled arrival orders after the budget (0: none)."""
    early_stop: bool = False
    """Stop a stress test once it cannot pass or, with this confidence, cannot beat the
    incumbent (scoot.stress.early_stop); off until bench/gpu_time.py measures it better."""
    early_stop_confidence: float = 0.95
    short_first: float = 0.0
    """With ``early_stop``: a short test first, deciding at this fraction of the send window
    whether the config goes on to the full test (0: off; bench/gpu_time.py found it stops
    nothing the bootstrap rule does not, so it stays off)."""
    retest_top: int = 1
    """How many of the best configs get the robustness re-tests (the default's are extra);
    with more than one, the winner is the re-tested config of best mean over its runs."""


@dataclass(frozen=True, slots=True)
class StudySpec:
    """A validated study: everything needed to run it, with no further checks."""

    name: str
    engine: EngineSpec
    trace: TraceSpec
    objectives: tuple[Objective, ...]
    params: tuple[ParamSpec, ...]
    constraints: tuple[Constraint, ...] = ()
    gpu_sets: tuple[str, ...] = ("0",)
    budget: int = 30
    parallelism: int = 1
    seed: int = 0
    stress: StressSpec = field(default_factory=StressSpec)
    source: str = ""
    slo: tuple[OutcomeConstraint, ...] = ()
    """Outcome constraints (``slo = ["p95_ttft_ms <= 500"]``): the winner must meet all."""
    gpu_hour_usd: float | None = None
    """``[cost] gpu_hour_usd``: what one GPU costs an hour, for ``cost_per_mtok``."""
    capacity_target: float = 0.99
    """``[capacity] target``: the SLO attainment the ``capacity`` objective's rate must reach."""
    capacity_max_steps: int = 5
    """``[capacity] max_steps``: rate probes per trial at most."""
    variant: str = "default"
    """``variant``: how a round of k > 1 suggestions is chosen. ``default``: MOBO's Kriging
    believer along the front, SOBO's maximin-diverse picks from MACE's Pareto set;
    ``paper``: the paper's top-k by EHVI and random picks from the MACE Pareto set
    (docs/benchmarks.md: what each measured). Where the solver falls short of a round's
    suggestions, ``default`` takes the rest from unseen configs the forest lets through,
    ranked by the model, and ``paper`` from plain Sobol (§4.7). The hidden constraints are
    learnt by one forest per launch stage under ``default`` and by the paper's single forest
    under ``paper`` (:attr:`feasibility`)."""

    @property
    def defaults(self) -> dict[str, Value] | None:
        """The engine's default config over the tuned parameters, if every one has a default."""
        if any(p.default is None for p in self.params):
            return None
        return {p.name: p.default for p in self.params if p.default is not None}

    def space(self) -> SearchSpace:
        """The study's search space, with its fixed flags visible to the constraints."""
        from scoot.optim.space import SearchSpace

        return SearchSpace(self.params, self.constraints, known_values(self.engine, self.gpu_sets))

    @property
    def feasibility(self) -> str:
        """The hidden-constraint model of the study's optimizer
        (:mod:`scoot.optim.feasibility`): ``staged`` (one forest per launch stage, which
        failed less at the same score on suite v2, docs/benchmarks.md), or the paper's
        single forest (``paper``, §4.7) under ``variant = "paper"``."""
        return "paper" if self.variant == "paper" else "staged"

    def to_json(self) -> str:
        """A canonical JSON form; two specs are the same study when these are equal. Keys
        added after the first stores are left out at their defaults, so a study recorded by
        an older SCOOT is still the same study."""
        data = asdict(self)
        data.pop("source")
        for section, key, default in LATER_KEYS:
            if data[section].get(key) == default:
                del data[section][key]
        for key, default in LATER_TOP_KEYS:
            if data[key] == default:
                del data[key]
        return json.dumps(data, sort_keys=True, default=_canonical)

    @staticmethod
    def from_json(text: str, source: str = "") -> StudySpec:
        """The spec :meth:`to_json` wrote (what the store keeps, so a worker needs no file)."""
        d = json.loads(text)

        def pairs(rows: list[list[Any]]) -> tuple[tuple[Any, Any], ...]:
            return tuple((a, b) for a, b in rows)

        e = d["engine"]
        engine = EngineSpec(
            **{
                **e,
                "command": tuple(e["command"]),
                "args": tuple(e["args"]),
                "env": pairs(e["env"]),
            }
        )
        stress = StressSpec(**{**d["stress"], "goodput": pairs(d["stress"]["goodput"])})
        params = tuple(
            ParamSpec(**{**p, "kind": ParamKind(p["kind"]), "choices": tuple(p["choices"])})
            for p in d["params"]
        )
        constraints = tuple(Constraint(c["expr"], frozenset(c["names"])) for c in d["constraints"])
        return StudySpec(
            name=d["name"],
            engine=engine,
            trace=TraceSpec(**d["trace"]),
            objectives=tuple(Objective(o) for o in d["objectives"]),
            params=params,
            constraints=constraints,
            gpu_sets=tuple(d["gpu_sets"]),
            budget=d["budget"],
            parallelism=d["parallelism"],
            seed=d["seed"],
            stress=stress,
            source=source,
            slo=tuple(OutcomeConstraint(**c) for c in d.get("slo", [])),
            gpu_hour_usd=d.get("gpu_hour_usd"),
            capacity_target=d.get("capacity_target", 0.99),
            capacity_max_steps=d.get("capacity_max_steps", 5),
            variant=d.get("variant", "default"),
        )


LATER_TOP_KEYS: tuple[tuple[str, Any], ...] = (
    ("slo", ()),
    ("gpu_hour_usd", None),
    ("capacity_target", 0.99),
    ("capacity_max_steps", 5),
    ("variant", "default"),
)
"""Top-level StudySpec fields newer than stored studies, with their defaults."""

LATER_KEYS = (
    ("trace", "too_long", "send"),
    ("engine", "table", ""),
    ("stress", "early_stop", False),
    ("stress", "early_stop_confidence", 0.95),
    ("stress", "short_first", 0.0),
    ("stress", "retest_top", 1),
)
"""(section, key, default) of study keys newer than stored studies."""
TOO_LONG = ("send", "skip", "clip", "fail")

VARIANTS = ("default", "paper")
"""``variant``'s values (:attr:`StudySpec.variant`)."""

_STRESS = StressSpec()
_ENGINE = EngineSpec()

_TOP_KEYS = {
    "name",
    "objectives",
    "budget",
    "parallelism",
    "seed",
    "gpu_sets",
    "engine",
    "trace",
    "stress",
    "params",
    "constraints",
    "slo",
    "cost",
    "capacity",
    "variant",
}


class _Reader:
    """Typed access to a TOML table that reports the file and the dotted key on error."""

    def __init__(self, path: str, table: Mapping[str, Any], prefix: str = "") -> None:
        self.path = path
        self.table = table
        self.prefix = prefix

    def fail(self, key: str, message: str) -> StudyError:
        return StudyError(f"{self.path}: key '{(self.prefix + key).rstrip('.')}': {message}")

    def check_keys(self, allowed: set[str]) -> None:
        for key in self.table:
            if key not in allowed:
                raise self.fail(key, f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.table:
            if default is ...:
                raise self.fail(key, "missing")
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # TOML ints are fine where floats are expected; bools are never numbers.
        if (
            float in kinds
            and int not in kinds
            and isinstance(value, int)
            and not isinstance(value, bool)
        ):
            value = float(value)
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(key, f"expected {_names(kinds)}, got a boolean")
        if not isinstance(value, kinds):
            raise self.fail(key, f"expected {_names(kinds)}, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(key, f"must be a finite number, got {value}")
        return value

    def non_negative(self, key: str, default: int) -> int:
        value = int(self.get(key, int, default))
        if value < 0:
            raise self.fail(key, f"must be >= 0, got {value}")
        return value

    def positive(self, key: str, kind: type, default: Any = ...) -> Any:
        value = self.get(key, kind, default)
        if value is not None and value <= 0:
            raise self.fail(key, f"must be > 0, got {value}")
        return value

    def sub(self, key: str) -> _Reader:
        table = self.get(key, dict, {})
        return _Reader(self.path, table, f"{self.prefix}{key}.")


def _names(kinds: tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kinds)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def warnings_of(spec: StudySpec) -> list[str]:
    """What a valid study does that an operator should know before it starts."""
    out = []
    host = fixed_flag_values(spec.engine.args).get("host")
    if host is not None and str(host) not in LOOPBACK:
        out.append(
            f"{spec.source}: [engine] args bind the engine to --host {host}: every launch "
            "listens beyond this machine (SCOOT binds 127.0.0.1 unless a study says so)"
        )
    if spec.engine.profile:
        effective: list[str] = list(_profile(spec.engine).get("effective", []))
        idle = [p.name for p in spec.params if effective and p.name not in effective]
        if idle:
            out.append(
                f"{spec.source}: profile {spec.engine.profile} says {', '.join(idle)} "
                f"{'has' if len(idle) == 1 else 'have'} no measurable effect there (tuning "
                f"spends evaluations on noise; it measures: {', '.join(effective)})"
            )
    return out


def devices_of(gpu_set: str) -> str:
    """The CUDA devices of a GPU set: ``"0,1"``, or ``"node2:0,1"`` for a set on the machine
    whose worker advertises it (``scoot worker --gpu-sets node2:0,1``)."""
    return gpu_set.rsplit(":", 1)[-1]


def load_study(path: str | Path) -> StudySpec:
    """Read and validate a study file.

    Raises:
        StudyError: naming the file and key of the first problem found.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StudyError(f"{path}: cannot read study file: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{path}: not valid TOML: {exc}") from None
    return parse_study(data, str(path), base=path.parent)


def parse_study(data: Mapping[str, Any], path: str, base: Path | None = None) -> StudySpec:
    """Validate a parsed study table; ``path`` is used in error messages."""
    top = _Reader(path, data)
    top.check_keys(_TOP_KEYS)
    name = top.get("name", str, None) or Path(path).stem
    if not STUDY_NAME.fullmatch(name):
        raise top.fail(
            "name",
            f"{name!r}: a study name is 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (it names files and appears in terminals)",
        )
    objectives = _objectives(top)
    budget = top.positive("budget", int, 30)
    parallelism = top.positive("parallelism", int, 1)
    seed = top.non_negative("seed", 0)
    gpu_sets = tuple(top.get("gpu_sets", list, ["0"]))
    if not gpu_sets:
        raise top.fail("gpu_sets", 'needs at least one GPU set, e.g. ["0"]')
    for i, gpu_set in enumerate(gpu_sets):
        if not isinstance(gpu_set, str) or not all(
            part.strip().isdigit() for part in devices_of(gpu_set).split(",")
        ):
            raise top.fail(
                f"gpu_sets[{i}]",
                f'expected a GPU list such as "0,1" or "node2:0,1", got {gpu_set!r}',
            )
    if len(set(gpu_sets)) != len(gpu_sets):
        raise top.fail("gpu_sets", "lists a GPU set twice")

    engine = _engine(top.sub("engine"), base)
    trace = _trace(top.sub("trace"), base)
    stress = _stress(top.sub("stress"), _profile(engine).get("stress", {}))
    params = _params(top.sub("params"), engine, gpu_sets)
    names = {p.name for p in params}
    fixed = set(known_values(engine, gpu_sets))
    from_catalog = _catalog_constraints(engine, names)
    constraints = list(from_catalog)
    for i, expr in enumerate(top.get("constraints", list, [])):
        if not isinstance(expr, str):
            raise top.fail(f"constraints[{i}]", "expected a string expression")
        try:
            constraints.append(Constraint.parse(expr, names | fixed))
        except ConstraintError as exc:
            raise top.fail(f"constraints[{i}]", str(exc)) from None
    slo = _slo(top)
    cost = top.sub("cost")
    cost.check_keys({"gpu_hour_usd"})
    gpu_hour_usd = cost.positive("gpu_hour_usd", float, None)
    cap = top.sub("capacity")
    cap.check_keys({"target", "max_steps"})
    target = cap.get("target", float, 0.99)
    if not 0.0 < target <= 1.0:
        raise cap.fail("target", f"an SLO attainment in (0, 1], got {target}")
    max_steps = cap.positive("max_steps", int, 5)
    variant = top.get("variant", str, "default")
    if variant not in VARIANTS:
        raise top.fail("variant", f"{variant!r}: expected one of {', '.join(VARIANTS)}")
    _objective_needs(top, objectives, stress, gpu_hour_usd)
    spec = StudySpec(
        name=name,
        engine=engine,
        trace=trace,
        objectives=objectives,
        params=params,
        constraints=tuple(constraints),
        gpu_sets=gpu_sets,
        budget=budget,
        parallelism=parallelism,
        seed=seed,
        stress=stress,
        source=path,
        slo=slo,
        gpu_hour_usd=gpu_hour_usd,
        capacity_target=target,
        capacity_max_steps=max_steps,
        variant=variant,
    )
    _constraints_evaluate(top, spec, len(from_catalog))
    _choices_meet_constraints(top, spec)
    defaults = spec.defaults
    if defaults is not None:
        values = {**known_values(engine, gpu_sets), **defaults}
        for i, c in enumerate(spec.constraints):
            if c.holds(values):
                continue
            if i < len(from_catalog):
                raise top.fail(
                    "params",
                    f"the parameters' defaults violate {c.expr!r}, a known constraint of "
                    f"{engine.catalog or engine.profile}",
                )
            raise top.fail(
                f"constraints[{i - len(from_catalog)}]",
                f"the parameters' defaults violate {c.expr!r}",
            )
    return spec


def _choices_meet_constraints(top: _Reader, spec: StudySpec) -> None:
    """Every choice of an enum meets the known constraints over that flag alone (a block size
    of 24 where the backend takes multiples of 16 is no config, whatever else is chosen)."""
    fixed = known_values(spec.engine, spec.gpu_sets)
    for p in spec.params:
        if p.kind is not ParamKind.ENUM:
            continue
        alone = [c for c in spec.constraints if c.names <= {p.name} | fixed.keys()]
        for choice in p.choices:
            for c in alone:
                if not c.holds({**fixed, p.name: choice}):
                    raise top.fail(
                        f"params.{p.name}.choices",
                        f"{choice!r} violates {c.expr!r}, a known constraint",
                    )


def _constraints_evaluate(top: _Reader, spec: StudySpec, n_catalog: int) -> None:
    """Every constraint evaluates (to anything) at the space's corners and its defaults: one
    that raises (a division by zero, a string compared with a number) is refused here, not
    in the middle of a study."""
    fixed = known_values(spec.engine, spec.gpu_sets)
    points = [
        {p.name: p.low if p.low is not None else p.choices[0] for p in spec.params},
        {p.name: p.high if p.high is not None else p.choices[-1] for p in spec.params},
    ]
    if spec.defaults is not None:
        points.append(dict(spec.defaults))
    for i, c in enumerate(spec.constraints):
        for point in points:
            try:
                c.holds({**fixed, **point})
            except Exception as exc:
                key = "params" if i < n_catalog else f"constraints[{i - n_catalog}]"
                raise top.fail(
                    key, f"{c.expr!r} raises {type(exc).__name__} ({exc}) at {point}"
                ) from None


def profile_defaults(engine: EngineSpec) -> dict[str, Value]:
    """What the engine's profile says it picks on its machine (``[defaults]``: vLLM-CPU takes
    128 sequences, 2,048 batched tokens and blocks of 128 where a GPU would take others)."""
    table = _profile(engine).get("defaults", {})
    return {k: v for k, v in table.items() if isinstance(v, int | float | str | bool)}


def known_values(engine: EngineSpec, gpu_sets: tuple[str, ...]) -> dict[str, Value]:
    """What constraints may read besides the tuned flags: the fixed flags (``max_model_len``
    ...), the profile's defaults for the flags neither tuned nor fixed (so a constraint over an
    untuned flag is checked against what the engine will take, not skipped), and
    ``gpu_count``, the number of GPUs in a set."""
    values = {**profile_defaults(engine), **fixed_flag_values(engine.args)}
    values["gpu_count"] = len(devices_of(gpu_sets[0]).split(",")) if gpu_sets else 1
    return values


def _catalog_constraints(engine: EngineSpec, tuned: set[str]) -> list[Constraint]:
    """The catalog's and the profile's known constraints that involve a tuned flag."""
    exprs: list[str] = []
    if engine.catalog:
        exprs += list(load_catalog(engine.catalog).constraints)
    if engine.profile:
        exprs += list(_profile(engine).get("constraints", ()))
    out = []
    for expr in exprs:
        c = Constraint.parse(expr)
        if c.names & tuned:
            out.append(c)
    return out


def _objectives(top: _Reader) -> tuple[Objective, ...]:
    """One objective, or two distinct ones (a Pareto front): the paper's three service kinds
    (``["throughput"]``, ``["p95_latency"]``, ``["ttft", "tpot"]``) or any of issue 17's."""
    raw = top.get("objectives", list)
    allowed = [o.value for o in Objective]
    result = []
    for i, item in enumerate(raw):
        if item not in allowed:
            close = difflib.get_close_matches(str(item), allowed, n=2)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise top.fail(f"objectives[{i}]", f"expected one of {allowed}, got {item!r}{hint}")
        result.append(Objective(item))
    if not 1 <= len(result) <= 2 or len(set(result)) != len(result):
        raise top.fail(
            "objectives",
            'one objective or two distinct ones, e.g. ["p95_latency"] or ["ttft", "tpot"]; '
            f"got {raw}",
        )
    return tuple(result)


def _slo(top: _Reader) -> tuple[OutcomeConstraint, ...]:
    """``slo = ["p95_ttft_ms <= 500", "mean_tpot_ms <= 50"]``: outcome constraints."""
    out = []
    for i, expr in enumerate(top.get("slo", list, [])):
        if not isinstance(expr, str):
            raise top.fail(
                f"slo[{i}]", f"expected a string such as 'p95_ttft_ms <= 500', got {expr!r}"
            )
        try:
            out.append(OutcomeConstraint.parse(expr))
        except ConstraintError as exc:
            raise top.fail(f"slo[{i}]", str(exc)) from None
    return tuple(out)


def _objective_needs(
    top: _Reader,
    objectives: tuple[Objective, ...],
    stress: StressSpec,
    gpu_hour_usd: float | None,
) -> None:
    """The keys an objective reads must be there."""
    for o in objectives:
        if o in (Objective.GOODPUT, Objective.CAPACITY) and not stress.goodput:
            raise top.fail(
                "objectives",
                f"{o.value!r} counts requests meeting the SLOs of [stress] goodput, which "
                "is not set (e.g. goodput = { ttft_ms = 500, tpot_ms = 50 })",
            )
        if o is Objective.COST_PER_MTOK and gpu_hour_usd is None:
            raise top.fail(
                "objectives",
                "'cost_per_mtok' needs [cost] gpu_hour_usd (what one GPU costs an hour)",
            )


def _engine(r: _Reader, base: Path | None = None) -> EngineSpec:
    r.check_keys(
        {
            "kind",
            "model",
            "gpu",
            "command",
            "args",
            "env",
            "startup_timeout_s",
            "stop_grace_s",
            "catalog",
            "profile",
            "table",
        }
    )
    kind = r.get("kind", str, "embedded")
    if kind not in ENGINE_KINDS:
        raise r.fail("kind", f"expected one of {list(ENGINE_KINDS)}, got {kind!r}")
    command = _str_list(r, "command")
    if kind == "command" and not command:
        raise r.fail("command", 'required when kind = "command"')
    profile_name = r.get("profile", str, "")
    profile: dict[str, Any] = {}
    if profile_name:
        try:
            profile = load_profile(profile_name)
        except CatalogError as exc:
            raise r.fail("profile", str(exc)) from None
    catalog = r.get("catalog", str, profile.get("catalog") or KINDS[kind].catalog)
    if catalog:
        try:
            load_catalog(catalog)
        except CatalogError as exc:
            raise r.fail("catalog", str(exc)) from None
    table = _twin_table(r, kind, base)
    if table:  # the profile's launch flags and environment are for the real engine
        profile = {k: v for k, v in profile.items() if k not in ("args", "env")}
    env_table = {**profile.get("env", {}), **r.get("env", dict, {})}
    env = []
    for key, value in env_table.items():
        if not key or "=" in key or "\0" in key:
            raise r.fail(
                f"env.{key}", "an environment variable's name has no '=' and is not empty"
            )
        if not isinstance(value, str) or "\0" in value:
            raise r.fail(f"env.{key}", "expected a string")
        env.append((key, value))
    startup = r.positive(
        "startup_timeout_s", float, profile.get("startup_timeout_s", _ENGINE.startup_timeout_s)
    )
    return EngineSpec(
        kind=kind,
        model=r.get("model", str, _ENGINE.model),
        gpu=r.get("gpu", str, _ENGINE.gpu),
        command=command,
        args=(("--table", table) if table else ())
        + tuple(profile.get("args", ()))
        + _str_list(r, "args"),
        env=tuple(env),
        startup_timeout_s=float(startup),
        stop_grace_s=r.positive("stop_grace_s", float, _ENGINE.stop_grace_s),
        catalog=catalog,
        profile=profile_name,
        table=table,
    )


def _twin_table(r: _Reader, kind: str, base: Path | None) -> str:
    """``[engine] table``, checked once here: the file, its twin facts and the model."""
    table: str = r.get("table", str, "")
    if not table:
        return ""
    if kind != "embedded":
        raise r.fail(
            "table", 'a profiled table is served by the embedded engine: kind = "embedded"'
        )
    if base is not None and not Path(table).is_absolute():
        table = str((base / table).resolve())
    from scoot.engine.embedded.twin import TwinError, load_twin

    try:
        twin = load_twin(table)
    except TwinError as exc:
        raise r.fail("table", str(exc)) from None
    model = r.get("model", str, _ENGINE.model)
    if model not in twin.facts:
        raise r.fail(
            "model",
            f"{model!r} is not in the table {table} (it profiles: {', '.join(twin.facts)})",
        )
    return table


def _str_list(r: _Reader, key: str) -> tuple[str, ...]:
    items = r.get(key, list, [])
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise r.fail(f"{key}[{i}]", f"expected a string, got {type(item).__name__}")
    return tuple(items)


def _trace(r: _Reader, base: Path | None) -> TraceSpec:
    r.check_keys(
        {
            "file",
            "rate",
            "duration_s",
            "arrival",
            "burstiness",
            "heaviest",
            "seed",
            "format",
            "time_scale",
            "endpoint",
            "too_long",
        }
    )
    file = r.get("file", str)
    if base is not None and not Path(file).is_absolute():
        file = str((base / file).resolve())
    if not Path(file).is_file():
        raise r.fail("file", f"no such trace file: {file}")
    arrival = r.get("arrival", str, "poisson")
    if arrival not in ARRIVALS:
        raise r.fail("arrival", f"expected one of {list(ARRIVALS)}, got {arrival!r}")
    heaviest = r.positive("heaviest", float, 1.0)
    if heaviest > 1.0:
        raise r.fail("heaviest", f"is a fraction of the requests, must be <= 1, got {heaviest}")
    rate = r.positive("rate", float)
    if not math.isfinite(rate):
        raise r.fail("rate", "must be finite")
    fmt = r.get("format", str, "auto")
    if fmt not in TRACE_FORMATS:
        raise r.fail("format", f"expected one of {list(TRACE_FORMATS)}, got {fmt!r}")
    too_long = r.get("too_long", str, "send")
    if too_long not in TOO_LONG:
        raise r.fail("too_long", f"expected one of {list(TOO_LONG)}, got {too_long!r}")
    endpoint = r.get("endpoint", str, "completions")
    if endpoint not in ENDPOINTS:
        raise r.fail("endpoint", f"expected one of {list(ENDPOINTS)}, got {endpoint!r}")
    return TraceSpec(
        file=file,
        rate=rate,
        duration_s=r.positive("duration_s", float, 100.0),
        arrival=arrival,
        burstiness=r.positive("burstiness", float, 1.0),
        heaviest=heaviest,
        seed=r.non_negative("seed", 0),
        format=fmt,
        time_scale=r.positive("time_scale", float, 1.0),
        endpoint=endpoint,
        too_long=too_long,
    )


def _profile(engine: EngineSpec) -> dict[str, Any]:
    return load_profile(engine.profile) if engine.profile else {}


def _stress(r: _Reader, profile: Mapping[str, Any]) -> StressSpec:
    """``[stress]``; a profile may set workable defaults for its machine (a CPU engine shares
    the cores with the load generator, so the client's lateness limit is looser there)."""
    r.check_keys(
        {
            "request_timeout_s",
            "drain_timeout_s",
            "max_failed_fraction",
            "max_lateness_ms",
            "goodput",
            "robustness_runs",
            "early_stop",
            "early_stop_confidence",
            "short_first",
            "retest_top",
        }
    )
    runs = r.get("robustness_runs", int, _STRESS.robustness_runs)
    confidence = r.get("early_stop_confidence", float, _STRESS.early_stop_confidence)
    if not 0.5 <= confidence < 1.0:
        raise r.fail("early_stop_confidence", f"must be within [0.5, 1), got {confidence}")
    if runs < 0:
        raise r.fail("robustness_runs", f"must be >= 0, got {runs}")
    early = r.get("early_stop", bool, _STRESS.early_stop)
    short = r.get("short_first", float, _STRESS.short_first)
    if not 0.0 <= short < 1.0:
        raise r.fail("short_first", f"must be within [0, 1), got {short}")
    if short and not early:
        raise r.fail("short_first", "needs early_stop = true (it is one of its rules)")
    frac = r.get("max_failed_fraction", float, _STRESS.max_failed_fraction)
    if not 0.0 <= frac <= 1.0:
        raise r.fail("max_failed_fraction", f"must be within [0, 1], got {frac}")
    return StressSpec(
        request_timeout_s=r.positive("request_timeout_s", float, _STRESS.request_timeout_s),
        drain_timeout_s=r.positive("drain_timeout_s", float, _STRESS.drain_timeout_s),
        max_failed_fraction=frac,
        max_lateness_ms=r.positive(
            "max_lateness_ms",
            float,
            float(profile.get("max_lateness_ms", _STRESS.max_lateness_ms)),
        ),
        goodput=_goodput(r),
        robustness_runs=runs,
        early_stop=early,
        early_stop_confidence=confidence,
        short_first=short,
        retest_top=r.positive("retest_top", int, _STRESS.retest_top),
    )


def _goodput(r: _Reader) -> tuple[tuple[str, float], ...]:
    """``goodput = { ttft_ms = 500, tpot_ms = 50, e2el_ms = 10000 }``: SLOs for goodput."""
    table = r.get("goodput", dict, {})
    out = []
    for key, value in table.items():
        if key not in ("ttft_ms", "tpot_ms", "e2el_ms"):
            raise r.fail(f"goodput.{key}", "expected ttft_ms, tpot_ms or e2el_ms")
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise r.fail(f"goodput.{key}", f"must be a positive number, got {value!r}")
        out.append((key.removesuffix("_ms"), float(value)))
    return tuple(sorted(out))


def _params(r: _Reader, engine: EngineSpec, gpu_sets: tuple[str, ...]) -> tuple[ParamSpec, ...]:
    if not r.table:
        raise r.fail("", "a study needs at least one parameter to tune under [params.NAME]")
    catalog = load_catalog(engine.catalog) if engine.catalog else None
    result = []
    for name in r.table:
        if not name.isidentifier():
            raise r.fail(name, "parameter names use underscores, e.g. max_num_seqs")
        sub = r.sub(name)
        if catalog is not None:
            sub = _from_catalog(catalog, name, sub, engine, gpu_sets)
        result.append(_param(name, sub))
    return tuple(result)


def _from_catalog(
    catalog: Catalog, name: str, r: _Reader, engine: EngineSpec, gpu_sets: tuple[str, ...]
) -> _Reader:
    """The parameter's table with what the study leaves out taken from the catalog: type,
    range, scale, choices and the engine's default. A flag the catalog does not know, a type
    that disagrees with the engine's, or a choice the engine refuses is an error here."""
    try:
        flag = catalog.flag(name)
    except CatalogError as exc:
        raise r.fail("", str(exc)) from None
    if engine.kind == "embedded" and name not in embedded_flags():
        raise r.fail("", f"the embedded engine does not emulate --{name.replace('_', '-')}")
    given = dict(r.table)
    if flag.kind == "int" and "choices" in given and given.get("type", "enum") == "enum":
        # A study may tune an int flag over values it picks (block sizes 16, 32, 64).
        choices = given.get("choices")
        if isinstance(choices, list) and choices and all(_is_int(c) for c in choices):
            for c in choices:
                _within_hard_limits(r, flag, {"low": c}, f"{catalog.engine} {catalog.version}")
            given["type"] = "enum"
            if "default" not in given:
                given["default"] = _default_of(flag, engine, gpu_sets, name, r)
            return _Reader(r.path, given, r.prefix)
        raise r.fail(
            "choices",
            f"{catalog.engine} {catalog.version} takes --{name.replace('_', '-')} as an int: "
            "an enum of it lists ints",
        )
    if "type" in given and given["type"] != flag.kind:
        raise r.fail(
            "type",
            f"{catalog.engine} {catalog.version} takes --{name.replace('_', '-')} as "
            f"{flag.kind}, got {given['type']!r}",
        )
    merged: dict[str, Any] = {"type": flag.kind}
    if flag.kind in ("int", "float"):
        # What the study leaves out comes from the catalog, bound by bound; the log scale too.
        merged.update(low=_num(flag.low, flag.kind), high=_num(flag.high, flag.kind))
        merged["log"] = flag.log
        _within_hard_limits(r, flag, given, f"{catalog.engine} {catalog.version}")
    if flag.kind == "enum":
        if "choices" in given and flag.choices:
            bad = [c for c in given["choices"] if c not in flag.choices]
            if bad:
                raise r.fail(
                    "choices",
                    f"{catalog.engine} {catalog.version} accepts {list(flag.choices)} for "
                    f"--{name.replace('_', '-')}, not {bad}",
                )
        else:
            merged["choices"] = list(flag.choices)
    if "default" not in given:
        merged["default"] = _default_of(flag, engine, gpu_sets, name, r)
    merged.update(given)
    return _Reader(r.path, merged, r.prefix)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _default_of(
    flag: Flag, engine: EngineSpec, gpu_sets: tuple[str, ...], name: str, r: _Reader
) -> Value:
    """The engine's default for a flag: the catalog's, or for one the engine picks at start-up
    (``auto``), what the embedded engine or the profile knows it picks."""
    if not flag.auto:
        return cast(Value, flag.default)
    default = engine_default(engine, gpu_sets, name)
    if default is None:
        raise r.fail(
            "default",
            f"{engine.kind} picks --{name.replace('_', '-')} at start-up "
            f"({flag.note or 'from the hardware'}); give the value it takes on your GPUs",
        )
    return default


def _within_hard_limits(r: _Reader, flag: Flag, given: Mapping[str, Any], engine: str) -> None:
    """A study may tune wider than the catalog's range (a tuning range, not the engine's
    limits), but not into values the flag cannot take: a flag whose catalog range is positive
    takes only positive values (``--max-num-seqs -1`` is no config), and a fraction (a float
    range within (0, 1]) stays at most 1."""
    flag_name = "--" + flag.name.replace("_", "-")
    low, high = given.get("low"), given.get("high")
    positive = flag.low is not None and flag.low > 0
    for key, value in (("low", low), ("high", high)):
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if positive and value <= 0:
            raise r.fail(key, f"{engine} takes only positive values for {flag_name}, got {value}")
        fraction = flag.kind == "float" and flag.high is not None and 0 < flag.high <= 1
        if fraction and value > 1:
            raise r.fail(key, f"{engine} takes {flag_name} as a fraction (at most 1), got {value}")


def _num(value: float | None, kind: str) -> Any:
    if value is None:
        return None
    return int(value) if kind == "int" else float(value)


def embedded_flags() -> set[str]:
    """The vLLM flags the embedded engine emulates (its own parser's)."""
    from scoot.engine.embedded.__main__ import build_parser

    return {a.dest for a in build_parser()._actions if a.option_strings}


def engine_default(engine: EngineSpec, gpu_sets: tuple[str, ...], name: str) -> Value | None:
    """The value an engine picks at start-up for an ``auto`` flag, where SCOOT can know it
    (the embedded engine computes it as vLLM 0.32 does); None otherwise."""
    if engine.kind != "embedded":
        return profile_defaults(engine).get(name)
    from scoot.engine.embedded.core import EngineArgs, EngineStartupError
    from scoot.engine.embedded.perf import cudagraph_capture_sizes

    fixed = fixed_flag_values(engine.args)
    try:
        resolved = EngineArgs(
            model=engine.model,
            gpu=engine.gpu,
            table=engine.table,
            max_model_len=int(fixed["max_model_len"]) if "max_model_len" in fixed else None,
            tensor_parallel_size=int(fixed.get("tensor_parallel_size", 1)),
            gpus_available=len(devices_of(gpu_sets[0]).split(",")) if gpu_sets else 1,
        ).resolved()
    except (EngineStartupError, KeyError, ValueError):
        return None
    known: dict[str, Value] = {
        "max_num_seqs": resolved.max_num_seqs,
        "max_num_batched_tokens": resolved.max_num_batched_tokens,
        "max_num_active_seqs": resolved.max_num_seqs,
        "enable_chunked_prefill": True,
        "enable_prefix_caching": True,
        "block_size": resolved.block_size,
        "max_cudagraph_capture_size": max(cudagraph_capture_sizes(resolved.max_num_seqs, None)),
    }
    return known.get(name)


def _param(name: str, r: _Reader) -> ParamSpec:
    r.check_keys({"type", "low", "high", "choices", "log", "default"})
    kind_raw = r.get("type", str)
    try:
        kind = ParamKind(kind_raw)
    except ValueError:
        raise r.fail(
            "type", f"expected one of {[k.value for k in ParamKind]}, got {kind_raw!r}"
        ) from None
    log = r.get("log", bool, False)
    default: Value | None
    if kind is ParamKind.BOOL:
        default = r.get("default", bool, None)
        return ParamSpec(name, kind, choices=(False, True), default=default)
    if kind is ParamKind.ENUM:
        choices = r.get("choices", list)
        if len(choices) < 2:
            raise r.fail("choices", "an enum needs at least two choices")
        if len(set(map(repr, choices))) != len(choices):
            raise r.fail("choices", "lists a choice twice")
        for i, c in enumerate(choices):
            if not isinstance(c, int | float | str) or isinstance(c, bool):
                raise r.fail(f"choices[{i}]", "expected a number or a string")
        default = r.get("default", (int, float, str), None)
        if default is not None and default not in choices:
            raise r.fail("default", f"{default!r} is not one of the choices {choices}")
        return ParamSpec(name, kind, choices=tuple(choices), default=default)
    num = int if kind is ParamKind.INT else float
    low = r.get("low", num)
    high = r.get("high", num)
    if low >= high:
        raise r.fail("high", f"must be greater than low ({low}), got {high}")
    if log and low <= 0:
        raise r.fail("low", f"must be > 0 on a log scale, got {low}")
    default = r.get("default", num, None)
    if default is not None and not low <= default <= high:
        raise r.fail("default", f"{default} is outside [{low}, {high}]")
    return ParamSpec(name, kind, low=float(low), high=float(high), log=log, default=default)


def fixed_flag_values(args: tuple[str, ...]) -> dict[str, Value]:
    """Values of fixed ``--flag value`` pairs, so constraints may refer to them."""
    return {k: v for k, v in parse_flags(args) if k and not isinstance(v, list)}


def _canonical(value: object) -> object:
    # Sets (a constraint's names) in a stable order: str hashing is randomised per process.
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)
