"""Every engine kind SCOOT launches, in one registry: how it starts, which catalog its flags
come from, whether its own parser can check a study's launches, which image deploys it, and
how it spells a model and a boolean flag. Adding an engine is adding one entry here."""

from __future__ import annotations

import sys
from dataclasses import dataclass

VLLM_IMAGE = "vllm/vllm-openai:v0.32.0"
"""The official vLLM image, the version the shipped ``vllm-0.32`` catalog describes; used by
the ``docker-vllm`` kind and by every Docker and Kubernetes export of a vLLM config."""
SGLANG_IMAGE = "lmsysorg/sglang:latest"
"""SGLang's image for the Kubernetes export (no SGLang kind runs in Docker)."""


@dataclass(frozen=True, slots=True)
class EngineKind:
    """One way of launching an engine under test."""

    name: str
    template: tuple[str, ...]
    """argv with ``{model}``, ``{gpu}``, ``{host}``, ``{port}``, ``{gpus}``, ``{hf_cache}``,
    ``{vllm_cache}``."""
    catalog: str
    """The shipped catalog of its flags unless ``[engine] catalog`` names another ('' for
    none: a custom command declares every parameter in full)."""
    family: str
    """``vllm`` or ``sglang``: whose flags, parser and deploy forms it shares."""
    parser_check: bool = False
    """Whether its own argument parser, in a local interpreter, checks launches (preflight)."""

    @property
    def store_true_bools(self) -> bool:
        """Booleans are plain switches (SGLang): ``--name`` when true, nothing when false;
        otherwise ``--name``/``--no-name`` (vLLM's BooleanOptionalAction)."""
        return self.family == "sglang"

    @property
    def model_flag(self) -> str:
        return "--model-path" if self.family == "sglang" else "--model"

    @property
    def image(self) -> str:
        return SGLANG_IMAGE if self.family == "sglang" else VLLM_IMAGE

    @property
    def command_name(self) -> str:
        """The program a study's own ``command`` most likely starts (its interpreter is the
        one whose parser checks flags)."""
        return "vllm" if self.family == "vllm" else "python3"


_SERVE = ("--host", "{host}", "--port", "{port}")
_GPU = ("--gpu", "{gpu}")
_DOCKER_VLLM = (
    "docker", "run", "--rm", "--gpus", '"device={gpus}"', "--ipc=host",
    "-p", "127.0.0.1:{port}:{port}", "-v", "{hf_cache}:/root/.cache/huggingface",
    # torch.compile's cache outlives the container: without it every trial compiles anew
    # (bench/engine_start.py: a cold compile start took 43 s, a warm one 26 s on vLLM-CPU).
    "-v", "{vllm_cache}:/root/.cache/vllm",
    VLLM_IMAGE, "--model", "{model}", "--host", "0.0.0.0", "--port", "{port}",
)  # fmt: skip

KINDS: dict[str, EngineKind] = {
    k.name: k
    for k in (
        EngineKind(
            "embedded",
            (sys.executable, "-m", "scoot.engine.embedded", "serve", "{model}", *_GPU, *_SERVE),
            "vllm-0.32",
            "vllm",
        ),
        EngineKind(
            "vllm", ("vllm", "serve", "{model}", *_SERVE), "vllm-0.32", "vllm", parser_check=True
        ),
        EngineKind(
            "sglang",
            ("python3", "-m", "sglang.launch_server", "--model-path", "{model}", *_SERVE),
            "sglang-0.5",
            "sglang",
            parser_check=True,
        ),
        # The official image: the GPU set goes to --gpus (CUDA_VISIBLE_DEVICES does not cross
        # into a container), the operator's model cache is mounted, the port is the host's,
        # published on loopback only.
        EngineKind("docker-vllm", _DOCKER_VLLM, "vllm-0.32", "vllm"),
        # The operator's own argv (``[engine] command``), speaking vLLM's flags.
        EngineKind("command", (), "", "vllm"),
    )
}


def kind_of(name: str) -> EngineKind:
    """The registered kind ``name``; unknown names are refused when a study is read, so this
    treats one as a vLLM-flavoured custom command."""
    return KINDS.get(name) or KINDS["command"]
