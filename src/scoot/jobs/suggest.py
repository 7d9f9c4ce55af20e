"""One suggestion round: the optimizer the study asked for, over its search space.

The only module of ``jobs`` that imports the optimizers (HEBO, EHVI, torch): it runs inside the
advance task, on a worker or the foreground executor, never in the CLI or the TUI.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scoot.domain import Config, EventKind
from scoot.jobs.store import DEFAULT, Store, StoreError, TrialRow
from scoot.optim.mobo import ScootMOBO
from scoot.optim.protocol import Suggester
from scoot.optim.sobo import ScootSOBO
from scoot.optim.sobol import SobolSuggester
from scoot.optim.space import SearchSpace
from scoot.study import StudySpec


def default_suggester(spec: StudySpec, space: SearchSpace) -> Suggester:
    """The paper's optimizer for the study's objectives: SOBO (HEBO-MACE with random-forest
    feasibility) for one objective, MOBO (EHVI) for TTFT and TPOT. With k > 1 GPU sets the
    batch is chosen as ``variant`` says: ``default`` (diverse picks, a Kriging believer) or
    ``paper``; so is a round's shortfall (``default``: ranked by the model, ``paper``:
    Sobol); and so is the hidden-constraint model (:attr:`StudySpec.feasibility`: the
    staged forest, or the paper's single one)."""
    k = len(spec.gpu_sets)
    paper = spec.variant == "paper"
    if len(spec.objectives) == 1:
        return ScootSOBO(
            space,
            spec.objectives[0],
            parallelism=k,
            seed=spec.seed,
            slo=spec.slo,
            batch="paper" if paper else "diverse",
            fill="paper" if paper else "model",
            feasibility=spec.feasibility,
        )
    return ScootMOBO(
        space,
        spec.objectives,
        parallelism=k,
        seed=spec.seed,
        slo=spec.slo,
        batch="topk" if paper else "believer",
        fill="paper" if paper else "model",
        feasibility=spec.feasibility,
    )


def enqueue_trials(
    store: Store,
    study_id: int,
    spec: StudySpec,
    space: SearchSpace,
    suggester: Suggester,
    trials: Sequence[TrialRow],
    n: int,
    pending: Sequence[Config],
    *,
    first: bool | None = None,
) -> list[TrialRow]:
    """Queue ``n`` new trials: the default first when ``first`` (default: when there is no
    trial yet), then the optimizer's suggestions, none of them a config already queued or
    running."""
    default = space.default()
    added: list[TrialRow] = []
    pending = list(pending)
    if (not trials if first is None else first) and default is not None:
        added.append(store.add_trial(study_id, default, DEFAULT))
        n -= 1
        pending.append(default)
        if n <= 0:
            return added
    history = store.observations(study_id)
    # Seeded by the study seed and the history length: a resumed study suggests the same.
    rng = np.random.default_rng([spec.seed, len(trials)])
    try:
        suggestions = suggester.suggest(history, n + len(pending), rng)
    except Exception as exc:
        # A numerical failure must not end an hours-long job: one round of quasi-random
        # configs instead (§4.7's fill); the next round tries the model again. The event
        # keeps the error for the operator and the TUI.
        store.event(
            study_id,
            None,
            EventKind.OPTIMIZER_ERROR,
            f"{suggester.name}: {exc!r}; Sobol this round"[:500],
        )
        suggestions = SobolSuggester(space, seed=spec.seed).suggest(history, n + len(pending), rng)
    fresh = [s for s in suggestions if s.config not in pending][:n]
    if not fresh:
        raise StoreError("the search space has no untried config left that meets the constraints")
    return added + [store.add_trial(study_id, s.config, s.source) for s in fresh]
