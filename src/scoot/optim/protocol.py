"""The one interface every optimizer implements: ``suggest(history, n, rng)``.

Optimizers are pure: they read the history of observations, draw randomness only from ``rng``,
do no I/O, and return at most ``n`` new configs that satisfy the known constraints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from scoot.domain import Observation, Suggestion


def one_of(option: str, value: str, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``; else the one error every optimizer option
    gives, naming the option and its values."""
    if value not in allowed:
        raise ValueError(f"{option} must be one of {', '.join(allowed)}, not {value!r}")
    return value


class Suggester(Protocol):
    """Proposes configurations to evaluate next."""

    name: str

    def suggest(
        self, history: Sequence[Observation], n: int, rng: np.random.Generator
    ) -> list[Suggestion]:
        """Up to ``n`` new, allowed, pairwise distinct configs not already in ``history``."""
        ...
