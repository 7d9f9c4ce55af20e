"""Calibrate a profiled twin on a trial a real study already ran (``scoot engine calibrate``).

A study of the real engine always runs its default configuration first. That trial's mean
TPOT and TTFT, under the study's own workload, are what the twin's idle profile misses: the
engine's slowdown under load and its per-request cost (``virtual.calibrated_table``). This
module finds the trial, rebuilds its workload exactly as the stress test built it, and writes
the calibrated table. It reads the store and writes one file; it changes no study.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from scoot.domain import TrialState
from scoot.engine.embedded.core import EngineArgs, EngineStartupError
from scoot.engine.embedded.twin import TwinError
from scoot.jobs.evaluate import build_workload
from scoot.jobs.store import Store, StoreError, TrialRow
from scoot.study import StudySpec, fixed_flag_values
from scoot.virtual import calibrated_table

ARG_FIELDS = {f.name for f in dataclasses.fields(EngineArgs)}


def trial_to_calibrate(store: Store, name: str, number: int | None) -> tuple[StudySpec, TrialRow]:
    """The study's spec and its trial ``number`` (default: the default configuration's
    first completed run, not a re-test).

    Raises:
        StoreError: naming the study or the trial that is missing or not completed.
    """
    study = store.study(name)
    if study is None:
        raise StoreError(f"no study named '{name}' in {store.where}")
    spec = StudySpec.from_json(study.spec_json, study.source)
    done = [t for t in store.trials(study.id) if t.state is TrialState.COMPLETED and t.metrics]
    if number is not None:
        found = [t for t in done if t.number == number]
        if not found:
            raise StoreError(f"study '{name}' has no completed trial {number}")
        return spec, found[0]
    defaults = [t for t in done if t.is_default and t.retest is None]
    if not defaults:
        raise StoreError(
            f"study '{name}' has no completed run of its default config; pass --trial"
        )
    return spec, defaults[0]


def calibrate_trial(
    spec: StudySpec, trial: TrialRow, table: str, model: str, target: Path
) -> dict[str, float]:
    """Write ``target``: ``table`` calibrated on ``trial`` of the study ``spec``; returns the
    step scale and the request overhead.

    Raises:
        StoreError: where the twin cannot serve the trial's configuration.
    """
    assert trial.metrics is not None
    values = {**fixed_flag_values(spec.engine.args), **trial.config.as_dict()}
    kwargs = {k: v for k, v in values.items() if k in ARG_FIELDS and k not in ("model", "table")}
    workload = build_workload(spec, order_seed=trial.retest or 0)
    try:
        args = EngineArgs(model=model, table=table, **kwargs)  # type: ignore[arg-type]
        return calibrated_table(
            args,
            workload.requests,
            workload.offsets,
            trial.metrics.mean_tpot_ms,
            trial.metrics.mean_ttft_ms,
            target,
            request_timeout_s=spec.stress.request_timeout_s,
        )
    except (EngineStartupError, TwinError, ValueError) as exc:
        raise StoreError(f"{table}: cannot serve trial {trial.number}: {exc}") from None
