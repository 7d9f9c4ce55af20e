"""Turn a chosen configuration into something an operator can deploy."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence

from scoot.domain import Value
from scoot.engine.launcher import flags_for


def vllm_serve_command(model: str, fixed_args: Sequence[str], config: Mapping[str, Value]) -> str:
    """A ready-to-run ``vllm serve`` command line for ``config``."""
    return shlex.join(["vllm", "serve", model, *fixed_args, *flags_for(config)])


def to_json(model: str, fixed_args: Sequence[str], config: Mapping[str, Value]) -> str:
    """The config as JSON, with the model and fixed flags beside it."""
    return json.dumps(
        {"model": model, "fixed_args": list(fixed_args), "config": dict(config)}, indent=2
    )


def vllm_config_yaml(model: str, fixed_args: Sequence[str], config: Mapping[str, Value]) -> str:
    """A file for ``vllm serve --config FILE``: one ``key: value`` per flag (vLLM reads the
    flag names with dashes, as on the command line), the model as ``model``."""
    lines = [f"model: {_yaml_scalar(model)}"]
    for key, value in _pairs(list(fixed_args) + flags_for(config)):
        lines.append(f"{key}: {_yaml_scalar(value)}")
    return "\n".join(lines) + "\n"


def docker_run_command(
    model: str,
    fixed_args: Sequence[str],
    config: Mapping[str, Value],
    *,
    image: str = "vllm/vllm-openai:latest",
    gpus: str = "all",
    port: int = 8000,
) -> str:
    """``docker run`` of the official vLLM OpenAI image with the configuration's flags."""
    head = ["docker", "run", "--rm", "--gpus", gpus, "--ipc=host", "-p", f"{port}:8000"]
    tail = [image, "--model", model, *fixed_args, *flags_for(config)]
    # The model cache is mounted from the operator's home: left unquoted so the shell expands it.
    cache = '-v "$HOME/.cache/huggingface:/root/.cache/huggingface"'
    return f"{shlex.join(head)} {cache} {shlex.join(tail)}"


def _pairs(argv: Sequence[str]) -> list[tuple[str, Value]]:
    """``--flag value`` / ``--flag`` / ``--no-flag`` to (name, value) pairs."""
    out: list[tuple[str, Value]] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        name = tok.lstrip("-")
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            out.append((name, _scalar(argv[i + 1])))
            i += 2
            continue
        if name.startswith("no-"):
            out.append((name.removeprefix("no-"), False))
        else:
            out.append((name, True))
        i += 1
    return out


def _scalar(raw: str) -> Value:
    for conv in (int, float):
        try:
            return conv(raw)
        except ValueError:
            pass
    return raw


def _yaml_scalar(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a quoted YAML string (JSON strings are valid YAML)
