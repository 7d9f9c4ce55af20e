"""The capacity search (issue 17): the highest rate meeting an SLO, on the embedded engine in
virtual time, against a dense sweep of 20 rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scoot.engine.embedded.core import EngineArgs
from scoot.stress.arrivals import schedule
from scoot.stress.capacity import RateStep, find_capacity
from scoot.stress.metrics import attainment
from scoot.stress.traces import TraceRequest
from scoot.virtual import replay

ARGS = EngineArgs(model="llama-3.1-8b", gpu="l40s", max_model_len=8192, max_num_seqs=32)
SLOS = {"ttft": 400.0, "tpot": 60.0}
RNG = np.random.default_rng(7)
REQUESTS = [
    TraceRequest(int(RNG.integers(200, 1200)), int(RNG.integers(32, 160))) for _ in range(240)
]
BASE = schedule(len(REQUESTS), 1.0, seed=3)
"""One arrival draw at 1 req/s, compressed for every rate: attainment is then a clean
function of the rate, as on one engine launch with one seed."""


def at(rate: float) -> float:
    offsets = [t / rate for t in BASE]
    _, records = replay(ARGS, REQUESTS, offsets, request_timeout_s=120)
    return attainment(records, SLOS)


def test_the_search_finds_the_capacity_of_a_dense_sweep() -> None:
    # 20 rates 0.32 req/s apart around the knee (a sweep over the whole load curve would be
    # coarser near capacity than the search).
    rates = np.linspace(4.0, 10.0, 20)
    sweep = [(float(r), at(float(r))) for r in rates]
    meets = [r for r, a in sweep if a >= 0.99]
    misses = [r for r, a in sweep if a < 0.99]
    assert meets and misses, sweep  # the SLO is crossed inside the sweep
    dense = max(meets)
    found = find_capacity(at, first=4.0, target=0.99)
    print(f"dense sweep {dense:.2f} req/s, search {found.rate:.2f} in {len(found.steps)} steps")
    assert found.rate == pytest.approx(dense, rel=0.05)
    assert found.above is not None and found.above > found.rate
    assert len(found.steps) <= 7


def test_a_resumed_search_repeats_no_step() -> None:
    calls: list[float] = []

    def fake(rate: float) -> float:
        calls.append(rate)
        return 1.0 if rate <= 10.0 else 1.0 - (rate - 10.0) / 10.0

    first = find_capacity(fake, 2.0, max_steps=3)
    calls.clear()
    again = find_capacity(fake, 2.0, max_steps=8, done=first.steps)
    assert not set(calls) & {s.rate for s in first.steps}
    assert again.steps[:3] == first.steps
    assert again.rate == pytest.approx(10.0, rel=0.03)


def test_nothing_meets_the_target() -> None:
    found = find_capacity(lambda r: 0.5, 8.0, max_steps=6)
    assert found.rate == 0.0 and found.above is not None
    assert all(isinstance(s, RateStep) and s.attainment == 0.5 for s in found.steps)
    assert math.isclose(min(s.rate for s in found.steps), 8.0 / 2**5)
