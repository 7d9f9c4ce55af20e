"""The deployment files under deploy/ (docs/deployment.md): they parse, and the commands they
run are commands this SCOOT accepts. No cluster runs them here; no schema validator such as
kubeconform is packaged for this machine, so the checks are structural."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path
from typing import Any

import yaml

from scoot.cli import _parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def worker_argv(line: str) -> list[str]:
    """A shell line's ``scoot worker ...`` words, placeholders given example values."""
    filled = (
        line.replace("${SCOOT_QUEUE}", "redis://q:6379/0")
        .replace('"$SCOOT_QUEUE"', "redis://q:6379/0")
        .replace("$SCOOT_GPU_SETS", "node1:0,1 node1:2,3")
        .replace("$SCOOT_HOST_ID", "node1")
    )
    words = shlex.split(filled)
    return words[words.index("worker") :]


def test_the_kubernetes_manifests_run_a_worker_per_gpu_node() -> None:
    docs: list[dict[str, Any]] = [
        d for d in yaml.safe_load_all((DEPLOY / "k8s" / "scoot.yaml").read_text()) if d
    ]
    for d in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(d) and d["metadata"]["name"]
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Namespace", "Secret", "DaemonSet"}
    assert set(kinds["Secret"]["stringData"]) == {"SCOOT_STORE", "SCOOT_QUEUE"}
    assert kinds["Secret"]["stringData"]["SCOOT_STORE"].startswith("postgresql://")
    ds = kinds["DaemonSet"]["spec"]
    assert ds["selector"]["matchLabels"] == ds["template"]["metadata"]["labels"]
    (c,) = ds["template"]["spec"]["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] >= 1
    env = {e["name"]: e for e in c["env"]}
    assert env["SCOOT_HOST_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert c["envFrom"] == [{"secretRef": {"name": "scoot-servers"}}]
    ns = _parser().parse_args(worker_argv(c["args"][0]))
    assert ns.command == "worker" and ns.queue == "redis://q:6379/0"
    assert ns.gpu_sets == ["node1:0,1", "node1:2,3"]


def test_the_systemd_unit_runs_a_worker_that_stops_cleanly() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((DEPLOY / "systemd" / "scoot-worker@.service").read_text())
    service = unit["Service"]
    assert service["KillSignal"] == "SIGINT"  # the worker abandons and requeues its trials
    assert "SCOOT_HOST_ID=%i" in service["Environment"] or any(
        "SCOOT_HOST_ID" in line for line in service["Environment"].splitlines()
    )
    ns = _parser().parse_args(worker_argv(service["ExecStart"]))
    assert ns.command == "worker" and ns.gpu_sets == ["node1:0,1", "node1:2,3"]
    shared = (DEPLOY / "systemd" / "worker.env.example").read_text()
    assert "SCOOT_STORE=postgresql://" in shared and "SCOOT_QUEUE=redis://" in shared
