"""Snapshots of every screen at 80x24 (an SSH default) and 160x48, from a fixed store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, TabbedContent

from fake_store import fake_store
from helpers import until
from scoot.tui.app import ScootApp
from scoot.tui.screens.export import ExportScreen
from scoot.tui.screens.trial import TrialScreen

SIZES = [(80, 24), (160, 48)]
TABS = {"1": "trials", "2": "plot", "3": "feasibility", "4": "gpus", "5": "why"}


def app_for(tmp_path: Path, two: bool = True) -> ScootApp:
    # A long refresh: the snapshot is taken from the first load only.
    return ScootApp(fake_store(tmp_path / "home", two_objectives=two), refresh_s=3600)


async def studies_shown(pilot: Any) -> None:
    """The row is in and the columns are as wide as it: the table sizes its columns to a new
    row on its next idle, and a loaded machine (CI with a benchmark beside it) took a snapshot
    in between, with the columns as wide as their headings."""

    def shown() -> bool:
        table = pilot.app.screen.query_one("#studies", DataTable)
        return bool(table.row_count == 1 and table.columns["study"].content_width > len("study"))

    await until(pilot, shown, "the row, with the columns sized to it")


async def study_shown(pilot: Any) -> None:
    """Open the study and wait for its first view to be drawn."""
    await studies_shown(pilot)
    await pilot.press("enter")
    await until(pilot, lambda: getattr(pilot.app.screen, "view", None) is not None, "the view")


async def tab_shown(pilot: Any, tab: str) -> None:
    await pilot.press(tab)
    await until(pilot, lambda: pilot.app.screen.query_one(TabbedContent).active == TABS[tab], tab)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_studies_screen(
    snap_compare: Callable[..., Any], tmp_path: Path, size: tuple[int, int]
) -> None:
    assert snap_compare(app_for(tmp_path), terminal_size=size, run_before=studies_shown)


@pytest.mark.parametrize("tab", ["1", "2", "3", "4", "5"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_study_screen_tabs(
    snap_compare: Callable[..., Any], tmp_path: Path, size: tuple[int, int], tab: str
) -> None:
    async def open_tab(pilot: Any) -> None:
        await study_shown(pilot)
        await tab_shown(pilot, tab)

    assert snap_compare(app_for(tmp_path), terminal_size=size, run_before=open_tab)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_one_objective_plot(
    snap_compare: Callable[..., Any], tmp_path: Path, size: tuple[int, int]
) -> None:
    async def plot(pilot: Any) -> None:
        await study_shown(pilot)
        await tab_shown(pilot, "2")

    assert snap_compare(app_for(tmp_path, two=False), terminal_size=size, run_before=plot)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_trial_and_export_screens(
    snap_compare: Callable[..., Any], tmp_path: Path, size: tuple[int, int]
) -> None:
    async def trial(pilot: Any) -> None:
        await study_shown(pilot)
        await pilot.press("down", "down", "enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, TrialScreen), "the trial")

    assert snap_compare(app_for(tmp_path), terminal_size=size, run_before=trial)

    async def export(pilot: Any) -> None:
        await trial(pilot)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(pilot.app.screen, ExportScreen), "the export")

    assert snap_compare(app_for(tmp_path / "x"), terminal_size=size, run_before=export)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help_screen(
    snap_compare: Callable[..., Any], tmp_path: Path, size: tuple[int, int]
) -> None:
    async def help_shown(pilot: Any) -> None:
        from scoot.tui.screens.help import HelpScreen

        await study_shown(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), "the help")

    assert snap_compare(app_for(tmp_path, two=False), terminal_size=size, run_before=help_shown)
