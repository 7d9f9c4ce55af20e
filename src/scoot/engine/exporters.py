"""Turn a chosen configuration into something an operator can deploy."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence

from scoot.domain import Value
from scoot.engine.kinds import VLLM_IMAGE, kind_of
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
    image: str = VLLM_IMAGE,
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


def sglang_command(model: str, fixed_args: Sequence[str], config: Mapping[str, Value]) -> str:
    """``python -m sglang.launch_server`` with the configuration (boolean flags as switches)."""
    argv = ["python3", "-m", "sglang.launch_server", "--model-path", model, *fixed_args]
    return shlex.join(argv + flags_for(config, "sglang"))


def k8s_container_args(
    model: str, fixed_args: Sequence[str], config: Mapping[str, Value], kind: str = "vllm"
) -> str:
    """The ``args:`` of a Kubernetes container running the engine's image, as YAML."""
    engine = kind_of(kind)
    args = [engine.model_flag, model, *fixed_args, *flags_for(config, kind)]
    if engine.family == "sglang":
        head = f"# image: {engine.image}; command: [python3, -m, sglang.launch_server]"
    else:
        head = f"# image: {engine.image} (entrypoint: vllm serve)"
    return head + "\nargs:\n" + "".join(f"  - {json.dumps(a)}\n" for a in args)


def exports_for(
    kind: str, model: str, fixed_args: Sequence[str], config: Mapping[str, Value]
) -> dict[str, tuple[str, str]]:
    """Every export of a config for an engine kind: name -> (file suffix, text)."""
    fixed = list(fixed_args)
    if kind_of(kind).family == "sglang":
        out = {"sglang": ("sh", sglang_command(model, fixed, config) + "\n")}
    else:
        out = {
            "vllm serve": ("sh", vllm_serve_command(model, fixed, config) + "\n"),
            "config YAML": ("yaml", vllm_config_yaml(model, fixed, config)),
            "docker run": ("docker.sh", docker_run_command(model, fixed, config) + "\n"),
        }
    out["k8s args"] = ("k8s.yaml", k8s_container_args(model, fixed, config, kind))
    out["JSON"] = ("json", to_json(model, fixed, config) + "\n")
    return out
