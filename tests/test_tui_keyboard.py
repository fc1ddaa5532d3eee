"""The editor's keyboard model, pressed key by key as a researcher would (docs/tui.md, "Keys in
the editor"): escape goes one level up (a field to its list, a list out of the editor); a list
acts only on its own keys, none of them a letter; after an edit the next key is the list's
again; reordering takes an explicit key; a new experiment opens in its first field."""

from __future__ import annotations

from typing import Any

from textual.widgets import Button, Input, Select, TabbedContent, Tabs, TextArea

from simulator.settings import Settings
from simulator.tui.app import SimulatorApp
from simulator.tui.screens.dialogs import ConfirmDialog
from simulator.tui.screens.editor import EditorScreen
from simulator.tui.screens.library import LibraryScreen
from simulator.tui.widgets.item_list import ItemList
from tests.plugins.tui import sample_experiment, wait_library, wait_until


async def open_editor(pilot: Any, key: str = "o") -> EditorScreen:
    app = pilot.app
    await wait_library(pilot)
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(app.screen, EditorScreen), what="the editor")
    editor: EditorScreen = app.screen
    await wait_until(pilot, lambda: editor.focused is not None, what="a focused field")
    return editor


async def go_to_tab(pilot: Any, editor: EditorScreen, key: str, tab: str, focus: str) -> None:
    await pilot.press(key)
    await wait_until(
        pilot,
        lambda: (
            editor.query_one(TabbedContent).active == tab
            and editor.focused is editor.query_one(focus)
        ),
        what=f"{tab} with {focus} focused",
    )


def app_for(store: Any, settings: Settings) -> SimulatorApp:
    return SimulatorApp(settings, store=store, user="alice", offer_example=False)


async def test_escape_from_a_sections_text_returns_to_the_list(
    store: Any, tui_settings: Settings
) -> None:
    """Escape in a section's text once offered to discard the whole experiment (one was lost)."""
    await store.experiments.create(sample_experiment())
    app = app_for(store, tui_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = await open_editor(pilot)
        await go_to_tab(pilot, editor, "f4", "tab-sections", "#section-list")
        await pilot.press("enter")
        text = editor.query_one("#sec-content", TextArea)
        await wait_until(pilot, lambda: editor.focused is text, what="the section's text")
        await pilot.press("end", *" Hold the line.")
        await wait_until(pilot, lambda: editor.dirty)
        await pilot.press("escape")
        await wait_until(
            pilot, lambda: editor.focused is editor.query_one("#section-list"), what="the list"
        )
        assert app.screen is editor  # no "Discard changes?"
        assert "Hold the line." in text.text
        # Only from the list does escape leave the editor (asking, as there are changes).
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="discard?")
        assert app.screen.title_text == "Discard changes?"
        await pilot.press("n")
        await wait_until(pilot, lambda: app.screen is editor)

        # The same from every field of every tab with a list: back to that tab's list.
        for key, tab, list_id, field_id in [
            ("f3", "tab-roles", "#role-list", "#role-gender"),
            ("f4", "tab-sections", "#section-list", "#sec-title"),
            ("f5", "tab-models", "#model-list", "#param-num_ctx"),
        ]:
            await go_to_tab(pilot, editor, key, tab, list_id)
            editor.query_one(field_id).focus()
            await pilot.press("escape")
            await wait_until(
                pilot, lambda lid=list_id: editor.focused is editor.query_one(lid), what=list_id
            )
            assert app.screen is editor
        # A tab without a list: a field goes back to the tab bar, and the bar leaves.
        await go_to_tab(pilot, editor, "f2", "tab-experiment", "#exp-name")
        editor.query_one("#exp-start", TextArea).focus()
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(editor.focused, Tabs), what="the tab bar")
        assert app.screen is editor
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="discard?")
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, LibraryScreen), what="library")


async def test_letters_typed_in_a_list_add_nothing(store: Any, tui_settings: Settings) -> None:
    """Typing "a" into the sections list once added a section per "a" (nine of them)."""
    exp = await store.experiments.create(sample_experiment())
    app = app_for(store, tui_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = await open_editor(pilot)
        prose = "a guard and a prisoner talk. x marks the spot; please add another one"
        for key, tab, list_id in [
            ("f3", "tab-roles", "#role-list"),
            ("f4", "tab-sections", "#section-list"),
            ("f5", "tab-models", "#model-list"),
        ]:
            await go_to_tab(pilot, editor, key, tab, list_id)
            await pilot.press(*prose)
            await wait_until(
                pilot,
                lambda: any(n.title == "Typing goes nowhere here" for n in app._notifications),
                what="the hint",
            )
            # ... and from the form's widgets that take no text (a drop-down, the buttons).
            for select in editor.query_one(f"#{tab}").query(Select):
                if not select.disabled:
                    select.focus()
                    await pilot.press(*"ax")
            await pilot.pause()
        assert app.screen is editor
        assert not editor.dirty
        assert [r.name for r in editor.draft.roles] == [r.name for r in exp.roles]
        assert len(editor.draft.all_sections()) == 4
        assert len(editor.draft.models) == 1

        # The lists' own keys do act: + adds, delete removes.
        await go_to_tab(pilot, editor, "f4", "tab-sections", "#section-list")
        await pilot.press("plus")
        await wait_until(pilot, lambda: len(editor.draft.all_sections()) == 5, what="added")
        await wait_until(pilot, lambda: editor.focused is editor.query_one("#sec-title", Input))
        await pilot.press(*"Rules", "enter")  # the title; enter goes back to the list
        await wait_until(
            pilot, lambda: editor.focused is editor.query_one("#section-list"), what="the list"
        )
        assert any(sec.title == "Rules" for sec, _ in editor.draft.all_sections())
        await pilot.press("delete")  # an empty section goes at once
        await wait_until(pilot, lambda: len(editor.draft.all_sections()) == 4, what="removed")


async def test_focus_returns_to_the_list_after_a_rename(store: Any, tui_settings: Settings) -> None:
    """After a rename the focus stayed in Name, so the next name typed was appended
    ("TeacherStudent")."""
    await store.experiments.create(sample_experiment())
    app = app_for(store, tui_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = await open_editor(pilot)
        await go_to_tab(pilot, editor, "f3", "tab-roles", "#role-list")
        name = editor.query_one("#role-name", Input)
        for index, new in enumerate(["Teacher", "Student"]):
            await pilot.press("enter")  # edit the highlighted role's name, its text selected
            await wait_until(pilot, lambda: editor.focused is name, what="the name field")
            await pilot.press(*new, "enter")
            await wait_until(
                pilot,
                lambda: editor.focused is editor.query_one("#role-list"),
                what="the list again",
            )
            assert editor.draft.roles[index].name == new
            await pilot.press("down")
        assert editor.draft.role_names() == ["Teacher", "Student"]


async def test_reordering_takes_an_explicit_key(store: Any, tui_settings: Settings) -> None:
    """shift+tab landed on the ↑ button and enter silently reordered the roles."""
    await store.experiments.create(sample_experiment())
    app = app_for(store, tui_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = await open_editor(pilot)
        await go_to_tab(pilot, editor, "f3", "tab-roles", "#role-list")
        buttons = set(editor.query_one("#tab-roles").query(Button))
        assert buttons and not buttons & set(editor.focus_chain)  # tab never lands on them
        editor.query_one("#role-gender", Select).focus()
        for _ in range(len(editor.focus_chain)):  # once round the whole screen
            await pilot.press("shift+tab")
            assert not isinstance(editor.focused, Button)
        assert editor.draft.role_names() == ["Guard", "Prisoner"]
        editor.query_one("#role-list", ItemList).focus()
        await pilot.press("ctrl+down")  # the explicit key moves the highlighted role
        await wait_until(pilot, lambda: editor.draft.role_names() == ["Prisoner", "Guard"])
        assert editor.query_one("#role-list", ItemList).highlighted == 1  # it follows the role
        # The models keep no order: their list offers no move key (pressing it did nothing).
        await go_to_tab(pilot, editor, "f5", "tab-models", "#model-list")
        assert "ctrl+up" not in editor.active_bindings
        assert "plus" in editor.active_bindings


async def test_a_new_experiment_opens_in_its_first_field(
    store: Any, tui_settings: Settings
) -> None:
    app = app_for(store, tui_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = await open_editor(pilot, "n")
        name = editor.query_one("#exp-name", Input)
        await wait_until(pilot, lambda: editor.focused is name, what="the name field")
        await pilot.press(*"Classroom")  # the placeholder name is selected: typing replaces it
        await wait_until(pilot, lambda: editor.draft.name == "Classroom")


async def test_ctrl_a_selects_all_of_a_text(store: Any, tui_settings: Settings) -> None:
    """Select-all was on F7 only, which the editor's Game tab takes."""
    await store.experiments.create(sample_experiment())
    app = app_for(store, tui_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = await open_editor(pilot)
        await go_to_tab(pilot, editor, "f4", "tab-sections", "#section-list")
        await pilot.press("enter")
        text = editor.query_one("#sec-content", TextArea)
        await wait_until(pilot, lambda: editor.focused is text)
        before = text.text
        await pilot.press("ctrl+a")
        await wait_until(pilot, lambda: text.selected_text == before, what="all selected")
        await pilot.press(*"Replaced.")
        await wait_until(pilot, lambda: text.text == "Replaced.")


async def test_escape_from_a_batchs_transcript_returns_to_its_table(
    store: Any, runs_app: Any
) -> None:
    """One key from a detail back to its list in the run monitor too (as in the browser)."""
    from simulator.domain import BatchSpec, ModelSet
    from simulator.tui.runs import runs_of
    from simulator.tui.screens.batches import BatchListScreen
    from simulator.tui.widgets.transcript import TranscriptView
    from tests.plugins.tui_runs import runs_experiment, wait_batch

    exp = await store.experiments.create(runs_experiment())
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        library = await wait_library(pilot)
        registry = runs_of(app)
        spec = BatchSpec(
            experiment_id=exp.id, total_messages=2, model_sets=[ModelSet(default=exp.models[0])]
        )
        batch = await registry.create(exp, spec)
        registry.run(batch.id)
        await wait_batch(pilot, batch.id)
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, BatchListScreen))
        batches = app.screen
        await wait_until(pilot, lambda: batches.loads >= 1, what="the list of batches")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is not batches, what="the batch")
        monitor = app.screen
        table = monitor.query_one("#monitor-conversations")
        await wait_until(pilot, lambda: monitor.focused is table, what="the table")
        await pilot.press("tab")
        await wait_until(pilot, lambda: isinstance(monitor.focused, TranscriptView))
        await pilot.press("escape")
        await wait_until(pilot, lambda: monitor.focused is table, what="the table again")
        assert app.screen is monitor
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is batches, what="the list of batches")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is library, what="the library")
