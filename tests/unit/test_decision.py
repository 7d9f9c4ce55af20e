"""What an operator is told to deploy: the winner against the default with the spread of
the re-tests, the front's points, and why a config is good (importance, effects, a diff)."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np

from fake_store import FLAGS, fake_store
from scoot.domain import Config, Metrics, Objective, TrialState
from scoot.jobs.decision import decide, hypervolume_over_trials
from scoot.jobs.insight import compare, effects, importance
from scoot.jobs.store import Store, TrialRow
from scoot.study import StudySpec


def loaded(home: Path, store_at: str | Path | None = None) -> tuple[StudySpec, list[TrialRow]]:
    store = Store(store_at or home / "scoot.db")
    try:
        row = store.studies()[0]
        return StudySpec.from_json(row.spec_json, row.source), store.trials(row.id)
    finally:
        store.close()


def test_a_retested_gain_beyond_the_noise_is_called_a_gain(
    tmp_path: Path, store_at: str | Path
) -> None:
    home = fake_store(tmp_path / "h", two_objectives=False, store_at=store_at)
    spec, trials = loaded(home, store_at)
    d = decide(trials, spec)
    assert d.best is not None and d.best.number == 7
    assert d.default is not None and d.default.number == 0
    (gain,) = d.gains
    assert gain.runs == (3, 3) and gain.significant
    # Worst pairing: the winner's worst run (4680) against the default's best (5350).
    assert abs(gain.low - (5350 - 4680) / 5350) < 1e-9
    assert d.verdict().startswith("trial 7 beats the default: p95_latency +14.6% (range +12.5%")
    assert d.command is not None and "--max-num-seqs 96" in d.command
    assert d.slo == (3, [4680.0])


def test_overlapping_runs_say_no_significant_gain(tmp_path: Path) -> None:
    spec, trials = loaded(fake_store(tmp_path / "h", two_objectives=False))
    # The default's re-tests as fast as the winner's: the ranges overlap.
    noisy = [
        dataclasses.replace(t, metrics=dataclasses.replace(t.metrics, p95_e2el_ms=4500.0))
        if t.retest_of == 0 and t.metrics is not None
        else t
        for t in trials
    ]
    d = decide(noisy, spec)
    assert d.best is not None and d.best.number == 7
    assert not d.gains[0].significant
    assert d.verdict().endswith("no significant gain")


def test_a_default_that_holds_is_what_to_deploy(tmp_path: Path) -> None:
    spec, trials = loaded(fake_store(tmp_path / "h", two_objectives=False))
    # Every other config's runs slower than the default's: the default stays the winner.
    slow = [
        dataclasses.replace(t, metrics=dataclasses.replace(t.metrics, p95_e2el_ms=9000.0))
        if not t.is_default and t.metrics is not None
        else t
        for t in trials
    ]
    d = decide(slow, spec)
    assert d.best is not None and d.best.is_default
    assert d.default_held
    assert d.verdict() == "no configuration beat the default once re-tested: deploy the default"


def test_two_objectives_list_the_front_against_the_default(
    tmp_path: Path, store_at: str | Path
) -> None:
    spec, trials = loaded(fake_store(tmp_path / "h", store_at=store_at), store_at)
    d = decide(trials, spec)
    numbers = [t.number for t, _ in d.front]
    assert numbers == [4, 9, 7, 11, 3, 6, 8]  # by TTFT, the default dominated
    four = next(changes for t, changes in d.front if t.number == 4)
    assert [round(c.relative, 3) for c in four] == [-0.611, 0.375]
    assert "not re-tested yet" in d.verdict()
    assert any(line.startswith("the front: 7 deployable points") for line in d.lines())


def test_no_winner_when_the_slo_rules_out_every_trial(tmp_path: Path) -> None:
    from scoot.domain import OutcomeConstraint

    spec, trials = loaded(fake_store(tmp_path / "h", two_objectives=False))
    strict = dataclasses.replace(spec, slo=(OutcomeConstraint("mean_ttft_ms", "<=", 1.0),))
    d = decide(trials, strict)
    assert d.best is None and d.command is None
    assert d.missed is not None and d.verdict() == d.missed
    assert d.lines() == []


def test_the_hypervolume_only_rises_and_grows_with_a_new_front_point(tmp_path: Path) -> None:
    spec, trials = loaded(fake_store(tmp_path / "h"))
    hv = hypervolume_over_trials(trials, spec.objectives)
    values = [v for _, v in hv]
    assert len(hv) == 10  # the completed trials
    assert all(b >= a for a, b in itertools.pairwise(values))
    assert values[-1] > values[0]
    assert hypervolume_over_trials(trials, spec.objectives[:1]) == []


def synthetic(tmp_path: Path, n: int = 24) -> tuple[StudySpec, list[TrialRow]]:
    """A study whose p95 depends on max_num_seqs only; the other nine flags are noise."""
    spec, _ = loaded(fake_store(tmp_path / "h", two_objectives=False))
    space = spec.space()
    rng = np.random.default_rng(0)
    store = Store(tmp_path / "syn.db")
    study, _ = store.open_study("syn", spec.to_json())
    for _ in range(n):
        config = space.decode(rng.random(space.dim))
        t = store.add_trial(study.id, config, "sobol")
        seqs = float(config["max_num_seqs"])
        p95 = 1000.0 + 8.0 * abs(seqs - 100.0)
        store.finish(t.id, TrialState.COMPLETED, metrics=Metrics.of(p95_e2el_ms=p95))
    trials = store.trials(study.id)
    store.close()
    return spec, trials


def test_importance_finds_the_flag_that_matters(tmp_path: Path) -> None:
    spec, trials = synthetic(tmp_path)
    ranked = importance(trials, spec)
    assert next(name for name, _ in ranked) == "max_num_seqs"
    assert abs(sum(share for _, share in ranked) - 1.0) < 1e-9
    assert {name for name, _ in ranked} == set(FLAGS)
    assert importance(trials[:3], spec) == []  # too few trials to say anything


def test_effects_group_a_flag_by_value_or_quartile(tmp_path: Path) -> None:
    spec, trials = synthetic(tmp_path)
    by_bool = effects(trials, spec, "enforce_eager")
    assert [e.label for e in by_bool] == ["False", "True"]
    assert sum(e.trials for e in by_bool) == len(trials)
    by_range = effects(trials, spec, "max_num_seqs")
    assert len(by_range) == 4 and sum(e.trials for e in by_range) == len(trials)
    assert min(e.best for e in by_range) == min(
        t.metrics.value(Objective.P95_LATENCY) for t in trials if t.metrics
    )


def test_compare_lists_the_flags_that_differ_and_metric_changes(tmp_path: Path) -> None:
    _, trials = loaded(fake_store(tmp_path / "h", two_objectives=False))
    a, b = trials[0], trials[7]
    c = compare(a, b)
    names = [f for f, _, _ in c.flags]
    assert "max_num_seqs" in names and "enforce_eager" not in names  # both False
    assert ("max_num_seqs", "256", "96") in c.flags
    p95 = dict((m, (x, y)) for m, x, y in c.metrics)["p95_e2el_ms"]
    assert p95 == (5400.0, 4550.0)
    failed = trials[1]
    assert compare(a, failed).metrics == ()
    same = compare(a, dataclasses.replace(a, config=Config.of(a.config.as_dict())))
    assert same.flags == ()
