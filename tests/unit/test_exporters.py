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
from scoot.engine.kinds import VLLM_IMAGE
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
    tail = shlex.split(docker.split(VLLM_IMAGE, 1)[1])
    assert dict(parse_flags(tail))["model"] == "Qwen/Qwen3-8B"
    assert json.loads(to_json("Qwen/Qwen3-8B", FIXED, CONFIG))["config"] == CONFIG


def test_sglang_booleans_are_switches_and_k8s_args_read_back() -> None:
    from scoot.engine.exporters import k8s_container_args, sglang_command
    from scoot.engine.launcher import flags_for

    cfg = {"max_running_requests": 64, "disable_radix_cache": False, "enable_mixed_chunk": True}
    assert flags_for(cfg, "sglang") == ["--enable-mixed-chunk", "--max-running-requests", "64"]
    line = shlex.split(sglang_command("Qwen/Qwen3-8B", [], cfg))
    assert line[:5] == ["python3", "-m", "sglang.launch_server", "--model-path", "Qwen/Qwen3-8B"]
    assert "--no-disable-radix-cache" not in line
    args = yaml.safe_load(k8s_container_args("Qwen/Qwen3-8B", FIXED, CONFIG))["args"]
    assert dict(parse_flags(args)) == {
        "model": "Qwen/Qwen3-8B",
        "max_model_len": 8192,
        "enforce_eager": True,
        **CONFIG,
    }


def test_every_export_of_a_kind_is_offered() -> None:
    from scoot.engine.exporters import exports_for

    assert set(exports_for("vllm", "m", [], CONFIG)) == {
        "vllm serve", "config YAML", "docker run", "k8s args", "JSON",
    }  # fmt: skip
    assert set(exports_for("sglang", "m", [], CONFIG)) == {"sglang", "k8s args", "JSON"}
