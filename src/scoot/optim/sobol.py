"""Sobol quasi-random sampling: the paper's initial design (§4.1) and shortfall filler (§4.7)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy.stats import qmc

from scoot.domain import Config, Observation, Suggestion
from scoot.optim.space import SearchSpace


class SobolSuggester:
    """Scrambled Sobol points of the unit cube, decoded, pruned by the known constraints.

    With a ``seed`` (a study's), every call walks the same scrambled sequence from its start
    and skips the configs already tried, so a design suggested one point per round is still
    one low-discrepancy sequence (§4.1), not a string of first points of fresh scrambles,
    which are i.i.d. uniform. Without one, each call scrambles anew from ``rng``.
    """

    name = "sobol"

    def __init__(self, space: SearchSpace, max_draws: int = 8192, seed: int | None = None) -> None:
        self.space = space
        self.max_draws = max_draws
        self.seed = seed

    def suggest(
        self, history: Sequence[Observation], n: int, rng: np.random.Generator
    ) -> list[Suggestion]:
        seen = {o.config for o in history}
        return [Suggestion(c, self.name) for c in self.sample(n, rng, seen)]

    def sample(
        self, n: int, rng: np.random.Generator, exclude: Iterable[Config] = ()
    ) -> list[Config]:
        """``n`` distinct allowed configs not in ``exclude`` (fewer if the space runs out)."""
        seen = set(exclude)
        out: list[Config] = []
        if n <= 0:
            return out
        seed = self.seed if self.seed is not None else int(rng.integers(2**31))
        sampler = qmc.Sobol(d=self.space.dim, scramble=True, seed=seed)
        drawn = 0
        while len(out) < n and drawn < self.max_draws:
            points = sampler.random_base2(m=6) if drawn == 0 else sampler.random(64)  # (64, d)
            drawn += len(points)
            for u in points:
                config = self.space.decode(u)
                if config in seen or not self.space.allowed(config):
                    continue
                seen.add(config)
                out.append(config)
                if len(out) == n:
                    break
        return out


def complete(
    sobol: SobolSuggester,
    picked: list[Suggestion],
    n: int,
    seen: set[Config],
    rng: np.random.Generator,
) -> list[Suggestion]:
    """Top ``picked`` up to ``n`` with Sobol points when a solver falls short (§4.7)."""
    if len(picked) >= n:
        return picked[:n]
    taken = seen | {s.config for s in picked}
    fill = sobol.sample(n - len(picked), rng, taken)
    return picked + [Suggestion(c, "sobol-fill") for c in fill]
