"""Edges of running a study: an optimizer that throws, and a demo recorded by an older SCOOT."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from scoot.cli import changed_since_recorded, demo_study_path, report
from scoot.domain import Observation, Suggestion
from scoot.jobs.store import Store, StudyRow
from scoot.jobs.suggest import enqueue_trials
from scoot.optim.space import SearchSpace
from scoot.study import StudySpec, load_study


class Broken:
    name = "broken"

    def suggest(
        self, history: Sequence[Observation], n: int, rng: np.random.Generator
    ) -> list[Suggestion]:
        raise AssertionError("No valid data in the dataset")


@dataclass
class BrokenStudy:
    spec: StudySpec
    space: SearchSpace
    store: Store
    study: StudyRow


@pytest.fixture
def broken(make_study: Callable[..., Path], tmp_path: Path) -> BrokenStudy:
    """A fresh study whose default config is queued, the optimizer not yet asked."""
    spec = load_study(make_study(name="broken"))
    store = Store(tmp_path / "s.db")
    study, _ = store.open_study(spec.name, spec.to_json())
    first = enqueue_trials(store, study.id, spec, spec.space(), Broken(), [], 1, [])
    assert [t.source for t in first] == ["default"]
    return BrokenStudy(spec, spec.space(), store, study)


def test_a_failing_suggester_falls_back_to_sobol_and_says_so(broken: BrokenStudy) -> None:
    b = broken
    first = b.store.trials(b.study.id)
    added = enqueue_trials(
        b.store, b.study.id, b.spec, b.space, Broken(), first, 2, [first[0].config]
    )
    assert len(added) == 2
    assert all(t.source == "sobol" for t in added), [t.source for t in added]
    assert all(b.space.allowed(t.config) for t in added)
    assert len({t.config for t in [*first, *added]}) == 3
    events = [e for e in b.store.events(b.study.id) if e["kind"] == "optimizer-error"]
    assert len(events) == 1 and "No valid data" in events[0]["message"]


def test_study_status_shows_the_optimizer_error(
    broken: BrokenStudy, capsys: pytest.CaptureFixture[str]
) -> None:
    b = broken
    first = b.store.trials(b.study.id)
    enqueue_trials(b.store, b.study.id, b.spec, b.space, Broken(), first, 1, [first[0].config])
    report(b.store, b.study)
    out = capsys.readouterr().out
    assert "optimizer-error: broken: AssertionError('No valid data in the dataset')" in out


def test_a_changed_demo_is_set_aside_not_refused(tmp_path: Path) -> None:
    spec = load_study(demo_study_path())
    store = Store(tmp_path / "s.db")
    assert not changed_since_recorded(store, spec)
    store.open_study(spec.name, spec.to_json())
    assert not changed_since_recorded(store, spec)  # the same demo continues
    other = Store(tmp_path / "t.db")
    other.open_study(spec.name, spec.to_json().replace('"budget": ', '"budget": 1'))
    assert changed_since_recorded(other, spec)
