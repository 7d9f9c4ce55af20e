"""``scoot tui``: watch and steer tuning over SSH (the card's scoot_tui/).

The app reads the store (in worker threads, once a second) and sends operator commands through
:mod:`scoot.jobs.control`; it never runs an evaluation, so closing it changes nothing. Every
binding has an id and can be remapped in ``$SCOOT_HOME/keys.toml`` (``"study.pause" = "P"``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from scoot.jobs.store import Store
from scoot.tui.screens.studies import StudiesScreen


class ScootApp(App[None]):
    """The SCOOT terminal UI."""

    CSS_PATH = "app.tcss"
    TITLE = "SCOOT"
    SUB_TITLE = "LLM engine tuning"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "quit", "Quit", id="app.quit")]

    def __init__(
        self,
        data_dir: Path,
        *,
        queue_url: str | None = None,
        refresh_s: float = 1.0,
        keymap_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.queue_url = queue_url
        self.refresh_s = refresh_s
        self.keymap_path = keymap_path or data_dir / "keys.toml"

    @property
    def store_path(self) -> Path:
        return self.data_dir / "scoot.db"

    def open_store(self) -> Store:
        """A store connection for the calling thread (SQLite connections are per thread)."""
        return Store(self.store_path)

    def on_mount(self) -> None:
        if self.keymap_path.exists():
            self.set_keymap(load_keymap(self.keymap_path))
        self.push_screen(StudiesScreen())

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """The palette lists every binding of the current screen, with its key."""
        yield from super().get_system_commands(screen)
        for binding in screen.BINDINGS:
            if not isinstance(binding, Binding) or not binding.description:
                continue
            action = binding.action
            yield SystemCommand(
                f"{binding.description} ({binding.key})",
                f"runs '{action}' on this screen",
                lambda a=action, s=screen: self.call_later(s.run_action, a),
            )


def load_keymap(path: Path) -> dict[str, str]:
    """``{binding id: keys}`` from a TOML file; a bad file is an error naming it."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: {exc}") from None
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        raise ValueError(f'{path}: key {bad[0]!r}: expected a key string such as "ctrl+p"')
    return {k: str(v) for k, v in data.items()}


def run_tui(data_dir: Path, queue_url: str | None = None) -> None:
    """Run the app; a bad keymap file or an unreadable store stops it (an error naming the
    file) before the screen is taken over."""
    app = ScootApp(data_dir, queue_url=queue_url)
    if app.keymap_path.exists():
        load_keymap(app.keymap_path)
    if app.store_path.exists():
        app.open_store().close()
    app.run()
