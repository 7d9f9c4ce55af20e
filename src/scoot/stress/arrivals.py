"""Arrival schedules: when each request is sent, precomputed and seeded.

Follows ``vllm bench serve``'s ``get_request``: gamma inter-arrival gaps with shape
``burstiness`` and scale ``1 / (rate * burstiness)`` (burstiness 1 is Poisson), cumulated, then
rescaled so the last arrival lands at exactly ``n / rate``. The client sleeps to these absolute
offsets, never to relative intervals, so lateness does not drift.
"""

from __future__ import annotations

import numpy as np


def schedule(
    n: int,
    rate: float,
    *,
    arrival: str = "poisson",
    burstiness: float = 1.0,
    seed: int = 0,
    rescale: bool = True,
    vllm_rng: bool = False,
) -> list[float]:
    """Send offsets in seconds for ``n`` requests at ``rate`` requests per second.

    ``vllm_rng`` draws the gaps from numpy's legacy global generator seeded with ``seed``, as
    ``vllm bench serve --seed`` does (``np.random.seed`` then one ``np.random.gamma`` per
    request), so both tools send at the same instants.
    """
    if n <= 0:
        return []
    if arrival == "constant":
        return [(i + 1) / rate for i in range(n)]
    shape = 1.0 if arrival == "poisson" else burstiness
    if vllm_rng:
        # The legacy generator's vectorised draws are its scalar draws in sequence.
        gaps = np.random.RandomState(seed).gamma(shape=shape, scale=1.0 / (rate * shape), size=n)
    else:
        rng = np.random.default_rng(seed)
        gaps = rng.gamma(shape=shape, scale=1.0 / (rate * shape), size=n)  # (n,)
    t = np.cumsum(gaps)
    if rescale and t[-1] > 0:
        t *= (n / rate) / t[-1]
    return [float(x) for x in t]


def order(n: int, seed: int) -> list[int]:
    """A seeded permutation of request indices: the paper's "different arrival order" (§4.8).

    Seed 0 keeps the trace order.
    """
    if seed == 0:
        return list(range(n))
    return [int(i) for i in np.random.default_rng(seed).permutation(n)]
