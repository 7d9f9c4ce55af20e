"""What an operator needs to pick a config: the winner against the default, with the spread of
the gain over the re-tests, the front's deployable points for two objectives, and the command.

One place builds it from the store's trials; the CLI's ``study status``, the TUI's banner and
``scoot report`` print the same facts from it (issue 19), so they never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scoot.domain import Objective, TrialState
from scoot.engine.exporters import launch_command
from scoot.jobs.policy import (
    Gain,
    baseline,
    best_trial,
    front_trials,
    gain_interval,
    robust_slo,
    slo_missed,
)
from scoot.jobs.store import TrialRow
from scoot.optim.mobo import log_objectives, nadir_reference
from scoot.optim.results import hypervolume_2d
from scoot.study import StudySpec


@dataclass(frozen=True, slots=True)
class Change:
    """One objective of a trial against the default's run."""

    objective: Objective
    before: float
    after: float

    @property
    def relative(self) -> float:
        return (self.after - self.before) / self.before if self.before else 0.0

    def text(self) -> str:
        return (
            f"{self.objective.value} {self.before:.4g} -> {self.after:.4g} ({self.relative:+.1%})"
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The study's answer at one instant."""

    objectives: tuple[Objective, ...]
    best: TrialRow | None
    default: TrialRow | None
    changes: tuple[Change, ...]
    """The winner's single run against the default's, per objective."""
    gains: tuple[Gain, ...]
    """The winner's gain over the default across the re-tests (empty when it is the default)."""
    default_held: bool
    """Nothing beat the default once re-tested (one objective): deploy the default."""
    front: tuple[tuple[TrialRow, tuple[Change, ...]], ...]
    """For two objectives: each deployable point's values against the default."""
    missed: str | None
    """Why there is no winner when the SLOs rule every completed trial out."""
    slo: tuple[int, list[float]] | None
    """The winner's worst case over its arrival orders (paper §4.8)."""
    command: str | None
    """The winner's ready-to-run launch command for the study's engine kind."""

    def verdict(self) -> str:
        """One line: what the winner gains, and whether that is more than noise."""
        if self.best is None:
            return self.missed or "no winner yet"
        if self.default is None or not self.changes:
            return f"best: trial {self.best.number} (the default has no completed run to compare)"
        if self.best.number == self.default.number:
            if self.default_held:
                return "no configuration beat the default once re-tested: deploy the default"
            if len(self.objectives) > 1:
                return (
                    f"nothing dominates the default; the front holds {len(self.front)} "
                    "trade-off points"
                )
            return "the default is the best so far"
        if not self.gains or any(min(g.runs) < 2 for g in self.gains):
            changes = "; ".join(c.text() for c in self.changes)
            return f"trial {self.best.number} vs default: {changes} (not re-tested yet)"
        if all(g.significant for g in self.gains):
            return f"trial {self.best.number} beats the default: " + "; ".join(
                g.text() for g in self.gains
            )
        return f"trial {self.best.number} vs default: " + "; ".join(g.text() for g in self.gains)

    def lines(self) -> list[str]:
        """The summary ``scoot study status`` prints under its table."""
        if self.best is None:
            return []
        out = []
        if self.changes:
            out.append("best vs default: " + "; ".join(c.text() for c in self.changes))
            assert self.default is not None
            if self.best.number != self.default.number:
                out.append(
                    "gain over the default, across the re-tests: "
                    + "; ".join(g.text() for g in self.gains)
                )
            elif self.default_held:
                out.append(
                    "no configuration beat the default once re-tested: it stays the one to deploy"
                )
        if len(self.objectives) > 1 and self.default is not None:
            out.append(f"the front: {len(self.front)} deployable points against the default")
            for t, changes in self.front:
                mark = " (the default)" if t.is_default else ""
                shown = ", ".join(
                    f"{c.objective.value} {c.after:.4g} ({c.relative:+.1%})" for c in changes
                )
                out.append(f"  trial {t.number}{mark}: {shown}")
        if self.slo is not None:
            runs, values = self.slo
            shown = "; ".join(
                f"{o.value} {v:.4g}" for o, v in zip(self.objectives, values, strict=True)
            )
            out.append(f"SLO of the best, worst case over {runs} arrival orders: {shown}")
        return out


def decide(trials: Sequence[TrialRow], spec: StudySpec) -> Decision:
    """The decision the trials support now (see :class:`Decision`)."""
    objectives = tuple(spec.objectives)
    best = best_trial(trials, objectives, spec.slo, spec.variant != "paper")
    default = baseline(trials)
    changes: tuple[Change, ...] = ()
    gains: tuple[Gain, ...] = ()
    held = False
    front: list[tuple[TrialRow, tuple[Change, ...]]] = []
    command = None
    if best is not None and default is not None and default.metrics and best.metrics:
        dm, bm = default.metrics, best.metrics
        changes = tuple(Change(o, dm.value(o), bm.value(o)) for o in objectives)
        if best.number != default.number:
            gains = tuple(gain_interval(trials, best, default, o) for o in objectives)
        else:
            held = len(objectives) == 1 and any(t.retest_of == default.number for t in trials)
        if len(objectives) > 1:
            for t in front_trials(trials, objectives, spec.slo):
                if t.metrics is not None:
                    front.append(
                        (t, tuple(Change(o, dm.value(o), t.metrics.value(o)) for o in objectives))
                    )
    if best is not None:
        e = spec.engine
        command = launch_command(e.kind, e.command, e.model, e.args, best.config.as_dict(), e.env)
    return Decision(
        objectives=objectives,
        best=best,
        default=default,
        changes=changes,
        gains=gains,
        default_held=held,
        front=tuple(front),
        missed=slo_missed(trials, spec.slo) if best is None else None,
        slo=robust_slo(trials, best, objectives) if best is not None else None,
        command=command,
    )


def hypervolume_over_trials(
    trials: Sequence[TrialRow], objectives: Sequence[Objective]
) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the completed trials up to it) for a two-objective study:
    log objectives, as MOBO's EHVI scores them, against one fixed reference, the nadir of all
    completed trials pushed out by a tenth of its range, so the curve only rises and points
    that trade one objective for the other count too. Empty for one objective."""
    done = sorted(
        (
            t
            for t in trials
            if t.state is TrialState.COMPLETED and t.metrics is not None and t.retest is None
        ),
        key=lambda t: t.number,
    )
    if len(objectives) != 2 or not done:
        return []
    raw = np.array([[t.metrics.value(o) for o in objectives] for t in done if t.metrics])
    points = log_objectives(raw, objectives)
    ref = nadir_reference(points)
    return [(t.number, hypervolume_2d(points[: i + 1], ref)) for i, t in enumerate(done)]
