"""Turn a chosen configuration into something an operator can deploy."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence

from scoot.domain import Value
from scoot.engine.launcher import flags_for


def vllm_serve_command(model: str, fixed_args: Sequence[str], config: Mapping[str, Value]) -> str:
    """A ready-to-run ``vllm serve`` command line for ``config``."""
    return shlex.join(["vllm", "serve", model, *fixed_args, *flags_for(config)])


def to_json(model: str, fixed_args: Sequence[str], config: Mapping[str, Value]) -> str:
    """The config as JSON, with the model and fixed flags beside it."""
    return json.dumps(
        {"model": model, "fixed_args": list(fixed_args), "config": dict(config)}, indent=2
    )
