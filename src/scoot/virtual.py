"""A stress test of the embedded engine in virtual time: no process, no HTTP, no sleeping.

The same workload the HTTP client would send (requests and absolute send offsets) goes straight
into the engine core's :func:`~scoot.engine.embedded.core.simulate`; each simulated request
becomes the :class:`RequestRecord` the client would have made, and :func:`compute` turns them into
the same :class:`Metrics`. A request still unfinished ``request_timeout_s`` after it was sent is
a timeout failure, as the client would report it. Used by the benchmarks, where thousands of
evaluations must each cost about a second of one core.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from scoot.domain import Metrics
from scoot.engine.embedded.core import EngineArgs, SimRequest, simulate
from scoot.engine.embedded.twin import load_twin
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
    results = simulate(args, sims, horizon=horizon)  # raises where the engine would not start
    # A twin's table excludes the client's own cost per request (HTTP, parsing, the first
    # chunk), which a real client sees in TTFT and latency: it comes back here.
    twin = load_twin(args.table).facts.get(args.model) if args.table else None
    lag = twin.request_overhead_ms / 1e3 if twin else 0.0
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


def calibrated_table(
    args: EngineArgs,
    requests: Sequence[TraceRequest],
    offsets: Sequence[float],
    measured_tpot_ms: float,
    measured_ttft_ms: float,
    target: Path,
    *,
    request_timeout_s: float = 600.0,
) -> dict[str, float]:
    """Calibrate a twin on one loaded run of the real engine and write the calibrated table.

    ``args`` names the twin's table and the configuration that ran; the measured mean TPOT and
    TTFT are what the real engine gave for ``requests`` sent at ``offsets``. The idle profile
    prices each step alone; under load the real engine also serves HTTP, streams and new
    requests on the same machine, so its steps run slower. One factor on every step
    (``step_scale``) is found by bisection so that the twin's mean TPOT equals the measured
    one, then the request overhead so that its mean TTFT does. The table with both is written
    to ``target`` (a study then serves it as any profiled table); the two are returned.

    Raises:
        EngineStartupError: where the configuration does not start.
        ValueError: where ``args`` is not a twin.
    """
    twin = load_twin(args.table)
    if args.model not in twin.facts:
        raise ValueError(f"{args.table} does not profile {args.model!r}")

    def write(path: Path, scale: float, overhead_ms: float) -> None:
        doc = copy.deepcopy(twin.doc)
        facts = doc["models"][args.model][0]["twin"]
        facts["step_scale"] = round(scale, 4)
        facts["request_overhead_ms"] = round(overhead_ms, 3)
        facts["calibrated_on"] = {
            "tpot_ms": round(measured_tpot_ms, 3),
            "ttft_ms": round(measured_ttft_ms, 3),
            "requests": len(requests),
        }
        path.write_text(json.dumps(doc, indent=1) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        trial = itertools.count()

        def run(scale: float, overhead_ms: float) -> Metrics:
            path = Path(tmp) / f"try-{next(trial)}.json"
            write(path, scale, overhead_ms)
            m, _ = replay(
                dataclasses.replace(args, table=str(path)),
                requests,
                offsets,
                request_timeout_s=request_timeout_s,
            )
            return m

        lo, hi = 0.25, 8.0
        for _ in range(14):  # TPOT grows with the step scale: bisect on it
            mid = (lo * hi) ** 0.5
            if run(mid, 0.0).mean_tpot_ms < measured_tpot_ms:
                lo = mid
            else:
                hi = mid
        scale = (lo * hi) ** 0.5
        overhead = max(0.0, measured_ttft_ms - run(scale, 0.0).mean_ttft_ms)
    write(target, scale, overhead)
    return {"step_scale": scale, "request_overhead_ms": overhead}
