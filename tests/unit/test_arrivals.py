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


def test_vllm_rng_reproduces_vllm_bench_serve_schedule() -> None:
    """vllm bench serve: np.random.seed(seed), one np.random.gamma per request, cumsum,
    rescaled so the last request is sent at n / rate (vllm/benchmarks/serve.py get_request)."""
    import numpy as np

    np.random.seed(7)
    gaps = [np.random.gamma(shape=0.5, scale=1.0 / (3.0 * 0.5)) for _ in range(20)]
    t = np.cumsum(gaps)
    t *= (20 / 3.0) / t[-1]
    got = schedule(20, 3.0, arrival="gamma", burstiness=0.5, seed=7, vllm_rng=True)
    assert got == pytest.approx(list(t), abs=1e-12)
    assert got != schedule(20, 3.0, arrival="gamma", burstiness=0.5, seed=7)
