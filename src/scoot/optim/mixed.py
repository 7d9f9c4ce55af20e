"""The search space as pymoo's mixed variables, for the EHVI solver and the GA baseline.

Every pymoo variable maps to one coordinate of the unit cube that :class:`SearchSpace` decodes:
numeric parameters (int or float, linear or log) are ``Real`` on ``[0, 1]``, so log scales and
rounding stay in one place; enums are an ``Integer`` index when their choices are numbers (the
order means something: 16 < 32 < 64 sequences) and a ``Choice`` otherwise; booleans are
``Binary``. Decoding always goes through the unit cube, so a pymoo individual and a HEBO point
that decode to the same config are the same config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scoot.domain import ParamKind, ParamSpec
from scoot.optim.space import SearchSpace


def _ordinal(p: ParamSpec) -> bool:
    return all(isinstance(c, int | float) and not isinstance(c, bool) for c in p.choices)


def pymoo_vars(space: SearchSpace) -> dict[str, Any]:
    """pymoo variables, one per parameter, keyed by parameter name."""
    from pymoo.core.variable import Binary, Choice, Integer, Real

    out: dict[str, Any] = {}
    for p in space.params:
        if p.kind is ParamKind.BOOL:
            out[p.name] = Binary()
        elif p.kind is ParamKind.ENUM and _ordinal(p):
            out[p.name] = Integer(bounds=(0, len(p.choices) - 1))
        elif p.kind is ParamKind.ENUM:
            out[p.name] = Choice(options=list(range(len(p.choices))))
        else:
            out[p.name] = Real(bounds=(0.0, 1.0))
    return out


def to_unit(space: SearchSpace, xs: Sequence[Mapping[str, Any]]) -> NDArray[np.float64]:
    """pymoo individuals (dicts) to unit-cube rows (n, d)."""
    u = np.empty((len(xs), space.dim))
    for j, p in enumerate(space.params):
        for i, x in enumerate(xs):
            v = x[p.name]
            if p.kind is ParamKind.BOOL:
                u[i, j] = 0.75 if bool(v) else 0.25
            elif p.kind is ParamKind.ENUM:
                u[i, j] = (int(v) + 0.5) / len(p.choices)
            else:
                u[i, j] = float(v)
    return u


def from_unit(space: SearchSpace, u: NDArray[np.float64]) -> list[dict[str, Any]]:
    """Unit-cube rows (n, d) to pymoo individuals."""
    out = []
    for row in np.atleast_2d(u):
        x: dict[str, Any] = {}
        for p, v in zip(space.params, row, strict=True):
            if p.kind is ParamKind.BOOL:
                x[p.name] = bool(v >= 0.5)
            elif p.kind is ParamKind.ENUM:
                x[p.name] = min(int(v * len(p.choices)), len(p.choices) - 1)
            else:
                x[p.name] = float(v)
        out.append(x)
    return out
