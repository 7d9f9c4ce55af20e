"""Turn a chosen configuration into something an operator can deploy."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence

from scoot.domain import Value
from scoot.engine.launcher import flags_for, parse_flags


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
    for name, value in parse_flags([*fixed_args, *flags_for(config)]):
        lines.append(f"{name.replace('_', '-')}: {_yaml_scalar(value)}")
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


def _yaml_scalar(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a quoted YAML string (JSON strings are valid YAML)
