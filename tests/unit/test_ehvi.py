"""Exact hypervolume and EHVI (§4.4.2) against sweeps, known volumes and Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest

from scoot.optim.ehvi import ehvi, hypervolume, improvement
from scoot.optim.results import hypervolume_2d


def test_hypervolume_matches_the_two_dimensional_sweep() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        pts = rng.random((int(rng.integers(1, 12)), 2))
        ref = np.array([1.05, 1.2])
        assert hypervolume(pts, ref) == pytest.approx(hypervolume_2d(pts, ref), rel=1e-12)


def test_hypervolume_three_objectives_known_value() -> None:
    # Two slabs of volume 0.5 overlapping in 0.25.
    pts = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]])
    assert hypervolume(pts, np.ones(3)) == pytest.approx(0.75)
    assert hypervolume(np.array([[2.0, 0.0, 0.0]]), np.ones(3)) == 0.0


def test_improvement_is_the_hypervolume_gain() -> None:
    rng = np.random.default_rng(1)
    for m in (2, 3):
        front, ref = rng.random((5, m)), np.full(m, 1.1)
        for y in rng.random((10, m)):
            gain = hypervolume(np.vstack([front, y]), ref) - hypervolume(front, ref)
            assert improvement(y[None], front, ref)[0] == pytest.approx(gain, abs=1e-12)


@pytest.mark.parametrize("m", [2, 3])
def test_ehvi_matches_monte_carlo(m: int) -> None:
    rng = np.random.default_rng(m)
    front, ref = rng.random((6, m)), np.full(m, 1.1)
    mu = rng.random((4, m))
    sigma = 0.05 + 0.3 * rng.random((4, m))
    exact = ehvi(mu, sigma, front, ref)
    draws = mu[:, None, :] + sigma[:, None, :] * rng.standard_normal((4, 40_000, m))
    mc = np.array([improvement(draws[i], front, ref).mean() for i in range(4)])
    assert exact == pytest.approx(mc, rel=0.05, abs=3e-4)


def test_ehvi_without_noise_is_the_improvement() -> None:
    rng = np.random.default_rng(2)
    front, ref = rng.random((4, 2)), np.array([1.0, 1.0])
    y = rng.random((8, 2))
    assert ehvi(y, np.full_like(y, 1e-9), front, ref) == pytest.approx(
        improvement(y, front, ref), abs=1e-7
    )


def test_empty_front_is_the_box_to_the_reference() -> None:
    ref = np.array([1.0, 2.0])
    y = np.array([[0.5, 1.0]])
    assert improvement(y, np.empty((0, 2)), ref)[0] == pytest.approx(0.5)
    assert ehvi(y, np.full_like(y, 1e-9), np.empty((0, 2)), ref)[0] == pytest.approx(0.5)
