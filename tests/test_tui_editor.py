"""The experiment editor through the real app: build a two-role experiment with shared, private
and summarizer sections; see a placeholder error in the preview and fix it; save; find it in the
library. Editing an experiment that has conversations saves a new version; editing someone
else's saves a copy."""

from __future__ import annotations

from typing import Any

from textual.widgets import (
    DataTable,
    Input,
    OptionList,
    Select,
    Static,
    TabbedContent,
    Tabs,
    TextArea,
)

from simulator.domain.models import Conversation, GridCell, ModelSet, SectionKind
from simulator.settings import Settings
from simulator.tui.app import SimulatorApp
from simulator.tui.editor.sections import SectionsPane
from simulator.tui.screens.dialogs import ConfirmDialog, MessageDialog
from simulator.tui.screens.editor import EditorScreen
from simulator.tui.screens.library import LibraryScreen
from tests.plugins.tui import sample_experiment, settle, wait_library, wait_until

#: The editor's key for each tab.
TABS = {
    "f3": "tab-roles",
    "f4": "tab-sections",
    "f5": "tab-models",
    "f6": "tab-preview",
    "f2": "tab-experiment",
}


def text_of(widget: Static) -> str:
    return str(widget.render())


async def choose_section(pilot: Any, screen: EditorScreen, label: str) -> None:
    options = screen.query_one("#section-list", OptionList)
    prompts = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
    options.highlighted = prompts.index(label)
    await wait_until(
        pilot,
        lambda: (
            screen.query_one(SectionsPane).current
            == options.get_option_at_index(prompts.index(label)).id
        ),
        what=f"section {label}",
    )


async def set_text(pilot: Any, area: TextArea, text: str) -> None:
    area.focus()
    area.clear()
    area.insert(text)
    await settle(pilot)


async def test_create_experiment_with_preview_fix_and_save(
    store: Any, tui_settings: Settings
) -> None:
    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        library = await wait_library(pilot)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, EditorScreen), what="editor")
        editor: EditorScreen = app.screen  # type: ignore[assignment]
        await settle(pilot)

        # Tab Experiment: name and a study factor.
        name = editor.query_one("#exp-name", Input)
        name.value = ""
        name.focus()
        await pilot.press(*"Guards")
        await settle(pilot)
        assert editor.draft.name == "Guards"
        await set_text(
            pilot, editor.query_one("#exp-factors", TextArea), "goal = Escape | Yard Time"
        )
        assert [f.name for f in editor.draft.factors()] == ["goal"]

        # Tab Roles: rename the two starting roles to Guard and Prisoner.
        await pilot.press("f3")
        await wait_until(pilot, lambda: editor.query_one(TabbedContent).active == "tab-roles")
        roles = editor.query_one("#role-list", OptionList)
        for index, new in enumerate(["Guard", "Prisoner"]):
            roles.highlighted = index
            await settle(pilot)
            field = editor.query_one("#role-name", Input)
            field.value = new
            field.focus()
            await pilot.press("enter")
            await wait_until(pilot, lambda n=new, i=index: editor.draft.roles[i].name == n)
        assert editor.draft.role_names() == ["Guard", "Prisoner"]

        # Tab Sections: shared, private (per role, titles copied) and the summarizer's.
        await pilot.press("f4")
        await wait_until(pilot, lambda: editor.query_one(TabbedContent).active == "tab-sections")
        await choose_section(pilot, editor, "Shared · Environment")
        await set_text(
            pilot,
            editor.query_one("#sec-content", TextArea),
            "A simulated prison with <AGENTS_NUM> agents.",
        )
        await choose_section(pilot, editor, "Guard · Goal")
        # A typo in a tag: shown under the text at once ...
        await set_text(
            pilot,
            editor.query_one("#sec-content", TextArea),
            "Keep control of the <PRISONER_NOUN>.\nYou are one of <GAURD_NUM> guards.",
        )
        issues = text_of(editor.query_one("#sec-issues", Static))
        assert "<GAURD_NUM>" in issues and "line 2" in issues
        await choose_section(pilot, editor, "Prisoner · Goal")
        await set_text(
            pilot,
            editor.query_one("#sec-content", TextArea),
            "Your goal: <FACTOR:goal>. You face <GUARD_NUM> <GUARD_NOUN>.",
        )
        await choose_section(pilot, editor, "Summ. · (untitled)")
        await set_text(
            pilot,
            editor.query_one("#sec-content", TextArea),
            "Summarise day <DAY> between <GUARD_NOUN> and <PRISONER_NOUN>.",
        )

        # ... and in the preview, which lists it with the closest valid tag.
        await pilot.press("f6")
        await wait_until(pilot, lambda: editor.query_one(TabbedContent).active == "tab-preview")
        await wait_until(
            pilot,
            lambda: "GAURD" in text_of(editor.query_one("#preview-issues", Static)),
            what="the placeholder error in the preview",
        )
        preview_issues = text_of(editor.query_one("#preview-issues", Static))
        assert "Guard section 'Goal', line 2" in preview_issues
        assert "did you mean <guard_num>?" in preview_issues.lower()  # the suggestion
        # The rest of the prompt still renders; the bad tag is marked where it stands.
        shown = editor.query_one("#preview-text", TextArea).text
        assert "You are one of ⚠<GAURD_NUM> guards." in shown
        assert "Keep control of the prisoner." in shown

        # Saving is refused while a placeholder is wrong, saying where.
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, MessageDialog))
        assert "GAURD" in app.screen.message
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is editor)

        # Fix it; the preview renders the guard's prompt for 2 guards and 1 prisoner.
        await pilot.press("f4")
        await wait_until(pilot, lambda: editor.query_one(TabbedContent).active == "tab-sections")
        await choose_section(pilot, editor, "Guard · Goal")
        await set_text(
            pilot,
            editor.query_one("#sec-content", TextArea),
            "Keep control of the <PRISONER_NOUN>.\nYou are one of <GUARD_NUM> guards.",
        )
        assert "⚠" not in text_of(editor.query_one("#sec-issues", Static))
        await pilot.press("f6")
        await wait_until(pilot, lambda: editor.query_one(TabbedContent).active == "tab-preview")
        editor.query_one("#preview-counts", Input).value = "Guard=2, Prisoner=1"
        await wait_until(
            pilot,
            lambda: (
                "No placeholder problems" in text_of(editor.query_one("#preview-issues", Static))
                and "one of 2 guards" in editor.query_one("#preview-text", TextArea).text
            ),
            what="the rendered guard prompt",
        )
        prompt = editor.query_one("#preview-text", TextArea).text
        assert "Keep control of the prisoner." in prompt
        assert "A simulated prison with 3 agents." in prompt
        agent = editor.query_one("#preview-agent", Select)
        agent.value = "Prisoner 1|Prisoner"
        await wait_until(
            pilot,
            lambda: "You face 2 guards." in editor.query_one("#preview-text", TextArea).text,
        )
        assert "Your goal: Escape." in editor.query_one("#preview-text", TextArea).text
        # Every combination of factor levels is on offer, as a batch would run them.
        levels = editor.query_one("#preview-levels", Select)
        assert [str(prompt) for prompt, value in levels._options if isinstance(value, str)] == [
            "goal=Escape",
            "goal=Yard Time",
        ]
        levels.value = "1"
        await wait_until(
            pilot,
            lambda: "Your goal: Yard Time." in editor.query_one("#preview-text", TextArea).text,
        )

        # Save, go back, find it in the library.
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: editor.saved_id is not None, what="saved")
        assert not editor.dirty
        await pilot.press("escape")  # from the Levels field to the tab bar (this tab's "list")
        await wait_until(pilot, lambda: isinstance(editor.focused, Tabs), what="the tab bar")
        await pilot.press("escape")  # and from there to the library
        await wait_until(pilot, lambda: isinstance(app.screen, LibraryScreen))
        await wait_until(pilot, lambda: any(r.experiment.name == "Guards" for r in library.rows))

    stored = await store.experiments.get(editor.saved_id)
    assert stored is not None and stored.owner == "alice"
    assert [r.name for r in stored.roles] == ["Guard", "Prisoner"]
    assert [s.title for s in stored.shared_sections] == ["Environment"]
    assert stored.roles[0].sections[0].kind is SectionKind.private
    assert "<GUARD_NUM>" in stored.roles[0].sections[0].content
    assert stored.summarizer_sections[0].content.startswith("Summarise day <DAY>")
    assert [f.levels for f in stored.factors] == [["Escape", "Yard Time"]]


async def test_section_kind_order_and_role_reorder(store: Any, tui_settings: Settings) -> None:
    await store.experiments.create(sample_experiment())
    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        library = await wait_library(pilot)
        library.query_one("#experiments", DataTable).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, EditorScreen))
        editor: EditorScreen = app.screen  # type: ignore[assignment]
        await pilot.press("f4")
        await wait_until(pilot, lambda: editor.query_one(TabbedContent).active == "tab-sections")
        await choose_section(pilot, editor, "Shared · Environment")
        # Make the shared section private to the prisoner, then move it below the guard's goal.
        editor.query_one("#sec-kind", Select).value = "private"
        await wait_until(pilot, lambda: not editor.draft.shared)
        editor.query_one("#sec-role", Select).value = "Prisoner"
        await wait_until(
            pilot, lambda: "Environment" in [s.title for s in editor.draft.roles[1].sections]
        )
        editor.query_one("#section-list", OptionList).focus()
        await pilot.press("ctrl+down")
        await settle(pilot)
        order = [(s.title, role) for s, role in editor.draft.agent_sections()]
        assert order[:2] == [("Goal", "Guard"), ("Environment", "Prisoner")]
        # Roles: move Prisoner first.
        await pilot.press("f3")
        await wait_until(pilot, lambda: editor.query_one(TabbedContent).active == "tab-roles")
        editor.query_one("#role-list", OptionList).highlighted = 1
        editor.query_one("#role-list", OptionList).focus()
        await pilot.press("ctrl+up")
        await settle(pilot)
        assert editor.draft.role_names() == ["Prisoner", "Guard"]
        assert editor.dirty
        # Leaving with unsaved changes asks first.
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, LibraryScreen))


async def test_editing_an_experiment_with_conversations_saves_a_new_version(
    store: Any, tui_settings: Settings
) -> None:
    exp = await store.experiments.create(sample_experiment())
    await store.conversations.create(
        Conversation(
            experiment_id=exp.id,
            owner="alice",
            cell=GridCell(
                counts={"Guard": 1, "Prisoner": 1}, days=1, total_messages=4, models=ModelSet()
            ),
        )
    )
    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, EditorScreen))
        editor: EditorScreen = app.screen  # type: ignore[assignment]
        assert "saving creates v2" in text_of(editor.query_one("#editor-banner", Static))
        editor.query_one("#exp-note", Input).value = "v2 with a calmer guard"
        await wait_until(pilot, lambda: editor.draft.note == "v2 with a calmer guard")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: editor.saved_id not in (None, exp.id), what="new version")
        notes = [n.message for n in app._notifications]
        assert any(
            "new version (v2)" in m and "1 stored conversation keeps the prompts it ran" in m
            for m in notes
        )
    old = await store.experiments.get(exp.id)
    new = await store.experiments.get(editor.saved_id)
    assert old is not None and old.note == ""
    assert new is not None and new.parent_id == exp.id and new.note == "v2 with a calmer guard"


async def test_editing_someone_elses_experiment_saves_your_copy(
    store: Any, tui_settings: Settings
) -> None:
    exp = await store.experiments.create(sample_experiment(owner="bob"))
    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, EditorScreen))
        editor: EditorScreen = app.screen  # type: ignore[assignment]
        assert "not yours" in text_of(editor.query_one("#editor-banner", Static))
        editor.query_one("#exp-name", Input).value = "My prison"
        # the draft follows the field through its Changed message: save once it has arrived
        await wait_until(pilot, lambda: editor.draft.name == "My prison", what="the new name")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_until(pilot, lambda: editor.saved_id not in (None, exp.id), what="the copy")
    original = await store.experiments.get(exp.id)
    copy = await store.experiments.get(editor.saved_id)
    assert original is not None and original.name == "Prison 1v1" and original.owner == "bob"
    assert copy is not None and copy.owner == "alice" and copy.name == "My prison"
    assert copy.parent_id == exp.id


async def test_models_tab_params_and_unreachable_ollama(store: Any, tui_settings: Settings) -> None:
    await store.experiments.create(sample_experiment())
    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, EditorScreen))
        editor: EditorScreen = app.screen  # type: ignore[assignment]
        await pilot.press("f5")
        await wait_until(pilot, lambda: editor.query_one(TabbedContent).active == "tab-models")
        # Defaults are shown; a bad value is explained and not applied.
        assert editor.query_one("#param-temperature", Input).value == "0.7"
        editor.query_one("#param-temperature", Input).value = "3"
        await settle(pilot)
        assert "temperature" in text_of(editor.query_one("#models-status", Static))
        assert editor.draft.models[0].params.temperature == 0.7
        editor.query_one("#param-temperature", Input).value = "0.2"
        editor.query_one("#param-seed", Input).value = "7"
        await settle(pilot)
        assert editor.draft.models[0].params.temperature == 0.2
        assert editor.draft.models[0].params.seed == 7
        # Add an OpenAI-compatible model with a base URL.
        editor.query_one("#model-list", OptionList).focus()
        await pilot.press("plus")
        await settle(pilot)
        editor.query_one("#model-provider", Select).value = "openai"
        editor.query_one("#model-name", Input).value = "qwen2.5"
        editor.query_one("#model-url", Input).value = "http://127.0.0.1:8000/v1"
        await settle(pilot)
        ref = editor.draft.models[1]
        assert (ref.provider.value, ref.model, ref.base_url) == (
            "openai",
            "qwen2.5",
            "http://127.0.0.1:8000/v1",
        )
        # Ollama is not running (closed port): listing says so, nothing hangs or crashes.
        editor.query_one("#model-url", Input).value = ""
        await settle(pilot)
        editor.query_one("#model-provider", Select).value = "ollama"
        await wait_until(
            pilot,
            lambda: "⚠" in text_of(editor.query_one("#models-status", Static)),
            what="the Ollama error",
        )
        assert "127.0.0.1:9" in text_of(editor.query_one("#models-status", Static))


async def test_opening_every_tab_and_saving_changes_nothing(
    store: Any, tui_settings: Settings
) -> None:
    """Widgets post Changed with their initial values when they mount; none may reach the
    draft (a section's kind, a factor's variants, a role's gender, a model's provider)."""
    from simulator.engine.spec import load_example
    from simulator.tui.screens.editor import comparable

    example = load_example("prison_study").model_copy(update={"owner": "alice"})
    exp = await store.experiments.create(example)
    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, EditorScreen))
        editor: EditorScreen = app.screen  # type: ignore[assignment]
        tabs = editor.query_one(TabbedContent)
        for key, tab in TABS.items():
            await pilot.press(key)
            await wait_until(pilot, lambda tab=tab: tabs.active == tab, what=tab)
            await settle(pilot)
        # Walk through every section of the list too.
        await pilot.press("f4")
        await wait_until(pilot, lambda: tabs.active == "tab-sections", what="the sections")
        await settle(pilot)
        sections = editor.query_one("#section-list", OptionList)
        for index in range(sections.option_count):
            sections.highlighted = index
            await settle(pilot)
        assert not editor.dirty
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: any("Saved" in (n.title or "") for n in app._notifications))
    stored = await store.experiments.get(exp.id)
    assert stored is not None
    assert comparable(stored) == comparable(exp)


async def test_keyboard_help_palette_and_quit_guard(store: Any, tui_settings: Settings) -> None:
    """F1 shows the keys even from a text field (where ? is typed), the screen's keys first; enter
    on a section edits its text; the palette lists the editor's actions; removing a section with
    text asks; ctrl+q asks before dropping unsaved changes."""
    from simulator.tui.screens.dialogs import HelpScreen

    await store.experiments.create(sample_experiment())
    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, EditorScreen))
        editor: EditorScreen = app.screen  # type: ignore[assignment]
        await pilot.press("f4")
        await wait_until(pilot, lambda: editor.query_one(TabbedContent).active == "tab-sections")
        await wait_until(pilot, lambda: editor.focused is editor.query_one("#section-list"))
        await pilot.press("enter")
        assert editor.focused is editor.query_one("#sec-content", TextArea)
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        actions = [text for _, text in app.screen.rows]
        assert actions[:2] == ["Save", "Back"]  # the screen's own keys first ...
        assert "Sections tab" in actions and "Help" in actions
        assert "?" not in editor.query_one("#sec-content", TextArea).text
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is editor)
        # The sections pane's own actions are in the palette once the list has the focus.
        editor.query_one("#section-list", OptionList).focus()
        await settle(pilot)
        commands = [c.title for c in app.get_system_commands(editor)]
        assert {"Save", "Back", "Add", "Remove", "Move", "Edit"} <= set(commands)
        assert commands.count("Quit") == 1

        # Removing a section with text asks first; an empty one goes at once.
        await choose_section(pilot, editor, "Guard · Goal")
        editor.query_one("#section-list", OptionList).focus()
        await pilot.press("delete")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")
        await wait_until(pilot, lambda: app.screen is editor)
        assert [s.title for s in editor.draft.roles[0].sections] == ["Goal"]
        await pilot.press("plus")
        await wait_until(pilot, lambda: len(editor.draft.roles[0].sections) == 2)
        editor.query_one("#section-list", OptionList).focus()
        await pilot.press("delete")
        await wait_until(pilot, lambda: len(editor.draft.roles[0].sections) == 1)
        assert app.screen is editor and not editor.dirty

        # Quitting with unsaved changes asks; "n" stays, "y" quits.
        await pilot.press("plus")
        await wait_until(pilot, lambda: editor.dirty)
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert "unsaved changes" in app.screen.message
        await pilot.press("n")
        await wait_until(pilot, lambda: app.screen is editor)
        assert app.is_running
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.is_running, what="the app to exit")


async def test_models_tab_lists_and_pulls_from_a_running_ollama(
    store: Any, tui_settings: Settings, ollama_server: Any
) -> None:
    """Against Ollama's HTTP API (a local fake server): the installed models are listed to pick
    from; a missing one is pulled with a progress bar and then listed."""
    from textual.widgets import ProgressBar

    await store.experiments.create(sample_experiment())
    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, EditorScreen))
        editor: EditorScreen = app.screen  # type: ignore[assignment]
        await pilot.press("f5")
        await wait_until(pilot, lambda: editor.query_one(TabbedContent).active == "tab-models")
        status = editor.query_one("#models-status", Static)
        installed = editor.query_one("#model-installed", Select)

        def offered() -> list[str]:
            return [value for _, value in installed._options if isinstance(value, str)]

        editor.query_one("#model-url", Input).value = ollama_server.url
        editor.query_one("#model-provider", Select).value = "ollama"  # lists at once
        await wait_until(pilot, lambda: offered() == ["llama3.2:1b"], what="the installed list")
        assert "1 model installed" in text_of(status)
        installed.value = "llama3.2:1b"
        await wait_until(pilot, lambda: editor.draft.models[0].model == "llama3.2:1b")
        ref = editor.draft.models[0]
        assert (ref.provider.value, ref.base_url) == ("ollama", ollama_server.url)

        editor.query_one("#model-name", Input).value = "qwen2:0.5b"
        editor.query_one("#model-list", OptionList).focus()
        await pilot.press("ctrl+o")
        await wait_until(
            pilot,
            lambda: "qwen2:0.5b is ready" in text_of(status) and "2 models" in text_of(status),
            what="the pull to finish",
        )
        bar = editor.query_one("#pull-progress", ProgressBar)
        assert (bar.total, bar.progress) == (1000, 1000)  # fed by the pull's progress
        await wait_until(pilot, lambda: "qwen2:0.5b" in offered(), what="the new model listed")


async def test_a_refused_parameter_is_explained_and_blocks_saving(
    store: Any, tui_settings: Settings
) -> None:
    """num_ctx 99999999999 was accepted: the form shows the model's own refusal (its bound, in
    the domain's words) and saving waits until the value is fixed."""
    from pydantic import ValidationError

    from simulator.domain.models import SamplingParams
    from simulator.tui.draft import describe_validation_error

    refused = "10"  # below the domain's lower bound for num_ctx
    for value in ("99999999999", refused):
        try:
            SamplingParams(num_ctx=int(value))
        except ValidationError as exc:
            refused, expected = value, describe_validation_error(exc)
            break
    exp = await store.experiments.create(sample_experiment())
    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, EditorScreen))
        editor: EditorScreen = app.screen  # type: ignore[assignment]
        await pilot.press("f5")
        await wait_until(pilot, lambda: editor.query_one(TabbedContent).active == "tab-models")
        field = editor.query_one("#param-num_ctx", Input)
        field.focus()
        field.value = refused
        await pilot.press("enter")
        status = editor.query_one("#models-status", Static)
        await wait_until(pilot, lambda: expected in text_of(status), what="the domain's message")
        assert "not applied" in text_of(status)
        assert editor.focused is field  # enter keeps a refused value's field, to fix it
        assert editor.draft.models[0].params.num_ctx == 8192
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, MessageDialog), what="refusal")
        assert app.screen.title_text == "Fix the model first" and expected in app.screen.message
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is editor)
        field.value = "4096"
        await pilot.press("enter")
        await wait_until(pilot, lambda: editor.draft.models[0].params.num_ctx == 4096)
        await wait_until(pilot, lambda: editor.focused is editor.query_one("#model-list"))
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not editor.dirty, what="saved")
    stored = await store.experiments.get(exp.id)
    assert stored is not None and stored.models[0].params.num_ctx == 4096


async def test_drop_downs_offer_no_blank_entry(store: Any, tui_settings: Settings) -> None:
    """The preview's Show list began with a blank "-" entry that showed nothing (so did the
    Levels list, and a private section's Role list)."""
    await store.experiments.create(sample_experiment())
    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, EditorScreen))
        editor: EditorScreen = app.screen  # type: ignore[assignment]
        await pilot.press("f6")
        agent = editor.query_one("#preview-agent", Select)
        await wait_until(pilot, lambda: len(agent._options) > 2, what="the agents to show")
        for selector in ("#preview-agent", "#preview-levels"):
            values = [value for _, value in editor.query_one(selector, Select)._options]
            assert Select.BLANK not in values, selector
        assert [str(label) for label, _ in agent._options] == [
            "Guard 1 (Guard)",
            "Prisoner 1 (Prisoner)",
            "Summarizer",
            "Starting message",
        ]
        await pilot.press("f4")
        await wait_until(pilot, lambda: editor.query_one(TabbedContent).active == "tab-sections")
        await choose_section(pilot, editor, "Guard · Goal")
        role = editor.query_one("#sec-role", Select)
        await wait_until(pilot, lambda: role.value == "Guard", what="the section's role")
        assert [value for _, value in role._options] == ["Guard", "Prisoner"]
