"""SVG snapshots (pytest-textual-snapshot) of the conversation browser at 100x30 on fixed data
(fixed user, ids, texts and timestamps, UTC): a two-role transcript with day separators, a private
message and both summaries; the details of what ran; a five-role transcript, one colour per role.

Update the baselines after an intended change of the UI with
``pytest tests/test_tui_browser_snapshots.py --snapshot-update`` and review the SVGs.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import TabbedContent

from simulator.db.mongo import connect_store
from simulator.settings import Settings
from simulator.tui.app import SimulatorApp
from simulator.tui.screens.browser import ConversationBrowserScreen
from tests.plugins.tui import app_on_fresh_database, settle, snapshot_library, wait_until
from tests.plugins.tui_browser import (
    FIVE_ROLES,
    fixed_conversation,
    roles_experiment,
    store_conversation,
)

SIZE = (100, 30)
TABS = {"i": "details"}  # the browser's key for each tab


async def _populate(uri: str, db: str, roles: list[str]) -> None:
    store = await connect_store(uri, db)
    try:
        exp = await store.experiments.create(roles_experiment(roles, name="Snapshot study"))
        conv, messages = fixed_conversation(exp)
        await store_conversation(store, conv, messages)
        # a second, one-day conversation so the list has more than one row
        other, other_messages = fixed_conversation(
            exp, conversation_id="d" * 32, cell_index=1, days=1
        )
        await store_conversation(store, other, other_messages)
    finally:
        await store.close()


def _app(mongo_uri: str, roles: list[str]) -> Iterator[SimulatorApp]:
    yield from app_on_fresh_database(mongo_uri, lambda uri, db: _populate(uri, db, roles))


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Times on screen in UTC, whatever the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def two_role_app(tui_settings: Settings, mongo_uri: str, utc: None) -> Iterator[SimulatorApp]:
    yield from _app(mongo_uri, ["Guard", "Prisoner"])


@pytest.fixture
def five_role_app(tui_settings: Settings, mongo_uri: str, utc: None) -> Iterator[SimulatorApp]:
    yield from _app(mongo_uri, FIVE_ROLES)


def _browser(tab_key: str = "") -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        await snapshot_library(pilot)
        await pilot.press("c")
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, ConversationBrowserScreen)
                and app.screen.transcript_loads >= 1
            ),
            what="the browser with a transcript",
        )
        if tab_key:
            await pilot.press(tab_key)
            tabs = app.screen.query_one("#browser-tabs", TabbedContent)
            await wait_until(pilot, lambda: tabs.active == TABS[tab_key], what="the tab")
        await settle(pilot)
        app.screen.set_focus(None)  # no cursor highlight that depends on timing
        await settle(pilot)

    return run_before


def test_browser_transcript_snapshot(snap_compare: Any, two_role_app: SimulatorApp) -> None:
    assert snap_compare(two_role_app, terminal_size=SIZE, run_before=_browser())


def test_browser_details_snapshot(snap_compare: Any, two_role_app: SimulatorApp) -> None:
    assert snap_compare(two_role_app, terminal_size=SIZE, run_before=_browser("i"))


def test_five_role_transcript_snapshot(snap_compare: Any, five_role_app: SimulatorApp) -> None:
    assert snap_compare(five_role_app, terminal_size=SIZE, run_before=_browser())
