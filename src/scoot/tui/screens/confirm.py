"""A yes/no question before a command that stops engines (cancel, pause now)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static


class ConfirmScreen(ModalScreen[bool]):
    """Dismissed with True on ``y`` only: keys typed ahead over a slow link (``c`` meant for
    a filter box) stop at the question instead of cancelling a study."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes", tooltip="yes, do it"),
        Binding("n", "answer(False)", "No", id="confirm.no", tooltip="no, do nothing"),
        Binding("escape", "answer(False)", "No", id="confirm.escape", show=False, tooltip="no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.question, id="question", markup=False)
            yield Static("y: yes   n / escape: no", classes="title")
        yield Footer()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
