"""The list of an editor tab (roles, sections, models) and the text editor of its form.

One keyboard model in every tab: the list acts only on its own keys, none of them a letter, so
text typed into the list by mistake changes nothing (typing "a" once added a section per "a");
``enter`` edits the highlighted item in the form, ``escape`` in the form comes back to the list
(``EditorScreen.action_back``), and only ``escape`` on the list leaves the editor.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from textual import events
from textual.binding import Binding, BindingType
from textual.widgets import Button, OptionList, TextArea


class ListOwner(Protocol):
    """The pane whose items the list shows: it adds and removes them (and may have an
    ``action_move(delta)`` to reorder them)."""

    def action_add(self) -> None: ...
    def action_remove(self) -> None: ...


class ItemList(OptionList):
    """An editor tab's list: ``+`` adds, ``delete`` removes, ``ctrl+↑``/``ctrl+↓`` move the
    highlighted item, ``enter`` edits it; nothing else (a typed letter only says so, once)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "Edit", id="list.edit", key_display="⏎"),
        Binding("plus,insert", "add", "Add", id="list.add", key_display="+"),
        Binding("delete", "remove", "Remove", id="list.remove", key_display="del"),
        Binding("ctrl+up", "move(-1)", "Move", id="list.up", key_display="ctrl+↑↓"),
        Binding("ctrl+down", "move(1)", "Move down", id="list.down", show=False),
    ]

    def __init__(self, owner: ListOwner, noun: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.owner = owner
        self.noun = noun  # "role", "section", "model": for the hint
        self._hinted = False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # A list whose items keep no order (the models) has no "move": not shown, not run.
        if action == "move":
            return hasattr(self.owner, "action_move")
        return True

    def action_add(self) -> None:
        self.owner.action_add()

    def action_remove(self) -> None:
        self.owner.action_remove()

    def action_move(self, delta: int) -> None:
        self.owner.action_move(delta)  # type: ignore[attr-defined]  # check_action: it has one

    def on_focus(self) -> None:
        self._hinted = False

    def on_key(self, event: events.Key) -> None:
        # A letter here is most likely text meant for a field: it does nothing, and says why.
        if not event.is_printable or self._hinted or event.key in self.screen.active_bindings:
            return
        self._hinted = True
        self.notify(
            f"This is the list of {self.noun}s: enter edits the highlighted {self.noun}, "
            f"+ adds one, escape leaves the editor.",
            title="Typing goes nowhere here",
            timeout=6,
        )


class EditorTextArea(TextArea):
    """A multi-line text field: ``ctrl+a`` selects all (Textual's own key for it, F7, is the
    editor's Game tab; its ``ctrl+a`` went to the start of the line, as ``home`` does)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+a", "select_all", "Select all", id="text.select_all", show=False),
    ]


def side_button(label: str, button_id: str) -> Button:
    """A button under a list, for the mouse: tab never lands on it (an ``enter`` meant for a
    field once reordered the roles silently), the list's keys do the same."""
    button = Button(label, id=button_id, compact=True)
    button.can_focus = False
    return button
