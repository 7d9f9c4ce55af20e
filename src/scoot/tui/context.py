"""What every screen needs from the app, as a protocol: screens never import the app module
(which imports the screens), so the TUI's modules form no import circle."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, cast

from textual.dom import DOMNode

from scoot.jobs.store import Store


class Context(Protocol):
    """The app's data directory, queue, refresh period and store connections."""

    data_dir: Path
    queue_url: str | None
    refresh_s: float

    def has_store(self) -> bool: ...

    def open_store(self) -> Store: ...


def context(node: DOMNode) -> Context:
    """The SCOOT app a screen or widget belongs to."""
    return cast(Context, node.app)
