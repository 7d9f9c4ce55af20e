"""SCOOT's MOBO (§4.5.2): reference point, top-k EHVI, the crash region.

How well it maps the front against Sobol is a quality margin of float32 GP fits, which moves
with the CPU: it is measured by ``bench/quality.py`` (``hv_ratio_median`` of ``scoot`` against
``random``), never asserted here."""

from __future__ import annotations

import numpy as np

from scoot.domain import FailureKind, Observation
from scoot.optim.mobo import ScootMOBO, choose_reference, nadir_reference
from scoot.optim.sobol import SobolSuggester
from synthetic import SPACE, TWO, synthetic_metrics


def _obs(c: object) -> Observation:
    return Observation(c, True, synthetic_metrics(c), None)  # type: ignore[arg-type]


def test_reference_is_the_default_once_something_beats_it_in_both() -> None:
    pts = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    default = np.array([2.5, 2.5])
    assert np.array_equal(choose_reference(pts, default), default)
    # The default on the front: map the front instead (its nadir, pushed out by a tenth).
    on_front = np.array([2.0, 2.0])
    assert np.allclose(choose_reference(pts, on_front), [3.2, 3.2])
    assert np.allclose(nadir_reference(pts), [3.2, 3.2])


def test_top_k_are_distinct_unseen_and_from_the_solver() -> None:
    history = [_obs(c) for c in SobolSuggester(SPACE).sample(10, np.random.default_rng(7))]
    mobo = ScootMOBO(SPACE, TWO, n_init=6, pop=20, gens=8, epochs=40)
    out = mobo.suggest(history, 3, np.random.default_rng(0))
    configs = [s.config for s in out]
    assert len(set(configs)) == 3
    assert not set(configs) & {o.config for o in history}
    assert all(s.source == "scoot-mobo" for s in out)


def test_keeps_away_from_a_learned_crash_region() -> None:
    history = []
    for c in SobolSuggester(SPACE).sample(24, np.random.default_rng(3)):
        crashed = SPACE.encode(c)[0] < 0.5
        history.append(
            Observation(c, False, None, FailureKind.STARTUP_OOM) if crashed else _obs(c)
        )
    out = ScootMOBO(SPACE, TWO, pop=20, gens=8, epochs=40).suggest(
        history, 4, np.random.default_rng(1)
    )
    bo = [s for s in out if s.source == "scoot-mobo"]
    assert bo, "the solver found no candidate"
    assert all(SPACE.encode(s.config)[0] >= 0.4 for s in bo)
