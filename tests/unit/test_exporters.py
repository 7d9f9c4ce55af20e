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
    assert '"$HOME/.cache/vllm:/root/.cache/vllm"' in docker
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


def test_yaml_keeps_aliases_multi_values_and_words() -> None:
    fixed = ["-tp", "2", "--cuda-graph-sizes", "1", "2", "4", "--kv-cache-dtype", "fp8"]
    doc = yaml.safe_load(vllm_config_yaml("m", fixed, {"block_size": 16}))
    assert doc["tensor-parallel-size"] == 2
    assert doc["cuda-graph-sizes"] == [1, 2, 4]
    assert doc["kv-cache-dtype"] == "fp8"
    assert doc["block-size"] == 16 and isinstance(doc["block-size"], int)
    assert dict(parse_flags(["--offset", "-1"])) == {"offset": -1}  # a negative is a value


def test_every_export_carries_the_engine_environment() -> None:
    from scoot.engine.exporters import exports_for

    env = [("VLLM_CPU_KVCACHE_SPACE", "4"), ("OMP_NUM_THREADS", "2")]
    made = exports_for("vllm", "m", FIXED, CONFIG, [*env, ("SCOOT_ENGINE_STARTUP_S", "1")])
    serve = made["vllm serve"][1]
    assert serve.startswith("VLLM_CPU_KVCACHE_SPACE=4 OMP_NUM_THREADS=2 vllm serve m")
    assert "SCOOT_" not in "".join(text for _, text in made.values())  # the twin's own knobs
    assert "-e VLLM_CPU_KVCACHE_SPACE=4" in made["docker run"][1]
    assert "-p 127.0.0.1:8000:8000" in made["docker run"][1]  # loopback unless told
    k8s = yaml.safe_load(made["k8s args"][1])
    assert {"name": "OMP_NUM_THREADS", "value": "2"} in k8s["env"]
    assert json.loads(made["JSON"][1])["env"] == dict(env)
    assert "OMP_NUM_THREADS=2" in made["config YAML"][1].splitlines()[0]


def test_the_launch_line_is_the_engines_own() -> None:
    from scoot.engine.exporters import exports_for, launch_command

    cfg = {"max_running_requests": 64}
    assert launch_command("sglang", (), "m", [], cfg).startswith("python3 -m sglang.launch_server")
    mine = ("/opt/serve", "--model", "{model}", "--port", "{port}")
    line = launch_command("command", mine, "m", ["--seed", "1"], {"max_num_seqs": 8})
    want = ["/opt/serve", "--model", "m", "--port", "8000", "--seed", "1", "--max-num-seqs", "8"]
    assert shlex.split(line) == want
    assert set(exports_for("command", "m", [], {}, command=mine)) == {
        "command",
        "k8s args",
        "JSON",
    }
