"""Which trials are best: the incumbent for one objective, the Pareto set for TTFT and TPOT.

For two objectives the reported winner is the Pareto point with the largest hypervolume against
the default configuration's point (the paper's EHVI reference point, §4.5.2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from scoot.domain import Objective


def to_minimize(values: Sequence[float], objectives: Sequence[Objective]) -> NDArray[np.float64]:
    """Objective values with maximised ones negated, so smaller is better everywhere."""
    arr = np.asarray(values, dtype=float)  # (n_obj,)
    signs = np.array([-1.0 if o.maximize else 1.0 for o in objectives])
    result: NDArray[np.float64] = arr * signs
    return result


def pareto_mask(points: NDArray[np.float64]) -> NDArray[np.float64]:
    """Non-dominated rows of ``points`` (n, m), all objectives minimised."""
    n = len(points)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if not keep[i]:
            continue
        dominated = np.all(points <= points[i], axis=1) & np.any(points < points[i], axis=1)
        if dominated.any():
            keep[i] = False
    return keep


def hypervolume_2d(points: NDArray[np.float64], ref: NDArray[np.float64]) -> float:
    """Area dominated by ``points`` (n, 2) and bounded by ``ref``, both minimised."""
    pts = points[np.all(points < ref, axis=1)]
    if len(pts) == 0:
        return 0.0
    pts = pts[np.argsort(pts[:, 0])]
    area = 0.0
    best_y = ref[1]
    for x, y in pts:
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return float(area)


def best_index(
    rows: Sequence[Sequence[float]],
    objectives: Sequence[Objective],
    reference: Sequence[float] | None = None,
) -> int | None:
    """Index of the best row; ``reference`` is the default config's raw objective values."""
    if not rows:
        return None
    pts = np.array([to_minimize(r, objectives) for r in rows])  # (n, n_obj)
    if len(objectives) == 1:
        return int(np.argmin(pts[:, 0]))
    mask = pareto_mask(pts)
    ref = to_minimize(reference, objectives) if reference is not None else pts.max(axis=0) * 1.1
    best, best_hv = None, -1.0
    for i in np.flatnonzero(mask):
        hv = float(np.prod(np.maximum(ref - pts[i], 0.0)))
        if hv > best_hv:
            best, best_hv = int(i), hv
    return best
