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


def test_a_believer_batch_spreads_where_top_k_takes_near_copies() -> None:
    from scoot.domain import Config
    from scoot.optim.ehvi import ehvi
    from scoot.optim.mobo import believer_batch

    front = np.array([[0.0, 1.0], [1.0, 0.0]])
    ref = np.array([2.0, 2.0])
    a, a2, b = (Config.of({"x": i}) for i in range(3))
    # a and a2 predict the same gain in the middle of the front; b a smaller one at its end.
    mu = np.array([[0.2, 0.2], [0.21, 0.21], [-0.5, 1.2]])
    sd = np.full((3, 2), 1e-3)
    value = ehvi(mu, sd, front, ref)
    ranked = [[a, a2, b][i] for i in np.argsort(-value)]
    assert ranked[:2] == [a, a2]  # top-k EHVI: two near-copies
    ok = np.ones(3, dtype=bool)
    picks = believer_batch(ranked, [a, a2, b], mu, sd, ok, front, ref, 2, set())
    assert picks[:2] == [a, b]  # once a is believed, a2 adds almost nothing
    assert picks[2:] == [a2]
    # Disallowed or already seen candidates are never picked (``ranked`` holds only allowed
    # candidates, as the solver's ranking does).
    gate = np.array([True, True, False])
    gated = believer_batch([a2], [a, a2, b], mu, sd, gate, front, ref, 2, {a})
    assert gated == [a2]


def test_batch_variant_is_checked() -> None:
    import pytest

    with pytest.raises(ValueError, match="batch must be one of topk, believer"):
        ScootMOBO(SPACE, TWO, batch="fantasy")
    mobo = ScootMOBO(
        SPACE, TWO, n_init=6, pop=20, gens=8, epochs=40, batch="believer", parallelism=3
    )
    history = [_obs(c) for c in SobolSuggester(SPACE).sample(10, np.random.default_rng(7))]
    out = mobo.suggest(history, 3, np.random.default_rng(0))
    assert len({s.config for s in out}) == 3


def test_box_reference_is_the_default_relaxed_where_asked() -> None:
    pts = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    on_front = np.array([2.0, 2.0])
    box = on_front + np.log(2.0)
    # The box wins over both the default and the nadir fallback.
    assert np.array_equal(choose_reference(pts, on_front, box), box)
    assert np.allclose(choose_reference(pts, on_front), [3.2, 3.2])


def test_box_reference_gives_no_credit_beyond_twice_the_default() -> None:
    """The reason for ``reference = "box"``: a prefill-starving point (TTFT 40 times the
    default's, TPOT lower) spans most of the nadir box and none of the 2x box."""
    from scoot.optim.ehvi import ehvi

    default = np.log([100.0, 20.0])
    front = np.vstack([default, np.log([5000.0, 10.0])])
    starving = np.log([[4000.0, 8.0]])
    near = np.log([[150.0, 15.0]])
    sd = np.full((1, 2), 1e-3)
    box = default + np.log(2.0)
    assert ehvi(starving, sd, front, box)[0] == 0.0
    assert ehvi(near, sd, front, box)[0] > 0.0
    nadir = nadir_reference(front)
    assert ehvi(starving, sd, front, nadir)[0] > 0.0


def test_reference_and_front_options_are_checked_and_run() -> None:
    import pytest

    with pytest.raises(ValueError, match="reference must be one of paper, box"):
        ScootMOBO(SPACE, TWO, reference="nadir")
    with pytest.raises(ValueError, match="front must be one of observed, posterior"):
        ScootMOBO(SPACE, TWO, front="mean")
    history = [_obs(c) for c in SobolSuggester(SPACE).sample(10, np.random.default_rng(7))]
    default = SPACE.default()
    if default is not None:
        history.insert(0, _obs(default))
    for reference, front in (("box", "observed"), ("paper", "posterior")):
        mobo = ScootMOBO(
            SPACE, TWO, n_init=6, pop=20, gens=8, epochs=40, reference=reference, front=front
        )
        out = mobo.suggest(history, 2, np.random.default_rng(0))
        assert len({s.config for s in out}) == 2
        assert not {s.config for s in out} & {o.config for o in history}


def test_a_pof_weight_prefers_the_likelier_of_two_equal_gains() -> None:
    from scoot.domain import Config
    from scoot.optim.mobo import believer_batch

    front = np.array([[0.5, 0.5]])
    ref = np.array([1.0, 1.0])
    a, b = Config.of({"x": 0}), Config.of({"x": 1})
    mu = np.array([[0.2, 0.6], [0.6, 0.2]])  # mirror images: the same EHVI
    sd = np.full((2, 2), 1e-3)
    ok = np.ones(2, dtype=bool)
    assert believer_batch([a, b], [a, b], mu, sd, ok, front, ref, 1, set())[0] == a
    weighted = believer_batch(
        [a, b], [a, b], mu, sd, ok, front, ref, 1, set(), np.array([0.3, 0.9])
    )
    assert weighted[0] == b


def test_the_gates_probability_is_the_forests_at_the_decoded_point() -> None:
    import pytest

    from scoot.optim.feasibility import FeasibilityModel, Gate

    rng = np.random.default_rng(0)
    x = rng.random((30, SPACE.dim))
    forest = FeasibilityModel().fit(x, x[:, 0] > 0.5, rng)
    u = rng.random((8, SPACE.dim))
    centred = np.array([SPACE.encode(SPACE.decode(row)) for row in u])
    assert np.allclose(Gate(SPACE, forest, 0.5).probability(u), forest.pof(centred))
    assert np.all(Gate(SPACE, None, 0.0).probability(u) == 1.0)
    with pytest.raises(ValueError, match="weight must be one of gate, pof"):
        ScootMOBO(SPACE, TWO, weight="ei")
