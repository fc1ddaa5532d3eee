"""Editor tab "Roles": add, rename, remove, reorder roles (guard, prisoner, ...)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from simulator.domain.errors import SpecError
from simulator.domain.models import Gender
from simulator.tui.draft import Draft
from simulator.tui.messages import DraftChanged
from simulator.tui.screens.dialogs import ConfirmDialog, TextPrompt
from simulator.tui.widgets.item_list import ItemList, side_button
from simulator.words import plural


class RolesPane(Horizontal):
    def __init__(self, draft: Draft) -> None:
        super().__init__(id="roles-pane")
        self.draft = draft

    def compose(self) -> ComposeResult:
        with Vertical(classes="side"):
            yield ItemList(self, "role", id="role-list")
            with Horizontal(classes="side-buttons"):
                yield side_button("+ Add", "role-add")
                yield side_button("Remove", "role-remove")
                yield side_button("↑", "role-up")
                yield side_button("↓", "role-down")
        with Vertical(classes="form"):
            with Horizontal(classes="form-row"):
                yield Label("Name", classes="field-label")
                yield Input(id="role-name", compact=True, placeholder="press enter to rename")
            with Horizontal(classes="form-row"):
                yield Label("Gender", classes="field-label")
                yield Select(
                    [(g.value, g.value) for g in Gender],
                    allow_blank=False,
                    id="role-gender",
                    compact=True,
                )
            yield Static("", id="role-info", classes="hint", markup=False)
            yield Static(
                "Roles speak in this order (round robin starts with the first). Each role has "
                "its own private sections (tab Sections). Placeholders such as <GUARD_NOUN> "
                "name roles: after a rename, the Preview tab lists the ones to update.\n"
                "In the list: + add · del remove · ctrl+↑/↓ reorder · enter rename (enter again "
                "applies it, escape comes back)",
                classes="hint",
            )

    def on_mount(self) -> None:
        self.sync()

    def selected_index(self) -> int | None:
        index = self.query_one("#role-list", OptionList).highlighted
        if index is None or not 0 <= index < len(self.draft.roles):
            return None
        return index

    def sync(self, select: int | None = None) -> None:
        options = self.query_one("#role-list", OptionList)
        keep = select if select is not None else options.highlighted
        options.clear_options()
        for i, role in enumerate(self.draft.roles):
            options.add_option(Option(f"{i + 1}. {role.name}", id=f"role-{i}"))
        if self.draft.roles:
            options.highlighted = min(keep or 0, len(self.draft.roles) - 1)
        self._show_selected()

    def _show_selected(self) -> None:
        index = self.selected_index()
        name = self.query_one("#role-name", Input)
        gender = self.query_one("#role-gender", Select)
        info = self.query_one("#role-info", Static)
        with name.prevent(Input.Changed), gender.prevent(Select.Changed):
            if index is None:
                name.value = ""
                info.update("No roles yet: + (in the list) adds one, for example Guard.")
                return
            role = self.draft.roles[index]
            name.value = role.name
            gender.value = role.gender.value
            titles = ", ".join(s.title or "(untitled)" for s in role.sections) or "none"
            info.update(f"Private sections of {role.name}: {titles}")

    @on(OptionList.OptionHighlighted, "#role-list")
    def _highlighted(self) -> None:
        self._show_selected()

    @on(OptionList.OptionSelected, "#role-list")
    def _edit_selected(self) -> None:
        self.query_one("#role-name", Input).focus()  # enter on a role: rename it

    @on(Input.Submitted, "#role-name")
    def _rename(self, event: Input.Submitted) -> None:
        index = self.selected_index()
        if index is None:
            return
        try:
            old = self.draft.rename_role(index, event.value)
        except SpecError as exc:
            self.notify(str(exc), title="Cannot rename", severity="error")
            return
        new = self.draft.roles[index].name
        if old != new:
            self.notify(f"Renamed {old} to {new}.")
            self.sync(index)
            self.post_message(DraftChanged(self))
        self.query_one("#role-list", ItemList).focus()  # the next key is for the list again

    @on(Select.Changed, "#role-gender")
    def _gender(self) -> None:
        # The select's current value, not the event's: a mount-time Changed must not count.
        value = self.query_one("#role-gender", Select).value
        index = self.selected_index()
        if index is None or not isinstance(value, str):
            return
        role = self.draft.roles[index]
        if role.gender.value == value:
            return
        self.draft.roles[index] = role.model_copy(update={"gender": Gender(value)})
        self.post_message(DraftChanged(self))

    @on(Button.Pressed, "#role-add")
    def action_add(self) -> None:
        def entered(name: str | None) -> None:
            if not name or not name.strip():
                return
            try:
                self.draft.add_role(name)
            except SpecError as exc:
                self.notify(str(exc), title="Cannot add the role", severity="error")
                return
            self.sync(len(self.draft.roles) - 1)
            self.post_message(DraftChanged(self))
            self.query_one("#role-list", ItemList).focus()

        self.app.push_screen(
            TextPrompt(
                "Name of the new role",
                placeholder="for example Guard",
                hint="It gets empty private sections with the titles of the first role's.",
            ),
            callback=entered,
        )

    @on(Button.Pressed, "#role-remove")
    def action_remove(self) -> None:
        index = self.selected_index()
        if index is None:
            return
        role = self.draft.roles[index]

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.draft.remove_role(index)
                self.sync(max(index - 1, 0))
                self.post_message(DraftChanged(self))

        self.app.push_screen(
            ConfirmDialog(
                "Remove role?",
                f"Remove {role.name} and its {plural(len(role.sections), 'private section')}?",
                yes="Remove",
                no="Keep",
                danger=True,
            ),
            callback=confirmed,
        )

    @on(Button.Pressed, "#role-up")
    def _up(self) -> None:
        self.action_move(-1)

    @on(Button.Pressed, "#role-down")
    def _down(self) -> None:
        self.action_move(1)

    def action_move(self, delta: int) -> None:
        index = self.selected_index()
        if index is None:
            return
        target = self.draft.move_role(index, delta)
        if target != index:
            self.sync(target)
            self.post_message(DraftChanged(self))
