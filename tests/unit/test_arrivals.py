from __future__ import annotations

import itertools

import numpy as np
import pytest

from scoot.stress.arrivals import order, schedule


def test_poisson_rescaled_to_span_and_seeded() -> None:
    t = schedule(100, 10.0, seed=3)
    assert t[-1] == pytest.approx(10.0)
    assert all(b >= a for a, b in itertools.pairwise(t))
    assert t == schedule(100, 10.0, seed=3)
    assert t != schedule(100, 10.0, seed=4)
    gaps = np.diff(t)
    assert 0.7 < np.std(gaps) / np.mean(gaps) < 1.3  # exponential: CV about 1


def test_constant_and_bursty() -> None:
    assert schedule(4, 2.0, arrival="constant") == [0.5, 1.0, 1.5, 2.0]
    g = np.diff(schedule(2000, 10.0, arrival="gamma", burstiness=0.25, seed=1))
    assert np.std(g) / np.mean(g) > 1.5  # CV = 1/sqrt(k) = 2


def test_order() -> None:
    assert order(5, 0) == [0, 1, 2, 3, 4]
    assert sorted(order(50, 7)) == list(range(50))
    assert order(50, 7) != order(50, 8)
