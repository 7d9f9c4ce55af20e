"""What a study does next, decided from the store's state alone (no I/O, no optimizer, no clock).

Algorithm 1 of the paper with the store as its memory: the default config first (the baseline),
then suggestions, at most one trial in flight per GPU set (k = number of sets, §4.6), until the
budget of completed + failed trials is spent; then the winner's robustness re-tests (§4.8);
then the study is complete. Abandoned trials never count. Three invalid runs in a row (the
load generator fell behind its schedule) pause the study: more runs would measure the client.

Both executors, ``scoot worker`` and the foreground ``scoot tune``, act on this one plan
(:func:`scoot.jobs.tasks.advance`), so they cannot drift apart.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scoot.domain import (
    AbandonCause,
    Config,
    Objective,
    OutcomeConstraint,
    StudyState,
    TrialState,
)
from scoot.jobs.store import RETEST, TrialRow
from scoot.optim.results import best_index, pareto_mask, to_minimize

MAX_INVALID_RUNS = 3
"""Consecutive invalid runs (client behind schedule) after which the study pauses itself."""

LIVE = (StudyState.ACTIVE, StudyState.RUNNING)
"""The states in which a study makes progress (foreground and workers)."""


@dataclass(frozen=True, slots=True)
class Retest:
    """One robustness re-test to queue: the winner's config under arrival order ``seed``."""

    config: Config
    seed: int
    of: int
    runs: int

    @property
    def source(self) -> str:
        return f"{RETEST}{self.seed} of {self.runs} (#{self.of})"


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do now. ``suggest`` new configs are asked of the optimizer, none of them one of
    ``pending`` (queued or running); ``drop`` are queued trials made redundant."""

    suggest: int = 0
    pending: tuple[Config, ...] = ()
    retests: tuple[Retest, ...] = ()
    drop: tuple[int, ...] = ()
    complete: bool = False
    pause: str | None = None
    first: bool = False
    """No run of the default config (the baseline) that did not end abandoned: it goes first."""

    @property
    def idle(self) -> bool:
        return not (self.suggest or self.retests or self.drop or self.complete or self.pause)


@dataclass(frozen=True, slots=True)
class StudyFacts:
    """The part of a study's definition the policy reads."""

    budget: int
    slots: int
    robustness_runs: int
    objectives: tuple[Objective, ...]
    slo: tuple[OutcomeConstraint, ...] = ()
    retest_top: int = 1
    """How many of the best configs (one objective) get the re-tests, the default aside."""
    robust: bool = True
    """Pick the winner among the re-tested configs by their mean (False: ``variant =
    "paper"``, the best single run)."""


def counted(trials: Sequence[TrialRow]) -> int:
    """Trials that spend the budget: completed or failed, not re-tests."""
    return sum(t.counts for t in trials)


def plan(
    state: StudyState, facts: StudyFacts, trials: Sequence[TrialRow], since: float | None
) -> Plan:
    """The next step of a study in ``state`` with these ``trials``; ``since`` is when the
    state last changed (invalid runs before a resume do not count towards a new pause)."""
    if state not in LIVE:
        return Plan()
    streak = invalid_streak(trials, since)
    if streak >= MAX_INVALID_RUNS:
        return Plan(
            pause=f"the load generator fell behind its schedule in {streak} runs in a row: "
            "this machine cannot drive the trace's rate while running the engine. Nothing "
            "recorded is lost, and the configs are queued again. Free CPU (or raise "
            "[stress] max_lateness_ms where a CPU engine shares the cores) and resume the "
            "study; or lower [trace] rate and start over with `scoot tune FILE --new` (a "
            "changed rate is another study: its results are kept aside)"
        )
    done = counted(trials)
    in_flight = [t for t in trials if t.state in (TrialState.QUEUED, TrialState.RUNNING)]
    if done >= facts.budget:
        extra = tuple(t.id for t in in_flight if t.state is TrialState.QUEUED and t.retest is None)
        if any(t.state is TrialState.RUNNING or t.retest is not None for t in in_flight):
            return Plan(drop=extra)  # the last trials and re-tests are still running
        retests = missing_retests(trials, facts)
        if retests:
            return Plan(retests=retests, drop=extra)
        return Plan(complete=True, drop=extra)
    want = min(facts.slots, facts.budget - done) - len(in_flight)
    if want <= 0:
        return Plan()
    # The baseline runs first, and again if its only runs were abandoned (a pause --now, an
    # invalid run): every report compares with it.
    first = not any(t.is_default and t.state is not TrialState.ABANDONED for t in trials)
    return Plan(suggest=want, pending=tuple(t.config for t in in_flight), first=first)


def invalid_streak(trials: Sequence[TrialRow], since: float | None) -> int:
    """How many of the latest finished runs, since ``since``, were invalid (client behind)."""
    ended = sorted(
        (t for t in trials if t.ended_at is not None and t.ended_at >= (since or 0.0)),
        key=lambda t: t.ended_at or 0.0,
    )
    streak = 0
    for t in reversed(ended):
        if t.abandon_cause is AbandonCause.INVALID_RUN:
            streak += 1
        elif t.state in (TrialState.COMPLETED, TrialState.FAILED):
            break
    return streak


def measured(trials: Sequence[TrialRow], slo: Sequence[OutcomeConstraint] = ()) -> list[TrialRow]:
    """The trials whose metrics are values that can win: completed, not re-tests, not stopped
    early (bounds, not values), meeting every SLO."""
    return [
        t
        for t in trials
        if t.state is TrialState.COMPLETED
        and t.metrics is not None
        and t.retest is None
        and t.stopped_early is None
        and all(c.holds(t.metrics) for c in slo)
    ]


def best_trial(
    trials: Sequence[TrialRow],
    objectives: Sequence[Objective],
    slo: Sequence[OutcomeConstraint] = (),
    robust: bool = True,
) -> TrialRow | None:
    """The winner: the best completed trial for one objective; for TTFT and TPOT, the Pareto
    point of largest hypervolume against the default config (the paper's Eq. 10). With
    outcome constraints (``slo``), only trials meeting every one compete: None when none did
    (:func:`slo_missed` says so to the operator). A test stopped early measured bounds, not
    values: it never wins."""
    done = measured(trials, slo)
    if not done:
        return None
    if robust and len(objectives) == 1:
        picked = _robust_pick(trials, done, objectives[0])
        if picked is not None:
            return picked
    rows = [[t.metrics.value(o) for o in objectives] for t in done if t.metrics]
    default = next((t for t in done if t.is_default), None)
    reference = (
        [default.metrics.value(o) for o in objectives] if default and default.metrics else None
    )
    idx = best_index(rows, objectives, reference)
    return done[idx] if idx is not None else None


def _robust_pick(
    trials: Sequence[TrialRow], done: Sequence[TrialRow], objective: Objective
) -> TrialRow | None:
    """Once every re-test has finished, the re-tested config (the default among them) with the
    best mean over its runs, a failed run counting as the worst value (issue 18). The mean
    measured better than a lower confidence bound over three runs: in bench/gpu_time.py the
    recommendation's true p95 was 1.9 % above the best evaluated config's by the mean, 3.3 %
    by median + MAD, 7.1 % by the best single run (the paper's winner: ``variant = "paper"``).
    None while re-tests are queued or running, or when fewer than two configs were re-tested."""
    if any(t.retest is not None and not t.state.finished for t in trials):
        return None
    retested = {t.retest_of for t in trials if t.retest is not None}
    candidates = [t for t in done if t.number in retested]
    if len(candidates) < 2:
        return None

    def mean(t: TrialRow) -> float:
        value = statistics.fmean(runs_of(trials, t, objective))
        return -value if objective.maximize else value

    return min(candidates, key=mean)


def top_configs(
    trials: Sequence[TrialRow], objectives: Sequence[Objective], n: int
) -> list[TrialRow]:
    """The ``n`` best distinct configs by their single runs (one objective; the winner alone
    for two), the candidates of the re-tests."""
    done = measured(trials)
    if len(objectives) != 1 or n <= 1:
        return []
    o = objectives[0]
    done.sort(key=lambda t: to_minimize([t.metrics.value(o) if t.metrics else math.nan], [o])[0])
    out: list[TrialRow] = []
    for t in done:
        if all(t.config != u.config for u in out):
            out.append(t)
    return out[:n]


def front_trials(
    trials: Sequence[TrialRow],
    objectives: Sequence[Objective],
    slo: Sequence[OutcomeConstraint] = (),
) -> list[TrialRow]:
    """The deployable points of a two-objective study: the non-dominated completed trials
    (those meeting every SLO; not re-tests, not tests stopped early), by their first
    objective. The operator picks among them: the winner by hypervolume may be the default
    itself when nothing dominates it, while the front still holds trade-offs (issue 18)."""
    done = measured(trials, slo)
    if not done:
        return []
    rows = np.array(
        [
            to_minimize([t.metrics.value(o) for o in objectives], objectives)
            for t in done
            if t.metrics
        ]
    )
    front = [t for t, keep in zip(done, pareto_mask(rows), strict=True) if keep]
    first = objectives[0]
    return sorted(front, key=lambda t: t.metrics.value(first) if t.metrics else 0.0)


def slo_missed(trials: Sequence[TrialRow], slo: Sequence[OutcomeConstraint]) -> str | None:
    """One line for an operator when completed trials exist but none meets every outcome
    constraint; None otherwise."""
    done = [t for t in trials if t.state is TrialState.COMPLETED and t.metrics is not None]
    if not slo or not done or any(all(c.holds(t.metrics) for c in slo) for t in done if t.metrics):
        return None
    return (
        f"no completed trial meets every SLO ({', '.join(str(c) for c in slo)}): there is no "
        "winner to deploy"
    )


def missing_retests(trials: Sequence[TrialRow], facts: StudyFacts) -> tuple[Retest, ...]:
    """The robustness re-tests still missing: the winner's config under arrival orders
    shuffled with seeds 1..R (paper §4.8; the worst case of all is its SLO), those of the
    next best configs up to ``retest_top``, then the default's under the same orders, so the
    gain over the default carries its spread (:func:`gain_interval`; issue 18). They come
    after the budget. Once all have run, :func:`best_trial` picks among the re-tested configs
    by their mean over the runs, so a winner by one lucky run does not stay the winner."""
    winner = best_trial(trials, facts.objectives, facts.slo, facts.robust)
    runs = facts.robustness_runs
    if winner is None or runs <= 0:
        return ()
    out = list(_retests_of(trials, winner, runs))
    seen = {winner.number}
    for t in top_configs(trials, facts.objectives, facts.retest_top):
        if facts.slo and not all(c.holds(t.metrics) for c in facts.slo if t.metrics):
            continue
        if t.number not in seen:
            seen.add(t.number)
            out += _retests_of(trials, t, runs)
    default = baseline(trials)
    if default is not None and default.number not in seen:
        out += _retests_of(trials, default, runs)
    return tuple(out)


def _retests_of(trials: Sequence[TrialRow], of: TrialRow, runs: int) -> list[Retest]:
    have = {
        t.retest
        for t in trials
        if t.retest_of == of.number and t.state is not TrialState.ABANDONED
    }
    return [Retest(of.config, i, of.number, runs) for i in range(1, runs + 1) if i not in have]


def baseline(trials: Sequence[TrialRow]) -> TrialRow | None:
    """The default config's completed run (not a re-test), if there is one."""
    return next(
        (
            t
            for t in trials
            if t.is_default
            and t.retest is None
            and t.state is TrialState.COMPLETED
            and t.metrics is not None
        ),
        None,
    )


def runs_of(trials: Sequence[TrialRow], of: TrialRow, objective: Objective) -> list[float]:
    """``of``'s value of ``objective`` over its own run and its finished re-tests; a failed
    re-test counts as the worst value (0 throughput, infinite latency)."""
    values = [of.metrics.value(objective)] if of.metrics is not None else []
    for t in trials:
        if t.retest_of != of.number or t.retest is None:
            continue
        if t.state is TrialState.COMPLETED and t.metrics is not None:
            values.append(t.metrics.value(objective))
        elif t.state is TrialState.FAILED:
            values.append(0.0 if objective.maximize else math.inf)
    return values


@dataclass(frozen=True, slots=True)
class Gain:
    """The winner's relative gain over the default in one objective (positive is better):
    the median runs' gain, and the range from the winner's worst run against the default's
    best to its best against the default's worst."""

    objective: Objective
    median: float
    low: float
    high: float
    runs: tuple[int, int]
    """(winner's runs, default's runs) behind the figures."""

    @property
    def significant(self) -> bool:
        """Whether even the least favourable pairing is a gain (the range excludes zero)."""
        return self.low > 0.0 and self.runs[0] > 1 and self.runs[1] > 1

    def text(self) -> str:
        pct = f"{self.median:+.1%} (range {self.low:+.1%} to {self.high:+.1%}"
        pct += f" over {self.runs[0]} and {self.runs[1]} runs)"
        if self.runs[0] < 2 or self.runs[1] < 2:
            return f"{self.objective.value} {self.median:+.1%} (one run each: spread unknown)"
        return f"{self.objective.value} {pct}" + (
            "" if self.significant else ": no significant gain"
        )


def gain_interval(
    trials: Sequence[TrialRow], winner: TrialRow, default: TrialRow, objective: Objective
) -> Gain:
    """The winner's gain over the default in ``objective``, with its spread over the runs
    each has (:func:`runs_of`)."""
    w = runs_of(trials, winner, objective)
    d = runs_of(trials, default, objective)
    sign = 1.0 if objective.maximize else -1.0

    def gain(a: float, b: float) -> float:
        if not math.isfinite(a) or not math.isfinite(b) or b == 0:
            return -math.inf if not math.isfinite(a) else math.inf
        return sign * (a - b) / abs(b)

    best_w, worst_w = (max(w), min(w)) if objective.maximize else (min(w), max(w))
    best_d, worst_d = (max(d), min(d)) if objective.maximize else (min(d), max(d))
    return Gain(
        objective,
        gain(statistics.median(w), statistics.median(d)),
        gain(worst_w, best_d),
        gain(best_w, worst_d),
        (len(w), len(d)),
    )


def robust_slo(
    trials: Sequence[TrialRow], best: TrialRow, objectives: Sequence[Objective]
) -> tuple[int, list[float]] | None:
    """The winner's SLO: the worst value of each objective over its own run and its completed
    re-tests (§4.8), with the number of arrival orders; None before any re-test finished.
    A failed re-test makes the SLO unmeasurable (infinite latency, zero throughput)."""
    done = [
        t
        for t in trials
        if t.retest_of == best.number and t.state in (TrialState.COMPLETED, TrialState.FAILED)
    ]
    if not done or best.metrics is None:
        return None
    worst = []
    for o in objectives:
        values = [best.metrics.value(o)]
        for t in done:
            if t.metrics is None or t.state is TrialState.FAILED:
                values.append(0.0 if o.maximize else math.inf)
            else:
                values.append(t.metrics.value(o))
        worst.append(min(values) if o.maximize else max(values))
    return 1 + len(done), worst
