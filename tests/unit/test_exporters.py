"""The export formats say the same configuration: command line, --config YAML, docker, JSON."""

from __future__ import annotations

import json
import shlex

import yaml

from scoot.engine.exporters import (
    docker_run_command,
    to_json,
    vllm_config_yaml,
    vllm_serve_command,
)
from scoot.engine.launcher import parse_flags

CONFIG = {"max_num_seqs": 64, "enable_prefix_caching": False, "gpu_memory_utilization": 0.85}
FIXED = ["--max-model-len", "8192", "--enforce-eager"]


def test_yaml_reads_back_as_the_flags_vllm_would_get() -> None:
    doc = yaml.safe_load(vllm_config_yaml("Qwen/Qwen3-8B", FIXED, CONFIG))
    assert doc == {
        "model": "Qwen/Qwen3-8B",
        "max-model-len": 8192,
        "enforce-eager": True,
        "enable-prefix-caching": False,  # vLLM's loader turns False into --no-enable-...
        "gpu-memory-utilization": 0.85,
        "max-num-seqs": 64,
    }


def test_command_lines_carry_every_flag() -> None:
    serve = shlex.split(vllm_serve_command("Qwen/Qwen3-8B", FIXED, CONFIG))
    assert serve[:3] == ["vllm", "serve", "Qwen/Qwen3-8B"]
    assert dict(parse_flags(serve[3:])) == {
        "max_model_len": 8192,
        "enforce_eager": True,
        **CONFIG,
    }
    docker = docker_run_command("Qwen/Qwen3-8B", FIXED, CONFIG)
    assert '"$HOME/.cache/huggingface:/root/.cache/huggingface"' in docker
    tail = shlex.split(docker.split("vllm/vllm-openai:latest", 1)[1])
    assert dict(parse_flags(tail))["model"] == "Qwen/Qwen3-8B"
    assert json.loads(to_json("Qwen/Qwen3-8B", FIXED, CONFIG))["config"] == CONFIG
