"""The experiment library through the real app on the embedded server: search and filters,
sorting, duplicate, favourite, note, delete as owner, refusal for another owner's experiment,
export to a file and import back unchanged, the first-start example offer."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from textual.widgets import Checkbox, DataTable, Input, Select, Static

from simulator.domain.models import Experiment
from simulator.settings import Settings
from simulator.tui.app import SimulatorApp
from simulator.tui.screens.dialogs import ConfirmDialog, HelpScreen, TextPrompt
from simulator.tui.screens.library import LibraryScreen
from tests.plugins.tui import sample_experiment, wait_library, wait_until


async def seed(store: Any) -> tuple[Experiment, Experiment, Experiment]:
    mine = await store.experiments.create(
        sample_experiment("Prison 1v1", owner="alice", experiment_id="a" * 32, note="pilot")
    )
    theirs = await store.experiments.create(
        sample_experiment("Fishery by Bob", owner="bob", experiment_id="b" * 32)
    )
    commons = await store.experiments.create(
        sample_experiment(
            "Lake commons", owner="alice", experiment_id="c" * 32, kind="commons", favourite=True
        )
    )
    return mine, theirs, commons


def names(screen: LibraryScreen) -> list[str]:
    return [row.experiment.name for row in screen.rows]


def select_row(screen: LibraryScreen, name: str) -> None:
    index = names(screen).index(name)
    screen.query_one("#experiments", DataTable).move_cursor(row=index)


def app_for(store: Any, settings: Settings, user: str = "alice") -> SimulatorApp:
    return SimulatorApp(settings, store=store, user=user, offer_example=False)


async def test_library_lists_searches_filters_and_sorts(store: Any, tui_settings: Settings) -> None:
    await seed(store)
    app = app_for(store, tui_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await wait_library(pilot)
        assert sorted(names(screen)) == ["Fishery by Bob", "Lake commons", "Prison 1v1"]
        table = screen.query_one("#experiments", DataTable)
        first = [str(c) for c in table.get_row_at(names(screen).index("Lake commons"))]
        assert first[0] == "★" and first[2] == "v1" and first[3] == "commons"
        assert first[4] == "Guard, Prisoner" and first[7] == "alice"
        details = str(screen.query_one("#library-details", Static).render())
        assert "2026-01-15" in details  # the details repeat the date (narrow terminals drop it)

        # Search by text (name or note).
        loads = screen.loads
        await pilot.press("slash")
        await pilot.press(*"fishery")
        await wait_until(
            pilot, lambda: screen.loads > loads and names(screen) == ["Fishery by Bob"]
        )
        loads = screen.loads
        screen.query_one("#search", Input).value = "pilot"  # matches Prison 1v1's note
        await wait_until(pilot, lambda: screen.loads > loads and names(screen) == ["Prison 1v1"])

        # Clear, then filter by owner, kind and favourites.
        await pilot.press("escape")
        await wait_until(pilot, lambda: len(names(screen)) == 3)
        loads = screen.loads
        screen.query_one("#owner-filter", Select).value = "bob"
        await wait_until(
            pilot, lambda: screen.loads > loads and names(screen) == ["Fishery by Bob"]
        )
        screen.query_one("#owner-filter", Select).value = ""
        loads = screen.loads
        screen.query_one("#kind-filter", Select).value = "commons"
        await wait_until(pilot, lambda: screen.loads > loads and names(screen) == ["Lake commons"])
        screen.query_one("#kind-filter", Select).value = ""
        await wait_until(pilot, lambda: len(names(screen)) == 3)
        loads = screen.loads
        screen.query_one("#favourites-filter", Checkbox).value = True
        await wait_until(pilot, lambda: screen.loads > loads and names(screen) == ["Lake commons"])
        screen.query_one("#favourites-filter", Checkbox).value = False
        await wait_until(pilot, lambda: len(names(screen)) == 3)

        # Sort: s cycles created -> name (ascending).
        table.focus()
        await pilot.press("s")
        await wait_until(pilot, lambda: screen.sort_key == "name")
        assert names(screen) == ["Fishery by Bob", "Lake commons", "Prison 1v1"]


async def test_duplicate_favourite_note_and_delete(store: Any, tui_settings: Settings) -> None:
    mine, theirs, _ = await seed(store)
    app = app_for(store, tui_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await wait_library(pilot)

        # Duplicate someone else's experiment into the current user's library.
        select_row(screen, "Fishery by Bob")
        loads = screen.loads
        await pilot.press("d")
        await wait_until(pilot, lambda: screen.loads > loads and len(screen.rows) == 4)
        copies = [r.experiment for r in screen.rows if r.experiment.parent_id == theirs.id]
        assert len(copies) == 1 and copies[0].owner == "alice"
        assert screen.selected_id() == copies[0].id  # the copy is highlighted

        # Toggle favourite.
        select_row(screen, "Prison 1v1")
        loads = screen.loads
        await pilot.press("f")
        await wait_until(pilot, lambda: screen.loads > loads)
        stored = await store.experiments.get(mine.id)
        assert stored is not None and stored.favourite
        row = names(screen).index("Prison 1v1")
        assert str(screen.query_one("#experiments", DataTable).get_row_at(row)[0]) == "★"

        # Edit the note.
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, TextPrompt))
        prompt = app.screen.query_one(Input)
        assert prompt.value == "pilot"
        prompt.value = ""
        await pilot.press(*"second run")
        loads = screen.loads
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.loads > loads)
        stored = await store.experiments.get(mine.id)
        assert stored is not None and stored.note == "second run"

        # Deleting another owner's experiment is refused, with a reason; nothing is deleted.
        select_row(screen, "Fishery by Bob")
        await pilot.press("x")
        await wait_until(  # the refusal answers the key: once shown, no dialog is coming
            pilot,
            lambda: any(
                "only its owner can delete it" in n.message and "bob" in n.message
                for n in app._notifications
            ),
            what="the refusal",
        )
        assert not isinstance(app.screen, ConfirmDialog)
        assert await store.experiments.get(theirs.id) is not None

        # Deleting one's own asks first; "n" keeps it, "y" deletes it.
        select_row(screen, "Prison 1v1")
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, LibraryScreen))
        assert await store.experiments.get(mine.id) is not None
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        loads = screen.loads
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.loads > loads and "Prison 1v1" not in names(screen))
        assert await store.experiments.get(mine.id) is None


async def test_service_refusal_is_shown_not_raised(store: Any, tui_settings: Settings) -> None:
    """The service layer has the last word: a refused note edit becomes a readable toast."""
    _, theirs, _ = await seed(store)
    app = app_for(store, tui_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await wait_library(pilot)
        select_row(screen, "Fishery by Bob")
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, TextPrompt))
        app.screen.query_one(Input).value = "mine now"
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: any(n.title == "Not allowed" for n in app._notifications),
            what="the refusal",
        )
        stored = await store.experiments.get(theirs.id)
        assert stored is not None and stored.note == ""
        assert isinstance(app.screen, LibraryScreen)


async def test_export_and_import_round_trip(
    store: Any, tui_settings: Settings, tmp_path: Path
) -> None:
    mine, _, _ = await seed(store)
    app = app_for(store, tui_settings)
    target = tmp_path / "out" / "prison.yaml"
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await wait_library(pilot)
        select_row(screen, "Prison 1v1")
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, TextPrompt))
        field = app.screen.query_one(Input)
        assert field.value.endswith("exports/prison-1v1.yaml")
        field.value = str(target)
        await pilot.press("enter")
        await wait_until(pilot, lambda: target.exists(), what="the export file")

        await pilot.press("i")
        await wait_until(pilot, lambda: isinstance(app.screen, TextPrompt))
        app.screen.query_one(Input).value = str(target)
        loads = screen.loads
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.loads > loads and len(screen.rows) == 4)

    imported = [
        r.experiment
        for r in screen.rows
        if r.experiment.name == "Prison 1v1" and r.experiment.id != mine.id
    ]
    assert len(imported) == 1
    keep = {"name", "kind", "starting_message", "roles", "shared_sections", "summarizer_sections"}
    keep |= {"models", "factors", "dialogue", "game", "note"}
    assert imported[0].model_dump(include=keep) == mine.model_dump(include=keep)
    assert imported[0].owner == "alice"


async def test_first_start_offers_the_example(store: Any, tui_settings: Settings) -> None:
    app = SimulatorApp(tui_settings, store=store, user="alice")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="offer")
        assert "prison study" in app.screen.message
        await pilot.press("y")
        screen = await wait_library(pilot, loads=2)
        await wait_until(pilot, lambda: len(screen.rows) == 1)
        example = screen.rows[0].experiment
        assert [r.name for r in example.roles] == ["Guard", "Prisoner"]
        assert example.summarizer_sections and example.shared_sections


def library_loaded(app: SimulatorApp) -> bool:
    """Whether the library (under any dialog) has read the database once."""
    return any(isinstance(s, LibraryScreen) and s.loads >= 1 for s in app.screen_stack)


async def test_a_restart_with_a_full_library_offers_nothing(
    store: Any, tui_settings: Settings
) -> None:
    """The welcome dialog opened over a full library on every restart: the screen's first
    resize (before any load) was taken for an empty library."""
    first = SimulatorApp(tui_settings, store=store, user="alice")
    async with first.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(first.screen, ConfirmDialog), what="offer")
        await pilot.press("y")
        await wait_until(
            pilot,
            lambda: isinstance(first.screen, LibraryScreen) and len(first.screen.rows) == 1,
            what="the example in the library",
        )
    for size in ((100, 30), (80, 24), (160, 40)):  # a restart, in terminals of every size
        again = SimulatorApp(tui_settings, store=store, user="alice")
        async with again.run_test(size=size) as pilot:
            await wait_until(pilot, partial(library_loaded, again), what="the first load")
            await pilot.pause()
            assert not any(isinstance(s, ConfirmDialog) for s in again.screen_stack)
            assert isinstance(again.screen, LibraryScreen)
            assert [r.experiment.name for r in again.screen.rows] == ["Prison study"]


async def test_accepting_the_offer_late_says_nothing_was_added(
    store: Any, tui_settings: Settings
) -> None:
    app = SimulatorApp(tui_settings, store=store, user="alice")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="offer")
        await store.experiments.create(sample_experiment("Someone's experiment", owner="bob"))
        await pilot.press("y")
        await wait_until(
            pilot,
            lambda: any("nothing was added" in n.message for n in app._notifications),
            what="the notice",
        )
        assert not any("Added the prison" in n.message for n in app._notifications)
        screen = await wait_library(pilot, loads=2)
        await wait_until(pilot, lambda: names(screen) == ["Someone's experiment"])


async def test_help_lists_the_keys_of_the_screen(store: Any, tui_settings: Settings) -> None:
    await seed(store)
    app = app_for(store, tui_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        rows = dict((d, k) for k, d in app.screen.rows)
        for action in ("New", "Duplicate", "Delete", "Export", "Import", "Favourite", "Note"):
            assert action in rows
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, LibraryScreen))
        commands = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert "Export" in commands and "Delete" in commands and "Help" in commands
        assert commands["Duplicate"] == "Copy the experiment into your library · key: d"


async def test_a_wider_terminal_gives_names_and_notes_room(
    store: Any, tui_settings: Settings
) -> None:
    from simulator.tui.screens.library import COLUMNS, FULL_WIDTH, column_widths

    assert column_widths(FULL_WIDTH) == {key: width for key, _, width in COLUMNS}
    long = "Stanford prison, calm guard, day 3"  # 34 characters
    await store.experiments.create(sample_experiment(long, note="a note of some length here"))
    app = app_for(store, tui_settings)
    async with app.run_test(size=(160, 30)) as pilot:
        screen = await wait_library(pilot)
        await wait_until(pilot, lambda: screen._widths["name"] > 30)
        table = screen.query_one("#experiments", DataTable)
        cells = [str(c) for c in table.get_row_at(0)]
        assert cells[1] == long and cells[9] == "a note of some length here"
        # At 100 columns the note gives way (the details lines show it) ...
        await pilot.resize_terminal(100, 30)
        await wait_until(pilot, lambda: "note" not in screen._widths)
        cells = [str(c) for c in table.get_row_at(0)]
        assert cells[1] == "Stanford prison, …" and cells[4] == "Guard, Prisoner"
        # ... and at 80 the date too; every column left fits.
        await pilot.resize_terminal(80, 24)
        await wait_until(pilot, lambda: "created" not in screen._widths)
        assert [str(c.label) for c in table.columns.values()] == [
            "★",
            "Name",
            "Ver",
            "Kind",
            "Roles",
            "Models",
            "Conv",
            "Owner",
        ]
        assert sum(screen._widths.values()) + 2 * len(screen._widths) <= table.size.width
