"""The pure policy both executors follow: what runs next, re-tests, pauses, the budget."""

from __future__ import annotations

from dataclasses import replace

from scoot.domain import AbandonCause, Config, Metrics, Objective, StudyState, TrialState
from scoot.jobs.policy import MAX_INVALID_RUNS, StudyFacts, plan
from scoot.jobs.store import TrialRow

FACTS = StudyFacts(budget=4, slots=2, robustness_runs=2, objectives=(Objective.P95_LATENCY,))


def trial(
    number: int,
    state: TrialState,
    p95: float = 100.0,
    *,
    ended: float | None = None,
    cause: AbandonCause | None = None,
    retest: int | None = None,
    of: int | None = None,
) -> TrialRow:
    done = state in (TrialState.COMPLETED, TrialState.FAILED, TrialState.ABANDONED)
    return TrialRow(
        id=100 + number,
        study_id=1,
        number=number,
        config=Config.of({"max_num_seqs": 8 + number if retest is None else 8 + (of or 0)}),
        source="default" if number == 0 else "scoot-sobo",
        state=state,
        failure_kind=None,
        failure_message=None,
        metrics=Metrics.of(p95_e2el_ms=p95) if state is TrialState.COMPLETED else None,
        gpu_set="0",
        engine_pgid=None,
        command=None,
        log_path=None,
        created_at=float(number),
        started_at=float(number),
        ended_at=(ended if ended is not None else float(number) + 0.5) if done else None,
        retest=retest,
        retest_of=of,
        abandon_cause=cause,
    )


def test_the_default_goes_first_one_trial_per_gpu_set() -> None:
    step = plan(StudyState.ACTIVE, FACTS, [], None)
    assert (step.suggest, step.first) == (2, True)
    one_set = replace(FACTS, slots=1)
    assert plan(StudyState.RUNNING, one_set, [], None).suggest == 1


def test_trials_in_flight_take_their_sets_and_are_not_suggested_again() -> None:
    trials = [trial(0, TrialState.COMPLETED), trial(1, TrialState.RUNNING)]
    step = plan(StudyState.RUNNING, FACTS, trials, None)
    assert step.suggest == 1 and not step.first
    assert step.pending == (trials[1].config,)
    trials.append(trial(2, TrialState.QUEUED))
    assert plan(StudyState.RUNNING, FACTS, trials, None).idle


def test_never_more_trials_than_the_budget_left() -> None:
    trials = [trial(i, TrialState.COMPLETED) for i in range(3)]
    assert plan(StudyState.ACTIVE, FACTS, trials, None).suggest == 1  # 4 - 3, not 2 sets


def test_abandoned_trials_do_not_spend_the_budget() -> None:
    trials = [trial(0, TrialState.COMPLETED)]
    trials += [trial(i, TrialState.ABANDONED, cause=AbandonCause.INTERRUPTED) for i in (1, 2)]
    trials.append(trial(3, TrialState.FAILED))
    assert plan(StudyState.ACTIVE, FACTS, trials, None).suggest == 2


def test_budget_spent_then_the_winners_retests_then_complete() -> None:
    trials = [trial(i, TrialState.COMPLETED, p95=100.0 - i) for i in range(4)]
    step = plan(StudyState.RUNNING, FACTS, trials, None)
    assert step.suggest == 0 and not step.complete
    # The winner's re-tests, then the default's under the same arrival orders (issue 18).
    assert [(r.seed, r.of, r.config) for r in step.retests] == [
        (1, 3, trials[3].config),
        (2, 3, trials[3].config),
        (1, 0, trials[0].config),
        (2, 0, trials[0].config),
    ]
    assert step.retests[0].source == "robustness 1 of 2 (#3)"
    trials += [
        trial(4, TrialState.RUNNING, retest=1, of=3),
        trial(5, TrialState.QUEUED, retest=2, of=3),
    ]
    assert plan(StudyState.RUNNING, FACTS, trials, None).idle  # re-tests under way
    trials[4] = trial(4, TrialState.COMPLETED, retest=1, of=3)
    trials[5] = trial(5, TrialState.ABANDONED, retest=2, of=3, cause=AbandonCause.OPERATOR)
    again = plan(StudyState.RUNNING, FACTS, trials, None)
    # An abandoned re-test is queued again; the default's are still to come.
    assert [(r.seed, r.of) for r in again.retests] == [(2, 3), (1, 0), (2, 0)]
    trials[5] = trial(5, TrialState.FAILED, retest=2, of=3)
    trials += [trial(6, TrialState.COMPLETED, retest=1, of=0)]
    trials += [trial(7, TrialState.COMPLETED, retest=2, of=0)]
    assert plan(StudyState.RUNNING, FACTS, trials, None).complete


def test_the_gain_over_the_default_carries_its_spread() -> None:
    from scoot.domain import Objective
    from scoot.jobs.policy import gain_interval

    p95 = Objective.P95_LATENCY
    trials = [
        trial(0, TrialState.COMPLETED, p95=1000.0),
        trial(1, TrialState.COMPLETED, p95=800.0),
    ]
    one = gain_interval(trials, trials[1], trials[0], p95)
    assert abs(one.median - 0.2) < 1e-12 and not one.significant
    assert "one run each" in one.text()
    # Re-tests: the winner 800-900 ms, the default 950-1000 ms: a gain even at worst.
    trials += [
        trial(2, TrialState.COMPLETED, p95=900.0, retest=1, of=1),
        trial(3, TrialState.COMPLETED, p95=850.0, retest=2, of=1),
        trial(4, TrialState.COMPLETED, p95=950.0, retest=1, of=0),
        trial(5, TrialState.COMPLETED, p95=980.0, retest=2, of=0),
    ]
    g = gain_interval(trials, trials[1], trials[0], p95)
    assert g.runs == (3, 3) and g.significant
    assert abs(g.low - (950.0 - 900.0) / 950.0) < 1e-12
    assert abs(g.high - (1000.0 - 800.0) / 1000.0) < 1e-12
    assert "no significant gain" not in g.text()
    # A default run as fast as the winner's slowest: the range reaches zero.
    trials[4] = trial(4, TrialState.COMPLETED, p95=880.0, retest=1, of=0)
    g = gain_interval(trials, trials[1], trials[0], p95)
    assert not g.significant and g.text().endswith("no significant gain")


def test_a_queued_retry_past_the_budget_is_dropped() -> None:
    trials = [trial(i, TrialState.COMPLETED) for i in range(4)] + [trial(4, TrialState.QUEUED)]
    step = plan(StudyState.ACTIVE, replace(FACTS, robustness_runs=0), trials, None)
    assert step.drop == (104,) and step.complete


def test_three_invalid_runs_in_a_row_pause() -> None:
    behind = AbandonCause.INVALID_RUN
    trials = [trial(0, TrialState.COMPLETED)]
    trials += [
        trial(i, TrialState.ABANDONED, cause=behind) for i in range(1, MAX_INVALID_RUNS + 1)
    ]
    step = plan(StudyState.RUNNING, FACTS, trials, None)
    assert step.pause is not None and "fell behind its schedule in 3 runs" in step.pause
    # An interruption between them does not break the streak; a measured run does.
    mixed = [*trials[:2], trial(9, TrialState.ABANDONED, ended=1.7, cause=AbandonCause.OPERATOR)]
    mixed += trials[2:]
    assert plan(StudyState.RUNNING, FACTS, mixed, None).pause is not None
    broken = [*trials[:2], trial(9, TrialState.FAILED, ended=1.7), *trials[2:]]
    assert plan(StudyState.RUNNING, FACTS, broken, None).pause is None
    # Runs before the last resume count for nothing.
    assert plan(StudyState.RUNNING, FACTS, trials, since=2.0).pause is None


def test_a_study_not_live_does_nothing() -> None:
    for state in (StudyState.PAUSED, StudyState.CANCELLED, StudyState.COMPLETED):
        assert plan(state, FACTS, [], None).idle


def test_the_baseline_runs_again_when_its_only_run_was_abandoned() -> None:
    """`pause --now` during the default trial, then resume: the default is owed a run."""
    stopped = trial(0, TrialState.ABANDONED, cause=AbandonCause.OPERATOR)
    assert plan(StudyState.RUNNING, FACTS, [stopped], None).first
    measured = [stopped, trial(1, TrialState.FAILED)]
    measured[1] = replace(measured[1], source="default")
    assert not plan(StudyState.RUNNING, FACTS, measured, None).first


def test_the_front_lists_trade_offs_even_when_the_default_is_the_winner() -> None:
    """For TTFT and TPOT nothing may dominate the default; the front still shows the points
    an operator can deploy, each against the default (issue 18). A test stopped early and a
    re-test are not points of it."""
    from scoot.jobs.policy import best_trial, front_trials

    def tt(number: int, ttft: float, tpot: float, **kw: object) -> TrialRow:
        base = trial(number, TrialState.COMPLETED, **kw)  # type: ignore[arg-type]
        return replace(base, metrics=Metrics.of(mean_ttft_ms=ttft, mean_tpot_ms=tpot))

    two = (Objective.TTFT, Objective.TPOT)
    stopped = replace(
        tt(4, 50.0, 5.0),
        metrics=Metrics.of(mean_ttft_ms=50.0, mean_tpot_ms=5.0, stopped_early="worse"),
    )
    trials = [
        tt(0, 100.0, 10.0),  # the default
        tt(1, 103.6, 6.5),  # TPOT -35 % for TTFT +3.6 %
        tt(2, 120.0, 12.0),  # dominated by the default
        tt(3, 90.0, 14.0),  # TTFT -10 % for TPOT +40 %
        stopped,
        tt(5, 10.0, 1.0, retest=1, of=1),
    ]
    front = front_trials(trials, two)
    assert [t.number for t in front] == [3, 0, 1]
    assert best_trial(trials, two) is not None


def test_with_retest_top_the_winner_is_the_retested_config_that_holds_up() -> None:
    """A single lucky run (#3: 90 ms) does not stay the winner once the re-tests show it at
    200-210 ms while #2 holds 99-101 ms (the best mean); the default is re-tested too."""
    from scoot.jobs.policy import best_trial

    facts = replace(FACTS, retest_top=2)
    trials = [
        trial(0, TrialState.COMPLETED, p95=150.0),
        trial(1, TrialState.COMPLETED, p95=120.0),
        trial(2, TrialState.COMPLETED, p95=100.0),
        trial(3, TrialState.COMPLETED, p95=90.0),
    ]
    step = plan(StudyState.RUNNING, facts, trials, None)
    assert [(r.of, r.seed) for r in step.retests] == [
        (3, 1),
        (3, 2),
        (2, 1),
        (2, 2),
        (0, 1),
        (0, 2),
    ]
    assert best_trial(trials, facts.objectives).number == 3  # type: ignore[union-attr]
    runs = {3: (200.0, 210.0), 2: (101.0, 99.0), 0: (140.0, 160.0)}
    n = 4
    for of, values in runs.items():
        for seed, p95 in enumerate(values, start=1):
            trials.append(trial(n, TrialState.COMPLETED, p95=p95, retest=seed, of=of))
            n += 1
    # While one re-test runs, the single best stays the winner (nothing to compare yet).
    running = [*trials[:-1], trial(n - 1, TrialState.RUNNING, retest=2, of=0)]
    assert best_trial(running, facts.objectives).number == 3  # type: ignore[union-attr]
    assert best_trial(trials, facts.objectives).number == 2  # type: ignore[union-attr]
    assert plan(StudyState.RUNNING, facts, trials, None).complete
    # variant = "paper": the winner stays the best single run.
    assert best_trial(trials, facts.objectives, robust=False).number == 3  # type: ignore[union-attr]
    # The paper's rule (the winner alone, and the default) is the default: retest_top = 1.
    assert [r.of for r in plan(StudyState.RUNNING, FACTS, trials[:4], None).retests] == [
        3,
        3,
        0,
        0,
    ]
