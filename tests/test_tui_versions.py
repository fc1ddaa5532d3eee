"""Versions in the app: the library shows each experiment's version and dims the ones a newer
version supersedes; after saving, the cursor is on what was saved, so ``b`` sets up a batch of
it; batch setup on an older version says so and offers the latest."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from textual.widgets import DataTable, Input, Select, Static

from simulator.domain.models import Conversation, GridCell, ModelRef, ModelSet, Provider
from simulator.services.experiments import latest_versions
from simulator.settings import Settings
from simulator.tui.app import SimulatorApp
from simulator.tui.screens.batch_setup import BatchSetupScreen
from simulator.tui.screens.dialogs import ConfirmDialog
from simulator.tui.screens.editor import EditorScreen
from simulator.tui.screens.library import LibraryScreen
from tests.plugins.tui import FIXED_TIME, sample_experiment, wait_library, wait_until


def test_latest_versions_follow_saves_not_copies() -> None:
    v1 = sample_experiment("Prison", experiment_id="1" * 32)
    v2 = sample_experiment("Prison", experiment_id="2" * 32).model_copy(
        update={"version": 2, "parent_id": v1.id, "created_at": FIXED_TIME + timedelta(days=1)}
    )
    v3 = v2.model_copy(update={"id": "3" * 32, "version": 3, "parent_id": v2.id})
    duplicate = v1.model_copy(update={"id": "d" * 32, "version": 1, "parent_id": v1.id})
    theirs = v1.model_copy(
        update={"id": "b" * 32, "owner": "bob", "version": 4, "parent_id": v3.id}
    )
    latest = latest_versions([v1, v2, v3, duplicate, theirs])
    assert {k: v.id for k, v in latest.items()} == {v1.id: v3.id, v2.id: v3.id}


async def with_a_conversation(store: Any, exp_id: str) -> None:
    cell = GridCell(counts={"Guard": 1, "Prisoner": 1}, days=1, total_messages=2, models=ModelSet())
    await store.conversations.create(
        Conversation(id="c" * 32, experiment_id=exp_id, owner="alice", cell=cell)
    )


def ver_cells(screen: LibraryScreen) -> dict[str, str]:
    table = screen.query_one("#experiments", DataTable)
    return {
        row.experiment.id: str(table.get_cell(row.experiment.id, "version")) for row in screen.rows
    }


async def test_save_then_b_opens_the_saved_version(store: Any, tui_settings: Settings) -> None:
    """After saving, the cursor stayed on the previously highlighted row: with conversations,
    that is the old version, so ``b`` set up a batch without the model just added."""
    old = await store.experiments.create(sample_experiment("Prison", owner="alice"))
    await store.experiments.create(
        sample_experiment("Other", experiment_id="f" * 32).model_copy(
            update={"created_at": FIXED_TIME - timedelta(days=1)}
        )
    )
    await with_a_conversation(store, old.id)
    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        library = await wait_library(pilot)
        assert library.selected_id() == old.id
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, EditorScreen), what="editor")
        editor: EditorScreen = app.screen  # type: ignore[assignment]
        await pilot.press("f5")
        await wait_until(pilot, lambda: editor.focused is editor.query_one("#model-list"))
        await pilot.press("plus")
        await wait_until(pilot, lambda: len(editor.draft.models) == 2, what="a second model")
        editor.query_one("#model-name", Input).value = "second-script"
        await wait_until(pilot, lambda: editor.draft.models[1].model == "second-script")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: editor.saved_id not in (None, old.id), what="v2")
        saved_id = editor.saved_id
        await pilot.press("escape")  # from the list: back to the library
        await wait_until(
            pilot,
            lambda: app.screen is library and library.selected_id() == saved_id,
            what="the cursor on the saved version",
        )
        assert ver_cells(library) == {saved_id: "v2", old.id: "v1 old", "f" * 32: "v1"}
        assert "older" not in str(library.query_one("#library-details", Static).render())

        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BatchSetupScreen), what="setup")
        setup: BatchSetupScreen = app.screen  # type: ignore[assignment]
        assert setup.experiment.id == saved_id and setup.experiment.version == 2
        assert [m.model for m in setup.models] == ["dryrun", "second-script"]
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is library)
        assert not any(isinstance(s, ConfirmDialog) for s in app.screen_stack)


async def test_batch_setup_on_an_older_version_offers_the_latest(
    store: Any, tui_settings: Settings
) -> None:
    v1 = await store.experiments.create(sample_experiment("Prison", experiment_id="1" * 32))
    newer = ModelRef(provider=Provider.ollama, model="llama3.2")
    v2 = await store.experiments.create(
        v1.model_copy(
            update={
                "id": "2" * 32,
                "version": 2,
                "parent_id": v1.id,
                "models": [*v1.models, newer],
                "created_at": FIXED_TIME + timedelta(days=1),
            }
        )
    )
    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        library = await wait_library(pilot)
        assert ver_cells(library) == {v2.id: "v2", v1.id: "v1 old"}
        library.query_one("#experiments", DataTable).move_cursor(row=1)
        details = library.query_one("#library-details", Static)
        await wait_until(
            pilot,
            lambda: "Prison v1 (older: v2 is the latest)" in str(details.render()),
            what="the details of v1",
        )

        # Keep the older version: the banner keeps saying so.
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the offer")
        offer = app.screen
        assert offer.title_text == "An older version"
        assert "v2" in offer.message and "ollama:llama3.2" in offer.message
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, BatchSetupScreen))
        setup = app.screen
        assert setup.experiment.id == v1.id
        assert "OLDER version: v2 is the latest" in str(
            setup.query_one("#setup-banner", Static).render()
        )
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is library)

        # Switch to the latest: the setup is v2's, with the model v1 lacks.
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the offer")
        await pilot.press("y")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, BatchSetupScreen) and app.screen.experiment.id == v2.id,
            what="the latest version's setup",
        )
        default = app.screen.query_one("#model-default", Select)
        assert "ollama:llama3.2" in [str(prompt) for prompt, _ in default._options]
