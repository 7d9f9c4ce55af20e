"""A stress test of the embedded engine in virtual time: no process, no HTTP, no sleeping.

The same workload the HTTP client would send (requests and absolute send offsets) goes straight
into the engine core's :func:`~scoot.engine.embedded.core.simulate`; each simulated request
becomes the :class:`RequestRecord` the client would have made, and :func:`compute` turns them into
the same :class:`Metrics`. A request still unfinished ``request_timeout_s`` after it was sent is
a timeout failure, as the client would report it. Used by the benchmarks, where thousands of
evaluations must each cost about a second of one core.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from scoot.domain import Metrics
from scoot.engine.embedded.core import EngineArgs, SimRequest, simulate
from scoot.stress.metrics import RequestRecord, compute
from scoot.stress.traces import TraceRequest, prompt_tokens


def replay(
    args: EngineArgs,
    requests: Sequence[TraceRequest],
    offsets: Sequence[float],
    *,
    request_timeout_s: float = 600.0,
) -> tuple[Metrics, list[RequestRecord]]:
    """Replay ``requests`` sent at ``offsets`` seconds against the engine ``args`` describes.

    Raises:
        EngineStartupError: where the real engine would refuse to start.
    """
    sims = [
        SimRequest(offsets[i], prompt_tokens(req, i), req.output_length)
        for i, req in enumerate(requests)
    ]
    horizon = (max(offsets) if offsets else 0.0) + request_timeout_s
    results = simulate(args, sims, horizon=horizon)
    # A twin's table excludes the client's own cost per request (HTTP, parsing, the first
    # chunk), which a real client sees in TTFT and latency: it comes back here.
    overhead = args.resolved().twin
    lag = overhead.request_overhead_ms / 1e3 if overhead else 0.0
    records: list[RequestRecord] = []
    end = 0.0
    for sim, res in zip(sims, results, strict=True):
        rec = RequestRecord(scheduled=sim.arrival, sent=sim.arrival, prompt_tokens=len(sim.prompt))
        if res is None or res.finish - sim.arrival > request_timeout_s:
            rec.error = "timeout"
            end = max(end, sim.arrival + request_timeout_s)
        else:
            rec.success = True
            rec.ttft = res.first_token - sim.arrival + lag
            rec.latency = res.finish - sim.arrival + lag
            rec.output_tokens = res.output_tokens
            times = res.token_times
            rec.itl = [b - a for a, b in itertools.pairwise(times)]
            end = max(end, res.finish + lag)
        records.append(rec)
    start = min(offsets, default=0.0)
    return compute(records, end - start), records
