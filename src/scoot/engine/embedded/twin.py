"""The calibrated twin: the embedded engine serving a step table measured on a real engine.

``scoot engine profile`` writes a table of one engine's step times (``stress/profiler.py``) with
the facts a start-up depends on (``twin`` in the table's model row): the KV-cache capacity the
engine reported, its context length and vocabulary, the batch limits it picks when none are
given, how long it takes to start, the client's per-request overhead, and the configurations
it refuses at start-up (an engine profile's constraints, with the failure each one causes).
:func:`load_twin` reads such a file once per process; ``EngineArgs(table=...)`` then resolves to
this engine instead of a GPU's (``core.py``), so a study on the twin is a prediction of the same
study on the real engine, in virtual time (``virtual.replay``) or as a server
(``scoot-engine serve --table FILE``).

The KV capacity is held fixed across configurations: exact where the engine sizes its cache by a
setting (vLLM-CPU's ``VLLM_CPU_KVCACHE_SPACE``), an approximation on a GPU, whose cache shrinks as
``max_num_batched_tokens`` raises the activation peak (docs/embedded-engine.md says by how much).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from scoot.domain import Constraint, ConstraintError, FailureKind

FAILURE_KINDS = tuple(
    k.value
    for k in (
        FailureKind.STARTUP_CRASH,
        FailureKind.STARTUP_TIMEOUT,
        FailureKind.INVALID_ARGS,
        FailureKind.STARTUP_OOM,
        FailureKind.KV_CACHE_TOO_SMALL,
    )
)
"""The kinds a start-up refusal can take (the launcher's classification of start-up)."""


class TwinError(ValueError):
    """A table that cannot serve as a twin; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A configuration the real engine refuses at start-up: it starts only if ``unless`` holds."""

    unless: Constraint
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class TwinFacts:
    """What a start-up of the profiled engine depends on, beside its step times."""

    model: str
    kv_tokens: int
    max_model_len: int
    vocab: int
    startup_s: float
    request_overhead_ms: float
    default_max_num_seqs: int
    default_max_num_batched_tokens: int
    default_block_size: int = 16
    step_scale: float = 1.0
    """How much slower a step runs under load than in the idle profile, and so the request
    overhead above, as one loaded run calibrated them (``calibrate``); 1 uncalibrated."""
    refusals: tuple[Refusal, ...] = ()

    def refusal(self, values: Mapping[str, Any]) -> Refusal | None:
        """The first refusal a configuration meets, or None where the engine would start."""
        for r in self.refusals:
            if not r.unless.holds(values):
                return r
        return None


@dataclass(frozen=True, slots=True)
class Twin:
    """A loaded profiled table: the document ``TablePerf`` reads and the facts of each model."""

    path: str
    doc: dict[str, Any]
    facts: dict[str, TwinFacts]

    def row(self, model: str) -> dict[str, Any]:
        rows: list[dict[str, Any]] = self.doc["models"][model]
        return rows[0]


def _need(where: str, table: Mapping[str, Any], key: str, kind: type) -> Any:
    value = table.get(key)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TwinError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


def facts_of(path: str, model: str, twin: Mapping[str, Any]) -> TwinFacts:
    """Validate one model row's ``twin`` table."""
    where = f"{path}: models.{model}[0].twin"
    refusals = []
    for i, item in enumerate(twin.get("refuses", [])):
        at = f"{where}.refuses[{i}]"
        if not isinstance(item, dict):
            raise TwinError(f"{at}: expected a table with unless, kind and message")
        kind = _need(at, item, "kind", str)
        if kind not in FAILURE_KINDS:
            raise TwinError(f"{at}.kind: expected one of {list(FAILURE_KINDS)}, got {kind!r}")
        try:
            unless = Constraint.parse(_need(at, item, "unless", str))
        except ConstraintError as exc:
            raise TwinError(f"{at}.unless: {exc}") from None
        refusals.append(Refusal(unless, kind, str(item.get("message", ""))))
    defaults = twin.get("defaults", {})
    facts = TwinFacts(
        model=model,
        kv_tokens=_need(where, twin, "kv_tokens", int),
        max_model_len=_need(where, twin, "max_model_len", int),
        vocab=_need(where, twin, "vocab", int),
        startup_s=_need(where, twin, "startup_s", float),
        request_overhead_ms=_need(where, twin, "request_overhead_ms", float),
        default_max_num_seqs=_need(f"{where}.defaults", defaults, "max_num_seqs", int),
        default_max_num_batched_tokens=_need(
            f"{where}.defaults", defaults, "max_num_batched_tokens", int
        ),
        default_block_size=int(defaults.get("block_size", 16)),
        step_scale=float(twin.get("step_scale", 1.0)),
        refusals=tuple(refusals),
    )
    if not 0.1 <= facts.step_scale <= 10:
        raise TwinError(f"{where}.step_scale: expected 0.1 to 10, got {facts.step_scale}")
    if min(facts.kv_tokens, facts.max_model_len, facts.vocab) < 1:
        raise TwinError(f"{where}: kv_tokens, max_model_len and vocab must be positive")
    return facts


@cache
def load_twin(path: str) -> Twin:
    """Read and check a profiled table (once per process and path).

    Raises:
        TwinError: naming the file and the key that is missing or wrong.
    """
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise TwinError(f"{path}: cannot read the table ({exc.strerror})") from None
    except ValueError as exc:
        raise TwinError(f"{path}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict) or not doc["models"]:
        raise TwinError(f"{path}: expected a step table with a non-empty 'models' table")
    for key in ("axes", "provenance"):
        if not isinstance(doc.get(key), dict):
            raise TwinError(f"{path}: '{key}' is missing")
    facts = {}
    for model, rows in doc["models"].items():
        if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
            raise TwinError(f"{path}: models.{model}: expected a list of rows")
        twin = rows[0].get("twin")
        if not isinstance(twin, dict):
            raise TwinError(
                f"{path}: models.{model}[0].twin is missing: a table made by `scoot engine "
                "profile` carries it (the shipped GPU tables are served with --gpu instead)"
            )
        facts[model] = facts_of(path, model, twin)
    return Twin(path, doc, facts)
