"""SVG snapshots (pytest-textual-snapshot) of the library and of each editor tab at 100x30,
under a fixed configuration: fixed user, experiments with fixed ids and timestamps, no .env.

Update the baselines after an intended change of the UI with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and review the SVGs in the report.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import TabbedContent

from simulator.db.mongo import connect_store
from simulator.domain.models import Conversation, GridCell, ModelSet
from simulator.settings import Settings
from simulator.tui.app import SimulatorApp
from simulator.tui.screens.editor import EditorScreen
from tests.plugins.tui import (
    app_on_fresh_database,
    sample_experiment,
    settle,
    snapshot_library,
    wait_until,
)

SIZE = (100, 30)


async def _populate(uri: str, db: str) -> None:
    store = await connect_store(uri, db)
    try:
        prison = sample_experiment(
            "Prison 1v1", owner="alice", experiment_id="a" * 32, note="pilot", favourite=True
        )
        await store.experiments.create(prison)
        await store.experiments.create(
            sample_experiment("Fishery by Bob", owner="bob", experiment_id="b" * 32, kind="commons")
        )
        cell = GridCell(
            counts={"Guard": 1, "Prisoner": 1}, days=1, total_messages=4, models=ModelSet()
        )
        for i in range(2):
            await store.conversations.create(
                Conversation(id=f"{i:032d}", experiment_id=prison.id, owner="alice", cell=cell)
            )
    finally:
        await store.close()


@pytest.fixture
def snapshot_app(tui_settings: Settings, mongo_uri: str) -> Iterator[SimulatorApp]:
    yield from app_on_fresh_database(mongo_uri, _populate)


async def _library(pilot: Pilot[Any]) -> None:
    await snapshot_library(pilot)
    await settle(pilot)


def _editor_tab(tab: str, key: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _library(pilot)
        app = pilot.app
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, EditorScreen), what="editor")
        if key:
            await pilot.press(key)
        await wait_until(pilot, lambda: app.screen.query_one(TabbedContent).active == tab, what=tab)
        await settle(pilot)
        app.screen.set_focus(None)  # no blinking cursor in the picture
        await settle(pilot)

    return run_before


def test_library_snapshot(snap_compare: Any, snapshot_app: SimulatorApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=SIZE, run_before=_library)


@pytest.mark.parametrize(
    ("tab", "key"),
    [
        ("tab-experiment", ""),
        ("tab-roles", "f3"),
        ("tab-sections", "f4"),
        ("tab-models", "f5"),
        ("tab-preview", "f6"),
    ],
)
def test_editor_tab_snapshot(
    snap_compare: Any, snapshot_app: SimulatorApp, tab: str, key: str
) -> None:
    assert snap_compare(snapshot_app, terminal_size=SIZE, run_before=_editor_tab(tab, key))
