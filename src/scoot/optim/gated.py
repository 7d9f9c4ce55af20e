"""What SCOOT's SOBO and MOBO share: one suggestion round of Algorithm 1 around a solver.

Sobol until the initial design is complete (§4.1); while fewer than two configs ran there is no
model to fit, but a failure already teaches the forest, so Sobol candidates are then screened by
its gate (a crash-heavy space does not spend its budget on the crash region while it waits for
a second success); then the random forest's gate (POF >= Delta, Eq. 3) for the solver, inside
the random-state fence; then ``n`` unseen candidates, Sobol filling any shortfall (§4.7).
Subclasses supply the candidates (``_candidates``) and how ``n`` are picked (``_pick``).

The shortfall is common on a grid of a few hundred configs: once MACE's Pareto set sits on
configs already tried, every suggestion of the round is a fill. ``fill = "paper"`` fills with
plain Sobol points (§4.7), half of which land in a crash region the forest already knows.
``fill = "model"`` (the default) ranks a pool of unseen Sobol points, and for SOBO the
neighbours of the best configs, by the round's own model: the gate's passers first, by
``_fill_rank`` (SOBO: the GP's lower confidence bound; MOBO: sequence order), then the rest
by POF. docs/benchmarks.md says what it measured.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from scoot.domain import Config, Observation, OutcomeConstraint, Suggestion
from scoot.optim.feasibility import FEASIBILITIES, Gate, gate_for
from scoot.optim.outcomes import SloModel
from scoot.optim.protocol import one_of
from scoot.optim.sobol import SobolSuggester, complete
from scoot.optim.space import SearchSpace, initial_design_size
from scoot.optim.surrogate import hebo_round

SCREEN = 32
"""Sobol candidates screened per suggestion while fewer than two configs ran, and per missing
suggestion by ``fill = "model"``."""

FILLS = ("model", "paper")
"""How a round's shortfall is filled (module docstring)."""


class GatedBO(ABC):
    name = "gated-bo"

    def __init__(
        self,
        space: SearchSpace,
        *,
        parallelism: int,
        n_init: int | None,
        epochs: int,
        use_forest: bool,
        seed: int | None = None,
        slo: Sequence[OutcomeConstraint] = (),
        feasibility: str = "staged",
        fill: str = "model",
    ) -> None:
        self.feasibility = one_of("feasibility", feasibility, FEASIBILITIES)
        self.fill = one_of("fill", fill, FILLS)
        self.space = space
        self.slo = tuple(slo)
        self.slo_model: SloModel | None = None
        self.parallelism = parallelism
        self.n_init = initial_design_size(space) if n_init is None else n_init
        self.epochs = epochs
        self.use_forest = use_forest
        self.sobol = SobolSuggester(space, seed=seed)
        if not use_forest:
            self.name = f"{self.name}-no-rf"

    def suggest(
        self, history: Sequence[Observation], n: int, rng: np.random.Generator
    ) -> list[Suggestion]:
        feasible = [o for o in history if o.feasible and o.metrics is not None]
        if n <= 0:
            return []
        if len(history) < self.n_init:
            return self.sobol.suggest(history, n, rng)
        if len(feasible) < 2:
            return self._screened_sobol(history, n, rng)
        gate = self._gate(history, rng)
        with hebo_round(rng):
            self.slo_model = (
                SloModel(self.space, feasible, self.slo, epochs=self.epochs) if self.slo else None
            )
            candidates = self._candidates(history, feasible, gate)
        seen = {o.config for o in history}
        fresh = [c for c in dict.fromkeys(candidates) if c not in seen]
        out = [Suggestion(c, self.name) for c in self._pick(fresh, n, rng)]
        if len(out) < n and self.fill == "model":
            taken = seen | {s.config for s in out}
            out += [
                Suggestion(c, f"{self.name}-fill")
                for c in self._filled(history, gate, n - len(out), taken, rng)
            ]
        return complete(self.sobol, out, n, seen, rng)

    def _filled(
        self,
        history: Sequence[Observation],
        gate: Gate,
        n: int,
        taken: set[Config],
        rng: np.random.Generator,
    ) -> list[Config]:
        """``n`` unseen configs for the round's shortfall (``fill = "model"``): a pool of
        Sobol points and :meth:`_fill_pool`'s, the gate's passers ranked by
        :meth:`_fill_rank`, then the others by POF."""
        pool = self.sobol.sample(SCREEN * n, rng, taken)
        pool += [c for c in self._fill_pool(history) if c not in taken]
        pool = [c for c in dict.fromkeys(pool) if self.space.allowed(c)]
        if not pool:
            return []
        u = np.array([self.space.encode(c) for c in pool])  # (m, d)
        passes = gate.violation(u) <= 0.0
        rank = self._fill_rank(u)  # lower first
        pof = gate.probability(u)
        order = sorted(range(len(pool)), key=lambda i: (0, rank[i]) if passes[i] else (1, -pof[i]))
        return [pool[i] for i in order[:n]]

    def _fill_pool(self, history: Sequence[Observation]) -> list[Config]:
        """Configs beyond Sobol's that a fill may take; none by default."""
        return []

    def _fill_rank(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        """How the fill orders the gate's passers (lower first): the pool's order here."""
        return np.arange(len(u), dtype=float)

    def _gate(self, history: Sequence[Observation], rng: np.random.Generator) -> Gate:
        """This round's gate: known constraints, and the forest with Algorithm 1's Delta."""
        return gate_for(
            self.space,
            history,
            self.parallelism,
            rng,
            use_forest=self.use_forest,
            n_init=self.n_init,
            feasibility=self.feasibility,
        )

    def _screened_sobol(
        self, history: Sequence[Observation], n: int, rng: np.random.Generator
    ) -> list[Suggestion]:
        """Sobol points the forest expects to run: of the next ``SCREEN x n`` unseen points of
        the sequence, the ``n`` most likely to run (with one success the forest's POF rarely
        reaches Delta anywhere, so the ranking, not the gate, decides); plain Sobol where no
        forest is used or nothing has failed."""
        if not self.use_forest or all(o.feasible for o in history):
            return self.sobol.suggest(history, n, rng)
        gate = self._gate(history, rng)
        seen = {o.config for o in history}
        pool = self.sobol.sample(SCREEN * n, rng, seen)
        if gate.pof is None or not pool:
            return self.sobol.suggest(history, n, rng)
        pof = gate.pof.pof(np.array([self.space.encode(c) for c in pool]))
        order = sorted(range(len(pool)), key=lambda i: -pof[i])
        picked = [Suggestion(pool[i], "sobol-screened") for i in order[:n]]
        return complete(self.sobol, picked, n, seen, rng)

    @abstractmethod
    def _candidates(
        self, history: Sequence[Observation], feasible: Sequence[Observation], gate: Gate
    ) -> list[Config]:
        """The solver's allowed configs, best first where it ranks them."""

    def _pick(self, fresh: list[Config], n: int, rng: np.random.Generator) -> list[Config]:
        """``n`` of the solver's unseen candidates; in the order given by default (ranked)."""
        return fresh[:n]
