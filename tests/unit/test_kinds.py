"""The engine-kind registry: each kind's launch, catalog, image and flag style in one entry."""

from __future__ import annotations

import pytest

from scoot.engine.catalog import load_catalog
from scoot.engine.exporters import exports_for
from scoot.engine.kinds import KINDS, VLLM_IMAGE, kind_of
from scoot.engine.launcher import build_argv, flags_for
from scoot.study import ENGINE_KINDS

FIELDS = {"model": "m", "gpu": "h100", "host": "127.0.0.1", "port": "8000", "gpus": "0,1"}
FIELDS["hf_cache"] = "/cache"
FIELDS["vllm_cache"] = "/compiled"


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kind_launches_with_its_catalog(name: str) -> None:
    kind = KINDS[name]
    command = ("my-engine", "{model}") if not kind.template else ()
    argv = build_argv(name, command, FIELDS, ["--seed", "1"], {"max_num_seqs": 8})
    assert "{" not in " ".join(argv), argv  # every placeholder is one SCOOT fills
    assert argv[-4:] == ["--seed", "1", "--max-num-seqs", "8"]
    if kind.catalog:
        assert load_catalog(kind.catalog).engine == kind.family


def test_study_files_accept_exactly_the_registered_kinds() -> None:
    assert set(ENGINE_KINDS) == set(KINDS)


def test_one_image_tag_for_launch_and_every_export() -> None:
    docker = build_argv("docker-vllm", (), FIELDS, [], {})
    assert VLLM_IMAGE in docker
    assert "/compiled:/root/.cache/vllm" in docker  # the compile cache outlives each trial
    made = exports_for("docker-vllm", "m", [], {"max_num_seqs": 8})
    assert VLLM_IMAGE in made["docker run"][1] and VLLM_IMAGE in made["k8s args"][1]


def test_flag_style_follows_the_family() -> None:
    assert flags_for({"enable_x": False}, "vllm") == ["--no-enable-x"]
    assert flags_for({"enable_x": False}, "sglang") == []
    assert kind_of("sglang").model_flag == "--model-path"
    assert kind_of("unknown").name == "command"


def test_docker_publishes_the_engine_on_loopback_only() -> None:
    docker = build_argv("docker-vllm", (), FIELDS, [], {})
    assert docker[docker.index("-p") + 1] == "127.0.0.1:8000:8000"
