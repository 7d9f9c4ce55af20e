"""SCOOT's MOBO (§4.5.2): reference point, top-k EHVI, the crash region, and that it learns."""

from __future__ import annotations

import numpy as np

from scoot.domain import FailureKind, Observation
from scoot.optim.ehvi import hypervolume
from scoot.optim.mobo import ScootMOBO, choose_reference, nadir_reference
from scoot.optim.results import pareto_mask
from scoot.optim.sobol import SobolSuggester
from synthetic import SPACE, TWO, synthetic_metrics


def _obs(c: object) -> Observation:
    return Observation(c, True, synthetic_metrics(c), None)  # type: ignore[arg-type]


def _point(o: Observation) -> list[float]:
    return [o.objective(j) for j in TWO]


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


def test_maps_the_front_better_than_sobol() -> None:
    """Same start, same budget, three seeds: EHVI's fronts cover more hypervolume in total
    than as many more Sobol points."""
    big = [_obs(c) for c in SobolSuggester(SPACE).sample(400, np.random.default_rng(5))]
    runs = []
    for seed in range(3):
        start = [_obs(c) for c in SobolSuggester(SPACE).sample(6, np.random.default_rng(seed))]
        rng_m, rng_s = np.random.default_rng(seed), np.random.default_rng(seed)
        mobo = ScootMOBO(SPACE, TWO, n_init=6, pop=24, gens=10, epochs=50)
        sobol = SobolSuggester(SPACE)
        ours, theirs = list(start), list(start)
        for _ in range(10):
            ours += [_obs(s.config) for s in mobo.suggest(ours, 1, rng_m)]
            theirs += [_obs(s.config) for s in sobol.suggest(theirs, 1, rng_s)]
        runs.append((ours, theirs))
    every = np.array([_point(o) for o in big])
    ref = nadir_reference(every[pareto_mask(every)])
    total_ours = sum(hypervolume(np.array([_point(o) for o in r[0]]), ref) for r in runs)
    total_theirs = sum(hypervolume(np.array([_point(o) for o in r[1]]), ref) for r in runs)
    assert total_ours > 1.05 * total_theirs
