"""The search space: parameters, the unit cube they map to, and known constraints.

Every sampler and solver works in ``[0, 1]^d`` and maps back through :meth:`SearchSpace.decode`,
so integer rounding, log scales, enums and booleans are handled in one place; every config that
leaves an optimizer passes :meth:`SearchSpace.allowed` (the paper's known-constraint pruning,
§4.5.3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from scoot.domain import Config, Constraint, ParamKind, ParamSpec, Value


class SearchSpace:
    """Parameters plus known constraints; ``fixed`` holds untuned flags constraints may use."""

    def __init__(
        self,
        params: Sequence[ParamSpec],
        constraints: Sequence[Constraint] = (),
        fixed: Mapping[str, Value] | None = None,
    ) -> None:
        self.params = tuple(params)
        self.constraints = tuple(constraints)
        self.fixed = dict(fixed or {})

    @property
    def dim(self) -> int:
        return len(self.params)

    def decode(self, u: Sequence[float] | NDArray[np.float64]) -> Config:
        """Map a point of the unit cube to a config."""
        values: dict[str, Value] = {}
        for p, x in zip(self.params, u, strict=True):
            x = min(max(float(x), 0.0), 1.0)
            values[p.name] = _decode_one(p, x)
        return Config.of(values)

    def encode(self, config: Config) -> NDArray[np.float64]:
        """Map a config to the unit cube (the centre of its cell for discrete values)."""
        out = np.empty(self.dim)  # (d,)
        for i, p in enumerate(self.params):
            out[i] = _encode_one(p, config[p.name])
        return out

    def allowed(self, config: Config) -> bool:
        """Whether ``config`` is in range and satisfies every known constraint."""
        values = {**self.fixed, **config.as_dict()}
        if any(not p.contains(values[p.name]) for p in self.params if p.name in values):
            return False
        return all(c.holds(values) for c in self.constraints)

    def neighbours(self, config: Config, step: float = 0.1) -> list[Config]:
        """The allowed configs one move from ``config``: each parameter on its own to the next
        choice either side (a boolean flipped), a numeric one ``step`` of its unit range (a
        log range in log space) either way."""
        u = self.encode(config)
        out: list[Config] = []
        for i, p in enumerate(self.params):
            if p.kind is ParamKind.BOOL:
                moves = [1.0 - u[i]]
            elif p.kind is ParamKind.ENUM:
                width = 1.0 / len(p.choices)
                moves = [u[i] - width, u[i] + width]
            else:
                moves = [u[i] - step, u[i] + step]
            for x in moves:
                if not 0.0 <= x <= 1.0:
                    continue
                v = u.copy()
                v[i] = x
                c = self.decode(v)
                if c != config and self.allowed(c):
                    out.append(c)
        return list(dict.fromkeys(out))

    def default(self) -> Config | None:
        """The engine's default config, if every parameter has one."""
        if any(p.default is None for p in self.params):
            return None
        return Config.of({p.name: p.default for p in self.params if p.default is not None})


def _decode_one(p: ParamSpec, x: float) -> Value:
    if p.kind is ParamKind.BOOL:
        return x >= 0.5
    if p.kind is ParamKind.ENUM:
        return p.choices[min(int(x * len(p.choices)), len(p.choices) - 1)]
    assert p.low is not None and p.high is not None
    if p.log:
        v = math.exp(math.log(p.low) + x * (math.log(p.high) - math.log(p.low)))
    else:
        v = p.low + x * (p.high - p.low)
    if p.kind is ParamKind.INT:
        return int(min(max(round(v), p.low), p.high))
    return float(min(max(v, p.low), p.high))


def _encode_one(p: ParamSpec, v: Value) -> float:
    if p.kind is ParamKind.BOOL:
        return 0.75 if v else 0.25
    if p.kind is ParamKind.ENUM:
        return (p.choices.index(v) + 0.5) / len(p.choices)
    assert p.low is not None and p.high is not None
    fv = float(v)
    if p.log:
        return (math.log(fv) - math.log(p.low)) / (math.log(p.high) - math.log(p.low))
    return (fv - p.low) / (p.high - p.low)


def initial_design_size(space: SearchSpace) -> int:
    """Observations before any model is fitted: as many Sobol points as the space has
    dimensions (§4.1), plus the default config, which the driver evaluates first."""
    return space.dim + (1 if space.default() is not None else 0)
