"""The experiment editor: tabs Experiment, Roles, Sections, Models, Preview; ctrl+s saves."""

from __future__ import annotations

import asyncio
from copy import deepcopy
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Header, Input, Static, TabbedContent, TabPane, Tabs

from simulator.domain.errors import SpecError
from simulator.domain.models import Experiment, new_id
from simulator.roles import validate_experiment
from simulator.tui.context import services_of, user_of
from simulator.tui.draft import Draft
from simulator.tui.editor.game import GamePane, check_game, is_game
from simulator.tui.editor.general import GeneralPane
from simulator.tui.editor.models import ModelsPane
from simulator.tui.editor.preview import PreviewPane
from simulator.tui.editor.roles import RolesPane
from simulator.tui.editor.sections import SectionsPane
from simulator.tui.messages import DraftChanged
from simulator.tui.screens.base import ReportsWorkerErrors
from simulator.tui.screens.dialogs import ConfirmDialog, MessageDialog
from simulator.tui.widgets.item_list import ItemList
from simulator.words import plural

# (pane id, name); tab n is on key F(n+2), shown in its label, so the footer needs not list them.
TABS = [
    ("tab-experiment", "Experiment"),
    ("tab-roles", "Roles"),
    ("tab-sections", "Sections"),
    ("tab-models", "Models"),
    ("tab-preview", "Preview"),
    ("tab-game", "Game"),  # commons and reputation only: hidden for a dialogue experiment
]
GAME_TAB = "tab-game"
PANES = [GeneralPane, RolesPane, SectionsPane, ModelsPane, PreviewPane, GamePane]


def comparable(exp: Experiment) -> dict[str, Any]:
    """What a save would change (timestamps and bookkeeping left out)."""
    return exp.model_dump(exclude={"created_at", "updated_at", "version", "favourite"})


class EditorScreen(ReportsWorkerErrors, Screen[str | None]):
    """Create or edit an experiment. Dismisses with the id of the last saved version (or None)."""

    HELP_TITLE = "Experiment editor"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+s",
            "save",
            "Save",
            id="editor.save",
            priority=True,
            tooltip="Check and save the experiment",
        ),
        Binding(
            "escape",
            "back",
            "Back",
            id="editor.back",
            tooltip="From a field: back to the tab's list; from a list: back to the library",
        ),
        *(
            Binding(
                f"f{n}",
                f"tab('{pane_id}')",
                f"{name} tab",
                id=f"editor.tab{n - 1}",
                show=False,  # the tab labels show these keys
                priority=True,
                key_display=f"F{n}",
            )
            for n, (pane_id, name) in enumerate(TABS, start=2)
        ),
    ]

    class Saved(Message):
        def __init__(self, experiment: Experiment, text: str) -> None:
            super().__init__()
            self.experiment = experiment
            self.text = text

    def __init__(self, experiment: Experiment | None, *, conversations: int = 0) -> None:
        super().__init__()
        self.draft = Draft.from_experiment(experiment) if experiment else Draft.new()
        self.conversations = conversations
        self.saved_id: str | None = experiment.id if experiment else None
        self._saved_state = self._state()

    def _state(self) -> dict[str, Any] | None:
        try:
            return comparable(self.draft.to_experiment())
        except SpecError:
            return None

    @property
    def dirty(self) -> bool:
        state = self._state()
        return state is None or state != self._saved_state

    @property
    def user(self) -> str:
        return user_of(self.app)

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static("", id="editor-banner", markup=False)
        with TabbedContent(id="editor-tabs"):
            for n, ((pane_id, name), pane) in enumerate(zip(TABS, PANES, strict=True), start=2):
                with TabPane(f"F{n} {name}", id=pane_id):
                    yield pane(self.draft)
        yield Footer()

    def on_mount(self) -> None:
        self._update_banner()
        self._show_game_tab()
        self.query_one("#exp-name", Input).focus()  # the first field, its text selected

    # ------------------------------------------------------------------ the keyboard model

    def home_of(self, pane_id: str | None = None) -> Widget:
        """Where escape goes from a field of a tab: the tab's list (roles, sections, models),
        or the tab bar for a tab without one."""
        tabs = self.query_one(TabbedContent)
        pane = self.query_one(f"#{pane_id or tabs.active}", TabPane)
        lists = pane.query(ItemList)
        return lists.first() if lists else tabs.query_one(Tabs)

    def action_back(self) -> None:
        """escape: one level up. A field goes back to its list (or the tab bar); only a list
        (or the tab bar) leaves the editor, asking first when there are unsaved changes."""
        focused = self.focused
        home = self.home_of()
        if focused is None or focused is home or isinstance(focused, (ItemList, Tabs)):
            self.action_close()
        else:
            home.focus()

    def _show_game_tab(self) -> None:
        tabs = self.query_one(TabbedContent)
        if is_game(self.draft.kind):
            tabs.show_tab(GAME_TAB)
        else:
            tabs.hide_tab(GAME_TAB)

    def _update_banner(self) -> None:
        base = self.draft.base
        if base is None:
            text = (
                "New experiment: name it, then roles F3, sections F4, models F5; "
                "F6 previews; ctrl+s saves"
            )
        else:
            text = f"Editing '{base.name}' v{base.version} by {base.owner or '?'}"
            if base.owner and base.owner != self.user:
                text += " · not yours: saving makes your own copy"
            elif self.conversations:
                text += (
                    f" · {plural(self.conversations, 'conversation')} ran with it: saving "
                    f"creates v{base.version + 1}"
                )
        self.query_one("#editor-banner", Static).update(text)

    # ------------------------------------------------------------------ keeping tabs in step

    @on(DraftChanged)
    def _draft_changed(self, message: DraftChanged) -> None:
        message.stop()
        if isinstance(message.source, (GeneralPane, RolesPane)):
            # The kind decides the Game tab; its form follows the kind (and names the roles).
            self._show_game_tab()
            self.query_one(GamePane).sync()
        if not isinstance(message.source, PreviewPane):
            preview = self.query_one(PreviewPane)
            if self.query_one(TabbedContent).active == "tab-preview":
                preview.sync()

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        tab = event.pane.id if event.pane is not None else None
        panes = {tab_id: pane for (tab_id, _), pane in zip(TABS, PANES, strict=True)}
        pane_type = panes.get(tab or "")
        if pane_type is not None:
            self.query_one(pane_type).sync()  # type: ignore[attr-defined]  # each pane has one

    def action_tab(self, tab: str) -> None:
        if tab == GAME_TAB and not is_game(self.draft.kind):
            self.notify(
                "Dialogue experiments have no game parameters (kind: Experiment tab, F2).",
                severity="warning",
            )
            return
        # Drop focus first: a focused widget in the old tab would pull the tabs back to it. Then
        # focus the new tab's first field at once, not after the next refresh: a key typed right
        # after F-n (enter on the list) must find it focused, not nothing.
        self.set_focus(None)
        self.query_one(TabbedContent).active = tab
        if not self._focus_first(tab):
            self.call_after_refresh(self._focus_first, tab)

    def _focus_first(self, tab: str) -> bool:
        for widget in self.query_one(f"#{tab}", TabPane).query("*"):
            if widget.focusable:
                self.set_focus(widget)
                return True
        return False

    # ------------------------------------------------------------------ save and close

    def action_save(self) -> None:
        try:
            exp = self.draft.to_experiment()
        except SpecError as exc:
            self.app.push_screen(MessageDialog("Cannot save yet", str(exc)))
            return
        issues = validate_experiment(exp)
        if issues:
            self.app.push_screen(
                MessageDialog(
                    "Fix these placeholders first",
                    "\n".join(str(i) for i in issues)
                    + "\n\nThe Sections tab shows each problem under the text it is in.",
                )
            )
            return
        if self.draft.model_problem:
            self.app.push_screen(
                MessageDialog(
                    "Fix the model first",
                    f"{self.draft.model_problem}\n\nThe Models tab (F5) shows the field; the "
                    "value was not applied.",
                )
            )
            return
        if is_game(exp.kind) and self.draft.game_problems:
            self.app.push_screen(
                MessageDialog(
                    "Fix the game parameters first",
                    "\n".join(f"{name}: {text}" for name, text in self.draft.game_problems.items())
                    + "\n\nThe Game tab (F7) shows each problem under its field.",
                )
            )
            return
        base = self.draft.base
        if base is not None and base.owner and base.owner != self.user:

            def confirmed(yes: bool | None) -> None:
                if yes:
                    self._save(exp, as_copy=True)

            self.app.push_screen(
                ConfirmDialog(
                    "Save as your own copy?",
                    f"'{base.name}' belongs to {base.owner}: only its owner can change it. "
                    "Save your changes as a new experiment of yours?",
                    yes="Save copy",
                    no="Cancel",
                ),
                callback=confirmed,
            )
            return
        self._save(exp, as_copy=False)

    @work(exclusive=True, group="editor-save", exit_on_error=False)
    async def _save(self, exp: Experiment, *, as_copy: bool) -> None:
        service = services_of(self.app).experiments
        if is_game(exp.kind):
            # The kind's own loader has the last word (it may import the scenario: a thread).
            try:
                game = await asyncio.to_thread(check_game, exp.kind, exp.game)
            except SpecError as exc:
                self.post_message(
                    self.Refused(
                        "Fix the game parameters first",
                        f"{exc}\n\nThe Game tab (F7) shows each problem under its field.",
                    )
                )
                return
            exp = exp.model_copy(update={"game": game})
        if self.draft.base is None:
            saved = await service.create(exp)
            text = f"Created '{saved.name}'."
        elif as_copy:
            copy = exp.model_copy(
                update={"id": new_id(), "parent_id": exp.id, "owner": "", "favourite": False}
            )
            saved = await service.create(copy)
            text = f"Saved as your own copy '{saved.name}'."
        else:
            saved = await service.save(exp)
            if saved.id != exp.id:
                text = (
                    f"Saved as a new version (v{saved.version}): the "
                    f"{plural(self.conversations, 'stored conversation')} keep"
                    f"{'s' if self.conversations == 1 else ''} the prompts "
                    f"{'it' if self.conversations == 1 else 'they'} ran with."
                )
            else:
                text = f"Saved '{saved.name}'."
        self.post_message(self.Saved(saved, text))

    class Refused(Message):
        """Saving found a problem only the worker could see."""

        def __init__(self, title: str, text: str) -> None:
            super().__init__()
            self.title = title
            self.text = text

    @on(Refused)
    def _refused(self, message: Refused) -> None:
        self.app.push_screen(MessageDialog(message.title, message.text))

    @on(Saved)
    def _saved(self, message: Saved) -> None:
        saved = message.experiment
        self.draft.games[saved.kind] = deepcopy(saved.game)  # as stored (normalised)
        if self.draft.base is None or saved.id != self.draft.base.id:
            self.conversations = 0
        self.draft.base = saved.model_copy(deep=True)
        self.saved_id = saved.id
        self._saved_state = self._state()
        self._update_banner()
        self.notify(message.text, title="Saved", timeout=8)

    def action_close(self) -> None:
        if not self.dirty:
            self.dismiss(self.saved_id)
            return

        def answered(discard: bool | None) -> None:
            if discard:
                self.dismiss(self.saved_id)

        self.app.push_screen(
            ConfirmDialog(
                "Discard changes?",
                "The experiment has unsaved changes. Leave without saving them?",
                yes="Discard",
                no="Stay",
                danger=True,
            ),
            callback=answered,
        )
