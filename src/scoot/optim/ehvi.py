"""Hypervolume and expected hypervolume improvement, exact for any number of objectives.

Everything is minimised. The region not dominated by the current front ``P`` and bounded above
by the reference point ``r`` is cut into axis-aligned cells by the front's coordinates; a cell
``[l, u]`` is non-dominated exactly when no ``p`` in ``P`` satisfies ``p <= l``. A new point
``y`` improves the hypervolume by the part of each such cell it dominates,
``prod_j max(0, u_j - max(l_j, y_j))``. With independent Gaussian objectives (one GP each,
§4.5.2) the expectation of that product is the product of one-dimensional expectations:

    E[max(0, u - max(l, Y))] = (u - l) Phi(a) + (u - mu) (Phi(b) - Phi(a)) + s (phi(b) - phi(a))

with ``a = (l - mu) / s`` and ``b = (u - mu) / s``. Summing over cells gives EHVI exactly (the
cell decomposition of Couckuyt et al., 2014); with ``n`` front points there are ``(n + 1)^m``
cells, which is nothing for two or three objectives and the tens of points a tuning run holds.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _clip_front(front: NDArray[np.float64], ref: NDArray[np.float64]) -> NDArray[np.float64]:
    front = np.atleast_2d(np.asarray(front, dtype=float))
    if front.size == 0:
        return np.empty((0, len(ref)))
    kept: NDArray[np.float64] = front[np.all(front < ref, axis=1)]
    return kept


def cells(
    front: NDArray[np.float64], ref: NDArray[np.float64], *, dominated: bool = False
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Lower and upper corners (C, m) of the cells the front does not dominate (or does, with
    ``dominated=True``), inside the box below ``ref``."""
    ref = np.asarray(ref, dtype=float)
    m = len(ref)
    pts = _clip_front(front, ref)
    axes = [np.concatenate([[-np.inf], np.unique(pts[:, j]), [ref[j]]]) for j in range(m)]
    grids = np.meshgrid(*[np.arange(len(a) - 1) for a in axes], indexing="ij")
    idx = np.stack([g.reshape(-1) for g in grids], axis=1)  # (C, m)
    lower = np.stack([axes[j][idx[:, j]] for j in range(m)], axis=1)
    upper = np.stack([axes[j][idx[:, j] + 1] for j in range(m)], axis=1)
    if len(pts):
        covered = np.any(np.all(pts[None, :, :] <= lower[:, None, :], axis=2), axis=1)  # (C,)
    else:
        covered = np.zeros(len(lower), dtype=bool)
    keep = covered if dominated else ~covered
    return lower[keep], upper[keep]


def hypervolume(points: NDArray[np.float64], ref: NDArray[np.float64]) -> float:
    """Volume dominated by ``points`` (n, m) and bounded by ``ref``."""
    lower, upper = cells(points, ref, dominated=True)
    if len(lower) == 0:
        return 0.0
    return float(np.prod(upper - lower, axis=1).sum())


def ehvi(
    mu: NDArray[np.float64],
    sigma: NDArray[np.float64],
    front: NDArray[np.float64],
    ref: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Expected hypervolume improvement of independent Gaussians ``N(mu, sigma^2)`` (n, m)."""
    mu = np.atleast_2d(np.asarray(mu, dtype=float))
    sigma = np.maximum(np.atleast_2d(np.asarray(sigma, dtype=float)), 1e-12)
    lower, upper = cells(front, ref)  # (C, m)
    if len(lower) == 0:
        return np.zeros(len(mu))
    m_ = mu[:, None, :]  # (n, 1, m)
    s_ = sigma[:, None, :]
    a = (lower[None] - m_) / s_  # (n, C, m); -inf where the cell is open below
    b = (upper[None] - m_) / s_
    cdf_a, cdf_b = ndtr(a), ndtr(b)
    pdf_a = np.exp(-0.5 * np.where(np.isfinite(a), a, 0.0) ** 2) * _INV_SQRT_2PI
    pdf_a = np.where(np.isfinite(a), pdf_a, 0.0)
    pdf_b = np.exp(-0.5 * b**2) * _INV_SQRT_2PI
    width = np.where(np.isfinite(lower), upper - lower, 0.0)[None]  # (1, C, m)
    below = np.where(np.isfinite(a), width * cdf_a, 0.0)
    inside = (upper[None] - m_) * (cdf_b - cdf_a) + s_ * (pdf_b - pdf_a)
    out: NDArray[np.float64] = np.prod(np.maximum(below + inside, 0.0), axis=2).sum(axis=1)
    return out


def improvement(
    y: NDArray[np.float64], front: NDArray[np.float64], ref: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Exact hypervolume improvement of each row of ``y`` (n, m): EHVI's zero-noise limit."""
    y = np.atleast_2d(np.asarray(y, dtype=float))
    lower, upper = cells(front, ref)
    if len(lower) == 0:
        return np.zeros(len(y))
    side = np.maximum(0.0, upper[None] - np.maximum(lower[None], y[:, None, :]))
    out: NDArray[np.float64] = np.prod(side, axis=2).sum(axis=1)
    return out
