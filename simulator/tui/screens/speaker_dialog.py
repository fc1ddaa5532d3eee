"""Manual speaker selection: who speaks next in a running conversation (a modal dialog).

The batch waits while the dialog is open. Choosing a name (a button, its number key, or enter
on the highlighted one) lets the conversation go on; escape cancels the whole batch, which can be
resumed later from this very turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from simulator.tui.screens.library import clip

MAX_NUMBERED = 9


@dataclass
class SpeakerQuestion:
    conversation_id: str
    label: str  # "#2 1v2, 2 days"
    day: int
    turn: int
    candidates: list[str]
    recent: list[tuple[str, str]] = field(default_factory=list)  # (speaker, content), oldest first


class SpeakerDialog(ModalScreen[str | None]):
    """Dismisses with the chosen agent's name, or None to cancel the batch."""

    HELP_TITLE = "Who speaks next?"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel_batch", "Cancel the batch", id="speaker.cancel"),
        *[
            Binding(str(n), f"pick({n})", f"Agent {n}", id=f"speaker.pick{n}", show=False)
            for n in range(1, MAX_NUMBERED + 1)
        ],
    ]

    CSS_PATH = "speaker_dialog.tcss"

    def __init__(self, question: SpeakerQuestion) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        q = self.question
        where = f"day {q.day}, turn {q.turn}" if q.day else "next turn"
        with Vertical(classes="dialog"):
            yield Static("Who speaks next?", classes="dialog-title")
            yield Static(f"Conversation {q.label} · {where}", classes="hint", markup=False)
            if q.recent:
                lines = "\n".join(f"{who}: {clip(text, 200)}" for who, text in q.recent)
                yield Static(lines, id="speaker-recent", markup=False)
            with VerticalScroll(id="speaker-choices"):
                for n, name in enumerate(q.candidates, start=1):
                    key = f"{n}. " if n <= MAX_NUMBERED else ""
                    yield Button(f"{key}{name}", id=f"speaker-{n}", compact=True)
            with Horizontal(classes="buttons"):
                yield Button("Cancel batch (esc)", id="speaker-cancel", variant="error")

    def on_mount(self) -> None:
        self.query_one("#speaker-1", Button).focus()

    def action_pick(self, number: int) -> None:
        if 1 <= number <= len(self.question.candidates):
            self.dismiss(self.question.candidates[number - 1])

    def action_cancel_batch(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        button_id = event.button.id or ""
        if button_id == "speaker-cancel":
            self.dismiss(None)
        elif button_id.startswith("speaker-"):
            self.action_pick(int(button_id.removeprefix("speaker-")))
