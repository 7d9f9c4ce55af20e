"""Snapshots of every screen at 80x24 (an SSH default) and 160x48, from a fixed store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fake_store import fake_store
from scoot.tui.app import ScootApp

SIZES = [(80, 24), (160, 48)]


def app_for(tmp_path: Path, two: bool = True) -> ScootApp:
    # A long refresh: the snapshot is taken from the first load only.
    return ScootApp(fake_store(tmp_path / "home", two_objectives=two), refresh_s=3600)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_studies_screen(
    snap_compare: Callable[..., Any], tmp_path: Path, size: tuple[int, int]
) -> None:
    async def settle(pilot: Any) -> None:
        await pilot.pause(0.5)

    assert snap_compare(app_for(tmp_path), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("tab", ["1", "2", "3", "4"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_study_screen_tabs(
    snap_compare: Callable[..., Any], tmp_path: Path, size: tuple[int, int], tab: str
) -> None:
    async def open_tab(pilot: Any) -> None:
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.8)
        await pilot.press(tab)
        await pilot.pause(0.3)

    assert snap_compare(app_for(tmp_path), terminal_size=size, run_before=open_tab)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_one_objective_plot(
    snap_compare: Callable[..., Any], tmp_path: Path, size: tuple[int, int]
) -> None:
    async def plot(pilot: Any) -> None:
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.8)
        await pilot.press("2")
        await pilot.pause(0.3)

    assert snap_compare(app_for(tmp_path, two=False), terminal_size=size, run_before=plot)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_trial_and_export_screens(
    snap_compare: Callable[..., Any], tmp_path: Path, size: tuple[int, int]
) -> None:
    async def trial(pilot: Any) -> None:
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.8)
        await pilot.press("down", "down", "enter")
        await pilot.pause(0.3)

    assert snap_compare(app_for(tmp_path), terminal_size=size, run_before=trial)

    async def export(pilot: Any) -> None:
        await trial(pilot)
        await pilot.press("e")
        await pilot.pause(0.3)

    assert snap_compare(app_for(tmp_path / "x"), terminal_size=size, run_before=export)
