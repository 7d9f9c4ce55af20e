"""``scoot tui``: watch and steer tuning over SSH (the card's scoot_tui/).

The app reads the store (in worker threads, once a second) and sends operator commands through
:mod:`scoot.jobs.control`; it never runs an evaluation, so closing it changes nothing. Every
binding has an id and can be remapped in ``$SCOOT_HOME/keys.toml`` (``"study.pause" = "P"``).
"""

from __future__ import annotations

import difflib
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
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit", tooltip="quit the TUI (studies go on)"),
        Binding(
            "question_mark", "help", "Help", id="app.help", tooltip="list every key of this screen"
        ),
    ]

    def __init__(
        self,
        data_dir: Path,
        *,
        queue_url: str | None = None,
        refresh_s: float = 1.0,
        keymap_path: Path | None = None,
        store: str | None = None,
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.store = store
        self.queue_url = queue_url
        self.refresh_s = refresh_s
        self.keymap_path = keymap_path or data_dir / "keys.toml"

    @property
    def store_location(self) -> str | Path:
        return self.store or self.data_dir / "scoot.db"

    def has_store(self) -> bool:
        """Whether there is a store to read (a SQLite file not made yet is none)."""
        return self.store is not None or (self.data_dir / "scoot.db").exists()

    def open_store(self) -> Store:
        """A store connection for the calling thread (SQLite connections are per thread)."""
        return Store(self.store_location, self.data_dir)

    def on_mount(self) -> None:
        if self.keymap_path.exists():
            self.set_keymap(load_keymap(self.keymap_path))
        self.push_screen(StudiesScreen())

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """The palette lists every binding of the current screen in words, with the key it
        has now (a key remapped in ``keys.toml`` shows as remapped)."""
        from scoot.tui.screens.help import key_rows

        yield from super().get_system_commands(screen)
        for row in key_rows(screen):
            if row.ident in ("app.help",) or not row.name:
                continue
            yield SystemCommand(
                f"{row.name} ({row.keys})",
                f"{row.what[:1].upper()}{row.what[1:]} (binding {row.ident})",
                lambda a=row.action, s=screen: self.call_later(s.run_action, a),
            )

    def action_help(self) -> None:
        from scoot.tui.screens.help import HelpScreen, key_rows

        if isinstance(self.screen, HelpScreen):
            return
        where = type(self.screen).__name__.removesuffix("Screen").lower() + " screen"
        self.push_screen(HelpScreen(key_rows(self.screen), where))


def binding_ids() -> set[str]:
    """Every binding id of the app and its screens: what ``keys.toml`` may remap."""
    from scoot.tui.screens.compare import CompareScreen
    from scoot.tui.screens.confirm import ConfirmScreen
    from scoot.tui.screens.export import ExportScreen
    from scoot.tui.screens.help import HelpScreen
    from scoot.tui.screens.new_study import NewStudyScreen
    from scoot.tui.screens.study import StudyScreen
    from scoot.tui.screens.trial import TrialScreen

    owners = (
        ScootApp,
        StudiesScreen,
        StudyScreen,
        TrialScreen,
        ExportScreen,
        NewStudyScreen,
        ConfirmScreen,
        CompareScreen,
        HelpScreen,
    )
    return {b.id for o in owners for b in o.BINDINGS if isinstance(b, Binding) and b.id}


def load_keymap(path: Path) -> dict[str, str]:
    """``{binding id: keys}`` from a TOML file; a bad file, a value that is not a key string
    or an id no binding has (a typo would silently remap nothing) is an error naming it."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: {exc}") from None
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        raise ValueError(f'{path}: key {bad[0]!r}: expected a key string such as "ctrl+p"')
    known = binding_ids()
    unknown = [k for k in data if k not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(
            f"{path}: key {unknown[0]!r}: no binding has this id{hint}; ids: "
            + ", ".join(sorted(known))
        )
    return {k: str(v) for k, v in data.items()}


def run_tui(data_dir: Path, queue_url: str | None = None, store: str | None = None) -> None:
    """Run the app; a bad keymap file or an unreadable store stops it (an error naming the
    file) before the screen is taken over."""
    app = ScootApp(data_dir, queue_url=queue_url, store=store)
    if app.keymap_path.exists():
        load_keymap(app.keymap_path)
    if app.has_store():
        app.open_store().close()
    app.run()
