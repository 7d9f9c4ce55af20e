"""The study's launches checked by the engine's own argument parser, before a GPU is spent."""

from __future__ import annotations

from scoot.engine.catalog import engine_check, python_of
from scoot.engine.kinds import kind_of
from scoot.engine.launcher import flags_for
from scoot.study import StudySpec


def preflight(spec: StudySpec) -> tuple[str | None, list[str]]:
    """Check the default config and both corners of the space (every flag at its low end,
    then at its high end). Returns the interpreter used (None when the engine's is not found,
    so nothing was checked) and one line per launch the engine refuses."""
    kind = spec.engine.kind
    if not kind_of(kind).parser_check:
        return None, []
    python = python_of(spec.engine.command, kind)
    if python is None:
        return None, []
    space = spec.space()
    configs = {"the default config": space.default()}
    configs["every flag at its low end"] = space.decode([0.0] * space.dim)
    configs["every flag at its high end"] = space.decode([1.0] * space.dim)
    model_flag = kind_of(kind).model_flag
    labels, argvs = [], []
    for label, config in configs.items():
        if config is None:
            continue
        labels.append(label)
        argvs.append(
            [model_flag, spec.engine.model, *spec.engine.args, *flags_for(config.as_dict(), kind)]
        )
    errors = engine_check(kind_of(kind).family, python, argvs)
    return python, [f"{label}: {err}" for label, err in zip(labels, errors, strict=True) if err]
