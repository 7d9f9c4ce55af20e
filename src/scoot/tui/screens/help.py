"""``?``: every key of the screen below, as bound now (after ``keys.toml``), in words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Static


@dataclass(frozen=True)
class KeyRow:
    """One binding as the help and the palette show it."""

    keys: str
    """The keys bound now, after ``keys.toml`` (several joined by spaces)."""
    name: str
    what: str
    """What it does, in words."""
    ident: str
    action: str


def key_rows(screen: Screen[object]) -> list[KeyRow]:
    """Every binding of ``screen`` and of the app, keyed as the keymap left them, in
    declaration order; a binding bound to several keys lists them together. The focused
    widget's own keys (a table's cursor keys) are Textual's, not SCOOT's, and stay out.
    (Textual applies the keymap to copies of each node's bindings: so do we.)"""
    rows: dict[str, KeyRow] = {}
    for node in (screen, screen.app):
        remapped = node._bindings.copy()
        if screen.app._keymap:
            remapped.apply_keymap(screen.app._keymap)
        for key, bindings in remapped.key_to_bindings.items():
            for b in bindings:
                if not b.description and not b.tooltip:
                    continue
                ident = b.id or b.action
                shown = screen.app.get_key_display(Binding(key, b.action))
                old = rows.get(ident)
                keys = f"{old.keys} {shown}" if old else shown
                rows[ident] = KeyRow(
                    keys, b.description, b.tooltip or b.description, ident, b.action
                )
    return list(rows.values())


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="help.close", tooltip="close the help"),
    ]

    def __init__(self, rows: list[KeyRow], where: str) -> None:
        super().__init__()
        self.rows = rows
        self.where = where

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(
                f"keys on the {self.where} (remap them in keys.toml by id)", classes="title"
            )
            yield DataTable(id="help-keys", show_cursor=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#help-keys", DataTable)
        table.add_columns("key", "what it does", "id")
        for row in self.rows:
            table.add_row(row.keys, row.what, row.ident)
