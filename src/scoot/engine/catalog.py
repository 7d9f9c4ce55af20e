"""Parameter catalogs: the flags of an engine version worth tuning, as data.

One TOML file per engine and version in ``scoot/engine/catalogs/`` (``vllm-0.32.toml``, ...).
A catalog lists every flag that changes how the engine schedules, batches, caches, parallelises
or compiles, but not what it outputs (no quantization, no speculative decoding: the paper's
rule), with its type, the engine's default, a legal range or choices, whether a log scale fits,
and the known constraints between flags (§4.5.3).

The catalog is made from the engine's own argument parser (:func:`generate`, from the JSON that
``scoot/engine/introspect.py`` prints when run by the engine's Python): types, defaults and
choices come from the parser; ranges and log scales (which no parser knows) from :data:`HINTS`.
A new engine version is one command away (``scoot engine catalog --from vllm``) and
:func:`diff` says what it added, removed or changed.
"""

from __future__ import annotations

import copy
import functools
import json
import subprocess
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from scoot.engine.kinds import kind_of
from scoot.engine.launcher import number_or_word

AUTO = "auto"
"""A default the engine computes at start-up (from the GPU, the model or other flags)."""


class CatalogError(ValueError):
    """A catalog that cannot be read, or a flag it does not know."""


@dataclass(frozen=True, slots=True)
class Hint:
    """What a parser cannot say: the flag's group, tuning range and scale, and any note."""

    group: str
    kind: str  # int | float | bool | enum
    low: float | None = None
    high: float | None = None
    log: bool = False
    note: str = ""


# The flags worth tuning (no effect on outputs), with ranges. The keys are the parser's dests.
HINTS: dict[str, dict[str, Hint]] = {
    "vllm": {
        "max_num_seqs": Hint(
            "scheduler", "int", 1, 2048, True, "default: 1024 on >= 70 GiB GPUs but A100, else 256"
        ),
        "max_num_batched_tokens": Hint(
            "scheduler",
            "int",
            64,
            65536,
            True,
            "default: 8192 on >= 70 GiB GPUs but A100 (16384 from 160 GiB), else 2048",
        ),
        "max_num_active_seqs": Hint("scheduler", "int", 1, 2048, True, "default: max_num_seqs"),
        "enable_chunked_prefill": Hint(
            "scheduler", "bool", note="default: on for models that support it"
        ),
        "long_prefill_token_threshold": Hint("scheduler", "int", 0, 32768),
        "scheduling_policy": Hint("scheduler", "enum"),
        "async_scheduling": Hint("scheduler", "bool", note="default: on where supported"),
        "stream_interval": Hint("scheduler", "int", 1, 64, True),
        "block_size": Hint(
            "cache",
            "int",
            16,
            256,
            True,
            "default: 16 on GPUs; the parser takes any int, the attention backend a multiple of "
            "16 (of 32 on CPU: the vllm-cpu profile)",
        ),
        "gpu_memory_utilization": Hint("cache", "float", 0.5, 0.99),
        "enable_prefix_caching": Hint("cache", "bool", note="default: on"),
        "tensor_parallel_size": Hint("parallel", "int", 1, 8),
        "pipeline_parallel_size": Hint("parallel", "int", 1, 8),
        "data_parallel_size": Hint("parallel", "int", 1, 8),
        "enable_expert_parallel": Hint("parallel", "bool", note="MoE models only"),
        "disable_custom_all_reduce": Hint("parallel", "bool"),
        "enforce_eager": Hint("graphs", "bool"),
        "max_cudagraph_capture_size": Hint(
            "graphs", "int", 1, 1024, True, "default: min(max_num_seqs x 2, 512)"
        ),
        "performance_mode": Hint("graphs", "enum"),
    },
    "sglang": {
        "max_running_requests": Hint(
            "scheduler", "int", 1, 4096, True, "default: from the KV pool size"
        ),
        "chunked_prefill_size": Hint(
            "scheduler", "int", 512, 32768, True, "default: 2048-16384 by GPU memory"
        ),
        "max_prefill_tokens": Hint("scheduler", "int", 1024, 65536, True),
        "schedule_policy": Hint("scheduler", "enum"),
        "schedule_conservativeness": Hint("scheduler", "float", 0.1, 2.0, True),
        "num_continuous_decode_steps": Hint("scheduler", "int", 1, 16, True),
        "enable_mixed_chunk": Hint("scheduler", "bool"),
        "disable_overlap_schedule": Hint("scheduler", "bool"),
        "stream_interval": Hint("scheduler", "int", 1, 64, True),
        "mem_fraction_static": Hint("cache", "float", 0.5, 0.95, note="default: by GPU memory"),
        "page_size": Hint("cache", "enum", note="default: 1 (backend-dependent)"),
        "disable_radix_cache": Hint("cache", "bool"),
        "tp_size": Hint("parallel", "int", 1, 8),
        "dp_size": Hint("parallel", "int", 1, 8),
        "cuda_graph_max_bs": Hint("graphs", "int", 1, 1024, True, "default: by GPU memory and TP"),
        "disable_cuda_graph": Hint("graphs", "bool"),
    },
}

ENUM_CHOICES: dict[str, dict[str, list[Any]]] = {
    # Parsers type these as plain ints: the values a study may choose from (SGLang's catalog is
    # written by hand; vLLM's follows its parser, its backends' limits are constraints).
    "sglang": {"page_size": [1, 16, 32, 64]},
}

CONSTRAINTS: dict[str, list[str]] = {
    "vllm": [
        "max_num_batched_tokens >= max_num_seqs",
        "max_num_batched_tokens >= max_model_len if not enable_chunked_prefill else True",
        "max_num_active_seqs <= max_num_seqs",
        "long_prefill_token_threshold <= max_model_len",
        "tensor_parallel_size * pipeline_parallel_size * data_parallel_size == gpu_count",
        "block_size % 16 == 0",
    ],
    "sglang": [
        "max_prefill_tokens >= chunked_prefill_size",
        "tp_size * dp_size == gpu_count",
    ],
}


@dataclass(frozen=True, slots=True)
class Flag:
    """One tunable flag of a catalog."""

    name: str
    kind: str
    default: Any
    group: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    note: str = ""

    @property
    def auto(self) -> bool:
        return bool(self.default == AUTO)


@dataclass(frozen=True, slots=True)
class Catalog:
    engine: str
    version: str
    flags: dict[str, Flag]
    constraints: tuple[str, ...] = ()
    source: str = ""

    @property
    def name(self) -> str:
        return f"{self.engine}-{self.version}"

    def flag(self, name: str, where: str = "") -> Flag:
        if name in self.flags:
            return self.flags[name]
        import difflib

        close = difflib.get_close_matches(name, self.flags, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise CatalogError(
            f"{where}{self.engine} {self.version} has no tunable flag "
            f"--{name.replace('_', '-')}{hint} (known: see `scoot engine catalog --show "
            f"{self.name}`)"
        )


def catalog_dir() -> Path:
    return Path(str(resources.files("scoot.engine") / "catalogs"))


def available() -> list[str]:
    return sorted(p.stem for p in catalog_dir().glob("*.toml"))


def load_catalog(name: str) -> Catalog:
    """A shipped catalog by name (``vllm-0.32``) or a path to a catalog file."""
    path = Path(name) if name.endswith(".toml") else catalog_dir() / f"{name}.toml"
    if not path.exists():
        raise CatalogError(f"no catalog {name!r}; shipped: {', '.join(available())}")
    return parse_catalog_text(path.read_text(), str(path))


def parse_catalog_text(text: str, where: str = "<generated>") -> Catalog:
    """A catalog from TOML text (a shipped file, or what :func:`generate` returns)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{where}: {exc}") from None
    flags = {}
    for fname, spec in doc.get("flags", {}).items():
        flags[fname] = Flag(
            name=fname,
            kind=spec["type"],
            default=spec.get("default", AUTO),
            group=spec.get("group", ""),
            low=spec.get("low"),
            high=spec.get("high"),
            log=bool(spec.get("log", False)),
            choices=tuple(spec.get("choices", ())),
            note=spec.get("note", ""),
        )
    return Catalog(
        engine=doc["engine"],
        version=str(doc["version"]),
        flags=flags,
        constraints=tuple(doc.get("constraints", ())),
        source=doc.get("source", ""),
    )


def load_profile(name: str) -> dict[str, Any]:
    """An engine profile (``vllm-cpu``): the catalog it uses, fixed flags, environment, start-up
    timeout, defaults and extra known constraints of one way of running an engine. Read once
    per process (a study's checks and every search space read it); each caller gets its own
    copy."""
    return copy.deepcopy(_profile(name))


@functools.cache
def _profile(name: str) -> dict[str, Any]:
    path = Path(str(resources.files("scoot.engine") / "profiles")) / f"{name}.toml"
    if not path.exists():
        shipped = sorted(p.stem for p in path.parent.glob("*.toml"))
        raise CatalogError(f"no engine profile {name!r}; shipped: {', '.join(shipped)}")
    return tomllib.loads(path.read_text())


def profile_refusals(name: str) -> list[dict[str, str]]:
    """An engine profile's constraints as the start-up refusals of a twin's table: the real
    engine starts only where each holds, and fails as the profile's ``[failure_kinds]`` says
    (a start-up crash where it does not say), with its ``[failure_messages]``."""
    profile = _profile(name)
    kinds = profile.get("failure_kinds", {})
    messages = profile.get("failure_messages", {})
    return [
        {
            "unless": expr,
            "kind": kinds.get(expr, "startup_crash"),
            "message": messages.get(expr, f"the engine ({name}) fails at start-up unless {expr}"),
        }
        for expr in profile.get("constraints", [])
    ]


def introspect(engine: str, python: str, *args: str, timeout: float = 300) -> dict[str, Any]:
    """Run ``introspect.py`` with the engine's interpreter and return its JSON."""
    script = Path(__file__).with_name("introspect.py")
    done = subprocess.run(
        [python, str(script), engine, *args], capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise CatalogError(f"{python} cannot load {engine}'s argument parser:\n{tail}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def generate(dump: Mapping[str, Any]) -> str:
    """A catalog (TOML text) from the parser dump of :mod:`scoot.engine.introspect`."""
    engine = dump["engine"]
    version = ".".join(str(dump["version"]).split("+")[0].split(".")[:2])
    args = {a["dest"]: a for a in dump["args"]}
    lines = [
        f"# {engine} {dump['version']}: flags worth tuning, generated by `scoot engine catalog",
        f"# --from {engine}` from the engine's own argument parser; ranges from scoot's hints.",
        f'engine = "{engine}"',
        f'version = "{version}"',
        f'source = "argument parser of {engine} {dump["version"]}"',
        "constraints = [",
        *(f"    {json.dumps(c)}," for c in CONSTRAINTS.get(engine, [])),
        "]",
        "",
    ]
    for dest, hint in HINTS[engine].items():
        a = args.get(dest)
        if a is None:
            continue  # gone in this version: diff() reports it
        lines.append(f"[flags.{dest}]")
        lines.append(f'type = "{hint.kind}"')
        lines.append(f'group = "{hint.group}"')
        default = a["default"]
        if hint.kind == "bool" and default is None:
            default = AUTO
        if default is None:
            default = AUTO
        lines.append(f"default = {json.dumps(_typed(default))}")
        choices = ENUM_CHOICES.get(engine, {}).get(dest) or a.get("choices")
        if hint.kind == "enum" and choices:
            lines.append(f"choices = {json.dumps([_typed(c) for c in choices])}")
        if hint.low is not None:
            lines.append(f"low = {hint.low:g}")
            lines.append(f"high = {hint.high:g}")
        if hint.log:
            lines.append("log = true")
        if hint.note:
            lines.append(f"note = {json.dumps(hint.note)}")
        lines.append("")
    return "\n".join(lines)


def _typed(value: Any) -> Any:
    """A parser's default or choice as TOML wants it: numbers as numbers, words unquoted."""
    if value == AUTO or not isinstance(value, str):
        return value
    return number_or_word(value.strip("'\""))


def diff(old: Catalog, new: Catalog) -> list[str]:
    """Lines saying what ``new`` added, removed or changed against ``old``."""
    out = []
    for name in sorted(set(new.flags) - set(old.flags)):
        out.append(f"+ --{name.replace('_', '-')} (default {new.flags[name].default})")
    for name in sorted(set(old.flags) - set(new.flags)):
        out.append(f"- --{name.replace('_', '-')}")
    for name in sorted(set(old.flags) & set(new.flags)):
        a, b = old.flags[name], new.flags[name]
        for attr in ("kind", "default", "choices"):
            if getattr(a, attr) != getattr(b, attr):
                out.append(
                    f"~ --{name.replace('_', '-')}: {attr} {getattr(a, attr)!r} -> "
                    f"{getattr(b, attr)!r}"
                )
    for c in sorted(set(new.constraints) - set(old.constraints)):
        out.append(f"+ constraint {c}")
    for c in sorted(set(old.constraints) - set(new.constraints)):
        out.append(f"- constraint {c}")
    return out


def engine_check(engine: str, python: str, argvs: Sequence[Sequence[str]]) -> list[str | None]:
    """Per argument list: None if the engine's own parser accepts it, else its error line.
    One process (one import of the engine, ~10 s for vLLM) checks them all."""
    script = Path(__file__).with_name("introspect.py")
    done = subprocess.run(
        [python, str(script), engine, "--check-json"],
        input=json.dumps([list(a) for a in argvs]),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise CatalogError(f"{python} cannot load {engine}'s argument parser:\n{tail}")
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return [
        None if r.get("ok") else " ".join(r.get("error") or ["rejected by the engine's parser"])
        for r in results
    ]


def python_of(command: Sequence[str], engine: str) -> str | None:
    """The interpreter of an engine command: the shebang of its script (``.../bin/vllm``), the
    command itself when it is a Python, or the engine's installed default; None if unknown."""
    import shutil

    first = command[0] if command else kind_of(engine).command_name
    path = shutil.which(first) or (first if Path(first).exists() else None)
    if path is None:
        return None
    if Path(path).name.startswith("python"):
        return path
    try:
        head = Path(path).read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return None
    return head[2:].strip().split()[0] if head.startswith("#!") else None
