"""Hidden constraints: a random forest learns POF(x), and the threshold Delta follows Algorithm 1.

SCOOT (§4.7) never gives a crashed configuration a penalty value in the surrogate; instead a
random-forest *regression* on every observation (feasible 1, failed 0) predicts the probability
of feasibility, and the solver only proposes points with ``POF(x) >= Delta`` (Eq. 3). Delta is
replayed from the history of evaluated batches exactly as Algorithm 1 adjusts it:

- line 3: Delta = 0.5, c = 0, v = 0.05;
- lines 7-9: a batch with an invalid result: Delta = min(0.75, max(0.5, Delta + v)), c = 0;
- lines 10-14: otherwise c += k, and once c >= 5: Delta = max(0.25, Delta - v), c -= 5.

``feasibility = "staged"`` (:class:`StagedFeasibility`) refines the paper's single forest with
what the launcher already knows: *where* a config failed. A launch passes four stages in
order (its arguments are accepted, the weights load, memory is left for the KV cache, it
serves the stress test; :data:`STAGES`), and a config that failed at one stage says nothing
about the later ones. One forest per stage, on the
configs that reached it, gives ``POF = prod_s P(pass s | reached s)``. Where crashes have
different causes (70B on one H100 runs out of memory loading its weights; on two, small
memory shares leave nothing for the KV cache), one forest over both must explain them with
one set of splits, and with a few dozen points it often picks the wrong flag; per stage, each
cause is its own clean split. It is the default: on suite v2 it scored the same as the
paper's forest (0.751 both, 72 paired runs) and failed less after the initial design (7.0 %
against 10.5 %); docs/benchmarks.md has the figures, suite v1's too. ``"paper"`` keeps the
single forest of §4.7 (a study's ``variant = "paper"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from scoot.domain import FailureKind, Observation
from scoot.optim.protocol import one_of
from scoot.optim.space import SearchSpace

DELTA_START = 0.5
DELTA_STEP = 0.05
DELTA_CAP = 0.75
DELTA_FLOOR = 0.25
FEASIBLE_RUN = 5

FEASIBILITIES = ("staged", "paper")
"""The hidden-constraint models (module docstring)."""

STAGES: tuple[frozenset[FailureKind], ...] = (
    frozenset({FailureKind.INVALID_ARGS}),
    frozenset({FailureKind.STARTUP_OOM, FailureKind.STARTUP_CRASH}),
    frozenset({FailureKind.KV_CACHE_TOO_SMALL}),
    frozenset(
        {
            FailureKind.STARTUP_TIMEOUT,
            FailureKind.CRASH_UNDER_LOAD,
            FailureKind.HANG,
            FailureKind.SLO_UNMEASURABLE,
        }
    ),
)
"""A launch's stages in order, by the failures that end it there: its arguments are accepted,
the weights load and the profiling run fits, memory is left for the KV cache, it serves the
stress test. A failure of no known kind counts as the last stage's. (An out-of-memory in
CUDA-graph capture comes after the cache in vLLM, but its message is a load's: it counts as
the load's, an approximation the forests absorb.)"""


def failed_stage(o: Observation) -> int | None:
    """The index in :data:`STAGES` where ``o`` failed; None where it ran."""
    if o.feasible:
        return None
    for i, kinds in enumerate(STAGES):
        if o.failure in kinds:
            return i
    return len(STAGES) - 1


def delta_after(batches: Sequence[Sequence[bool]]) -> float:
    """Delta after evaluating ``batches`` (each a batch's feasible flags), per Algorithm 1."""
    delta = DELTA_START
    c = 0
    for batch in batches:
        if not all(batch):
            delta = min(DELTA_CAP, max(DELTA_START, delta + DELTA_STEP))
            c = 0
        else:
            c += len(batch)
            if c >= FEASIBLE_RUN:
                delta = max(DELTA_FLOOR, delta - DELTA_STEP)
                c -= FEASIBLE_RUN
    return round(delta, 10)


def delta_trace(feasible: Sequence[bool], k: int, n_init: int) -> list[float]:
    """Delta after each observation (feasible flags in evaluation order), as the next round's
    gate sees it: :data:`DELTA_START` through the first ``n_init`` observations (the default
    and the initial design; Algorithm 1 line 3), then per batch of ``k`` after them."""
    return [delta_after(batches_of(feasible[n_init:i], k)) for i in range(1, len(feasible) + 1)]


def batches_of(feasible: Sequence[bool], k: int) -> list[list[bool]]:
    """Observation flags in evaluation order, cut into batches of the parallelism degree."""
    k = max(1, k)
    return [list(feasible[i : i + k]) for i in range(0, len(feasible), k)]


class FeasibilityModel:
    """POF(x) from a random-forest regression on 0/1 feasibility labels (scikit-learn)."""

    def __init__(self, n_estimators: int = 100) -> None:
        self.n_estimators = n_estimators
        self._forest: object | None = None
        self._constant = 1.0

    def fit(
        self, x: NDArray[np.float64], feasible: NDArray[np.bool_], rng: np.random.Generator
    ) -> FeasibilityModel:
        """Train on unit-cube points ``x`` (n, d) and their feasibility (n,)."""
        y = np.asarray(feasible, dtype=float)
        if len(y) == 0 or y.min() == y.max():
            # One class only: nothing to separate; every point looks like the history.
            self._forest = None
            self._constant = float(y[0]) if len(y) else 1.0
            return self
        from sklearn.ensemble import RandomForestRegressor

        forest = RandomForestRegressor(
            n_estimators=self.n_estimators,
            min_samples_leaf=1,
            random_state=int(rng.integers(2**31 - 1)),
        )
        forest.fit(np.asarray(x, dtype=float), y)
        self._forest = forest
        return self

    def pof(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Probability of feasibility of each row of ``x`` (m, d).

        The forest's mean over its trees, as ``RandomForestRegressor.predict`` computes it
        (float32 inputs, trees summed in order, then divided: the same bits), without its
        per-call dispatch. The solvers call this on every population of every generation,
        100 points at a time, and the staged model holds up to four forests: the dispatch
        was most of a suggestion's forest time."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        if self._forest is None:
            return np.full(len(x), self._constant)
        trees = self._forest.estimators_  # type: ignore[attr-defined]
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        total = np.zeros(len(x))
        for tree in trees:
            total += tree.tree_.predict(x32)[:, 0]
        out: NDArray[np.float64] = np.clip(total / len(trees), 0.0, 1.0)
        return out


class StagedFeasibility:
    """POF(x) = prod over stages of P(pass the stage | reached it), one
    :class:`FeasibilityModel` per stage on the configs that reached it (module docstring)."""

    def __init__(self, n_estimators: int = 100) -> None:
        self.n_estimators = n_estimators
        self._stages: list[FeasibilityModel] = []

    def fit(
        self, x: NDArray[np.float64], stages: Sequence[int | None], rng: np.random.Generator
    ) -> StagedFeasibility:
        """Train on unit-cube points ``x`` (n, d) and where each failed
        (:func:`failed_stage`; None where it ran)."""
        x = np.asarray(x, dtype=float)
        at = np.array([len(STAGES) if s is None else s for s in stages], dtype=int)
        self._stages = []
        for i in range(len(STAGES)):
            reached = at >= i
            if not np.any(at[reached] == i):
                continue  # nothing failed here: this stage passes everywhere
            model = FeasibilityModel(self.n_estimators)
            self._stages.append(model.fit(x[reached], at[reached] > i, rng))
        return self

    def pof(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Probability of feasibility of each row of ``x`` (m, d)."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        out = np.ones(len(x))
        for model in self._stages:
            out = out * model.pof(x)
        return out


class Gate:
    """Where a solver may go: every known constraint holds and ``POF >= Delta`` (Eq. 3).

    ``violation`` follows pymoo's constraint convention (<= 0 is allowed) so the same numbers
    serve HEBO's and pymoo's solvers.
    """

    def __init__(
        self,
        space: SearchSpace,
        pof: FeasibilityModel | StagedFeasibility | None,
        delta: float,
    ) -> None:
        self.space = space
        self.pof = pof
        self.delta = delta

    def probability(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        """The forest's POF at unit-cube points ``u`` (m, d), scored at the decoded
        (cell-centred) point as :meth:`violation` does; 1 where no forest is used."""
        if self.pof is None:
            return np.ones(len(u))
        centred = np.array([self.space.encode(self.space.decode(row)) for row in u])
        return self.pof.pof(centred)

    def violation(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        """Per row of unit-cube points ``u`` (m, d)."""
        configs = [self.space.decode(row) for row in u]
        known = np.array([0.0 if self.space.allowed(c) else 1.0 for c in configs])
        if self.pof is None:
            return known
        # Score the decoded (cell-centred) point, as the forest saw the observations.
        centred = np.array([self.space.encode(c) for c in configs])  # (m, d)
        out: NDArray[np.float64] = np.maximum(known, self.delta - self.pof.pof(centred))
        return out


def gate_for(
    space: SearchSpace,
    history: Sequence[Observation],
    parallelism: int,
    rng: np.random.Generator,
    *,
    use_forest: bool = True,
    n_init: int = 0,
    feasibility: str = "staged",
) -> Gate:
    """The gate of one suggestion round: the forest on every observation, Delta replayed from
    the batches evaluated after the first ``n_init`` observations (the default and the
    initial design: Algorithm 1 sets Delta = 0.5, c = 0 at line 3, after the design, and
    adjusts it at lines 5-14 per BO batch). ``use_forest=False`` is the ablation of the
    paper's Figure 12: known constraints only. ``feasibility`` picks the forest (module
    docstring)."""
    if not use_forest:
        return Gate(space, None, 0.0)
    pof = pof_model(space, history, rng, feasibility)
    feasible = [o.feasible for o in history]
    return Gate(space, pof, delta_after(batches_of(feasible[n_init:], parallelism)))


def pof_model(
    space: SearchSpace,
    history: Sequence[Observation],
    rng: np.random.Generator,
    feasibility: str = "staged",
    n_estimators: int = 100,
) -> FeasibilityModel | StagedFeasibility:
    """The hidden-constraint model ``feasibility`` names (module docstring), fitted on every
    observation of ``history``."""
    one_of("feasibility", feasibility, FEASIBILITIES)
    x = np.array([space.encode(o.config) for o in history])
    if feasibility == "staged":
        return StagedFeasibility(n_estimators).fit(x, [failed_stage(o) for o in history], rng)
    return FeasibilityModel(n_estimators).fit(x, np.array([o.feasible for o in history]), rng)
