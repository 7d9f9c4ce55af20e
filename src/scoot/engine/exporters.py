"""Turn a chosen configuration into something an operator can deploy."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence

from scoot.domain import Value
from scoot.engine.kinds import VLLM_IMAGE, kind_of
from scoot.engine.launcher import build_argv, flags_for, parse_flags

Env = Sequence[tuple[str, str]]
"""The engine's environment (the profile's and the study's ``[engine] env``): every export
carries it, so a line starts as printed (vLLM-CPU exits without its memory settings)."""


def deployed(env: Env) -> list[tuple[str, str]]:
    """The environment a deployment needs: the engine's, without SCOOT's own ``SCOOT_*``
    knobs of its embedded engine (they mean nothing to a real vLLM)."""
    return [(k, v) for k, v in env if not k.startswith("SCOOT_")]


def _with_env(env: Env, line: str) -> str:
    return " ".join([*(shlex.quote(f"{k}={v}") for k, v in env), line])


def vllm_serve_command(
    model: str, fixed_args: Sequence[str], config: Mapping[str, Value], env: Env = ()
) -> str:
    """A ready-to-run ``vllm serve`` command line for ``config``."""
    return _with_env(env, shlex.join(["vllm", "serve", model, *fixed_args, *flags_for(config)]))


def to_json(
    model: str, fixed_args: Sequence[str], config: Mapping[str, Value], env: Env = ()
) -> str:
    """The config as JSON, with the model, fixed flags and environment beside it."""
    return json.dumps(
        {"model": model, "fixed_args": list(fixed_args), "config": dict(config), "env": dict(env)},
        indent=2,
    )


def vllm_config_yaml(
    model: str, fixed_args: Sequence[str], config: Mapping[str, Value], env: Env = ()
) -> str:
    """A file for ``vllm serve --config FILE``: one ``key: value`` per flag (vLLM reads the
    flag names with dashes, as on the command line), the model as ``model``. A config file
    cannot set the environment: a comment says what to export first."""
    lines = [f"# start with: {_with_env(env, 'vllm serve --config FILE')}"] if env else []
    lines.append(f"model: {_yaml_scalar(model)}")
    for name, value in parse_flags([*fixed_args, *flags_for(config)]):
        if not name:
            lines.append(f"# {value!r} is not a flag: pass it on the command line")
            continue
        shown = (
            "[" + ", ".join(_yaml_scalar(v) for v in value) + "]"
            if isinstance(value, list)
            else _yaml_scalar(value)
        )
        lines.append(f"{name.replace('_', '-')}: {shown}")
    return "\n".join(lines) + "\n"


def docker_run_command(
    model: str,
    fixed_args: Sequence[str],
    config: Mapping[str, Value],
    *,
    image: str = VLLM_IMAGE,
    gpus: str = "all",
    port: int = 8000,
    env: Env = (),
) -> str:
    """``docker run`` of the official vLLM OpenAI image with the configuration's flags,
    published on loopback only (put a proxy or ``-p {port}:8000`` in front to serve others)."""
    head = ["docker", "run", "--rm", "--gpus", gpus, "--ipc=host", "-p", f"127.0.0.1:{port}:8000"]
    for k, v in env:
        head += ["-e", f"{k}={v}"]
    tail = [image, "--model", model, *fixed_args, *flags_for(config)]
    # The model cache and torch.compile's cache (so a restart does not compile again) are
    # mounted from the operator's home: left unquoted so the shell expands them.
    cache = (
        '-v "$HOME/.cache/huggingface:/root/.cache/huggingface" '
        '-v "$HOME/.cache/vllm:/root/.cache/vllm"'
    )
    return f"{shlex.join(head)} {cache} {shlex.join(tail)}"


def _yaml_scalar(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a quoted YAML string (JSON strings are valid YAML)


def sglang_command(
    model: str, fixed_args: Sequence[str], config: Mapping[str, Value], env: Env = ()
) -> str:
    """``python -m sglang.launch_server`` with the configuration (boolean flags as switches)."""
    argv = ["python3", "-m", "sglang.launch_server", "--model-path", model, *fixed_args]
    return _with_env(env, shlex.join(argv + flags_for(config, "sglang")))


def k8s_container_args(
    model: str,
    fixed_args: Sequence[str],
    config: Mapping[str, Value],
    kind: str = "vllm",
    env: Env = (),
) -> str:
    """The ``args:`` (and ``env:``) of a Kubernetes container running the engine's image."""
    engine = kind_of(kind)
    args = [engine.model_flag, model, *fixed_args, *flags_for(config, kind)]
    if engine.family == "sglang":
        head = f"# image: {engine.image}; command: [python3, -m, sglang.launch_server]"
    else:
        head = f"# image: {engine.image} (entrypoint: vllm serve)"
    text = head + "\nargs:\n" + "".join(f"  - {json.dumps(a)}\n" for a in args)
    if env:
        text += "env:\n" + "".join(
            f"  - name: {json.dumps(k)}\n    value: {json.dumps(v)}\n" for k, v in env
        )
    return text


def launch_command(
    kind: str,
    command: Sequence[str],
    model: str,
    fixed_args: Sequence[str],
    config: Mapping[str, Value],
    env: Env = (),
) -> str:
    """The line that serves ``config`` as the study ran it, for its engine kind: ``vllm
    serve`` for vLLM-family kinds, SGLang's launcher for SGLang, the study's own command
    (placeholders filled for one local GPU on port 8000) for ``command`` studies."""
    engine = kind_of(kind)
    env = deployed(env)
    if command or engine.name == "command":
        fields = {"model": model, "gpu": "", "host": "127.0.0.1", "port": "8000", "gpus": "0"}
        fields["hf_cache"] = "$HOME/.cache/huggingface"
        fields["vllm_cache"] = "$HOME/.cache/vllm"
        return _with_env(env, shlex.join(build_argv(kind, command, fields, fixed_args, config)))
    if engine.family == "sglang":
        return sglang_command(model, fixed_args, config, env)
    return vllm_serve_command(model, fixed_args, config, env)


def exports_for(
    kind: str,
    model: str,
    fixed_args: Sequence[str],
    config: Mapping[str, Value],
    env: Env = (),
    command: Sequence[str] = (),
) -> dict[str, tuple[str, str]]:
    """Every export of a config for an engine kind: name -> (file suffix, text)."""
    fixed = list(fixed_args)
    env = deployed(env)
    if kind_of(kind).name == "command":
        line = launch_command(kind, command, model, fixed, config, env)
        out = {"command": ("sh", line + "\n")}
    elif kind_of(kind).family == "sglang":
        out = {"sglang": ("sh", sglang_command(model, fixed, config, env) + "\n")}
    else:
        out = {
            "vllm serve": ("sh", vllm_serve_command(model, fixed, config, env) + "\n"),
            "config YAML": ("yaml", vllm_config_yaml(model, fixed, config, env)),
            "docker run": (
                "docker.sh",
                docker_run_command(model, fixed, config, env=env) + "\n",
            ),
        }
    out["k8s args"] = ("k8s.yaml", k8s_container_args(model, fixed, config, kind, env))
    out["JSON"] = ("json", to_json(model, fixed, config, env) + "\n")
    return out
