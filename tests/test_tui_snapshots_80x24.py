"""SVG snapshots (pytest-textual-snapshot) of the main screens in the smallest terminal the app
supports, 80x24: the library, the editor's Sections tab, batch setup, the run monitor and the
conversation browser, on fixed data (fixed user, ids and timestamps, UTC; a dryrun batch run to
the end before the app starts).

What each picture must keep at 80 columns (issue 29): the library's footer up to Delete (b, r and
c were cut), the monitor's ETA/elapsed and every column, batch setup's "At once" and its Start
button, the browser's filters saying which is which, the editor's list keys and Save.

Every picture is taken once the screen has reached a state (loaded, fitted to its width, its
footer composed), never after a fixed pause. Update the baselines after an intended change of
the UI with ``pytest tests/test_tui_snapshots_80x24.py --snapshot-update`` and review them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, TabbedContent, TextArea
from textual.widgets._footer import FooterKey

from simulator.db.mongo import connect_store
from simulator.domain import Batch, BatchSpec, ModelSet
from simulator.engine.batch import BatchRunner
from simulator.engine.grid import estimate, expand_grid
from simulator.llm.registry import Backends
from simulator.settings import Settings
from simulator.tui.app import SimulatorApp
from simulator.tui.screens.batch_setup import BatchSetupScreen
from simulator.tui.screens.browser import ConversationBrowserScreen
from simulator.tui.screens.editor import EditorScreen
from simulator.tui.screens.monitor import CONVERSATION_COLUMNS, RunMonitorScreen
from tests.plugins.tui import FIXED_TIME, app_on_fresh_database, snapshot_library, wait_until
from tests.plugins.tui_runs import runs_experiment

SIZE = (80, 24)
BATCH_ID = "b" * 32


async def _populate(uri: str, db: str) -> None:
    store = await connect_store(uri, db)
    try:
        exp = await store.experiments.create(
            runs_experiment("Prison runs", experiment_id="a" * 32, factors=True)
        )
        spec = BatchSpec(
            experiment_id=exp.id,
            model_sets=[ModelSet(default=exp.models[0])],
            max_agents={"Guard": 2, "Prisoner": 1},
            total_messages=4,
            days=2,
        )
        await store.batches.create(
            Batch(
                id=BATCH_ID,
                experiment_id=exp.id,
                spec=spec,
                owner="alice",
                estimate=estimate(exp, spec),
                cells_total=len(expand_grid(exp, spec)),
                created_at=FIXED_TIME,
            )
        )
        runner = BatchRunner(store, Backends(max_attempts=1, backoff_s=0.0))
        await runner.run(BATCH_ID)
        await store.batches.set_fields(BATCH_ID, finished_at=FIXED_TIME + timedelta(seconds=42))
    finally:
        await store.close()


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Times on screen in UTC, whatever the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def snapshot_app(tui_settings: Settings, mongo_uri: str, utc: None) -> Iterator[SimulatorApp]:
    yield from app_on_fresh_database(mongo_uri, _populate)


def footer_keys(app: Any) -> list[str]:
    """The descriptions of the keys the footer shows (empty until it has composed)."""
    return [key.description for key in app.screen.query(FooterKey)]


async def _library(pilot: Pilot[Any]) -> None:
    screen = await snapshot_library(pilot)
    table = screen.query_one("#experiments", DataTable)
    await wait_until(
        pilot,
        lambda: (
            table.row_count == len(screen.rows) == 1
            and "created" not in screen._widths  # fitted to 80 columns
            and "Delete" in footer_keys(pilot.app)
        ),
        what="the library fitted to 80 columns",
    )


async def _editor(pilot: Pilot[Any]) -> None:
    await _library(pilot)
    app = pilot.app
    await pilot.press("o")
    await wait_until(pilot, lambda: isinstance(app.screen, EditorScreen), what="editor")
    editor = app.screen
    await pilot.press("f4")
    await wait_until(
        pilot,
        lambda: (
            editor.query_one(TabbedContent).active == "tab-sections"
            and editor.focused is editor.query_one("#section-list")
            and editor.query_one("#sec-content", TextArea).text != ""
            and "Edit" in footer_keys(app)
        ),
        what="the Sections tab with its list focused",
    )


async def _setup(pilot: Pilot[Any]) -> None:
    await _library(pilot)
    app = pilot.app
    await pilot.press("b")
    await wait_until(pilot, lambda: isinstance(app.screen, BatchSetupScreen), what="setup")
    screen = app.screen
    assert isinstance(screen, BatchSetupScreen)
    grid = screen.query_one("#setup-grid", DataTable)
    await wait_until(
        pilot,
        lambda: (
            screen.checks >= 1
            and not screen._recheck_timer_pending()
            and grid.row_count == len(screen.plan.cells) > 0
            and "Seed" not in [label for label, _, _ in screen._preview_columns]  # fitted
            and "Start batch" in footer_keys(app)
        ),
        what="the checked form and its preview fitted to 80 columns",
    )
    grid.focus()  # no blinking text cursor in the picture
    await wait_until(pilot, lambda: screen.focused is grid)


async def _monitor(pilot: Pilot[Any]) -> None:
    await _library(pilot)
    app = pilot.app
    await app.push_screen(RunMonitorScreen(BATCH_ID))
    screen = app.screen
    assert isinstance(screen, RunMonitorScreen)
    await wait_until(
        pilot,
        lambda: (
            screen.loads >= 1
            and screen._transcript_ready
            and screen.flushes > 1
            and screen._columns != CONVERSATION_COLUMNS  # fitted to 80 columns
            and "Cancel batch" in footer_keys(app)
        ),
        what="the finished batch fitted to 80 columns",
    )


async def _browser(pilot: Pilot[Any]) -> None:
    await _library(pilot)
    app = pilot.app
    await pilot.press("c")
    await wait_until(
        pilot,
        lambda: (
            isinstance(app.screen, ConversationBrowserScreen)
            and app.screen.loads >= 1
            and app.screen.transcript_loads >= 1
            and "Export" in footer_keys(app)
        ),
        what="the browser with a transcript",
    )


def test_library_at_80x24(snap_compare: Any, snapshot_app: SimulatorApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=SIZE, run_before=_library)


def test_editor_at_80x24(snap_compare: Any, snapshot_app: SimulatorApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=SIZE, run_before=_editor)


def test_batch_setup_at_80x24(snap_compare: Any, snapshot_app: SimulatorApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=SIZE, run_before=_setup)


def test_monitor_at_80x24(snap_compare: Any, snapshot_app: SimulatorApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=SIZE, run_before=_monitor)


def test_browser_at_80x24(snap_compare: Any, snapshot_app: SimulatorApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=SIZE, run_before=_browser)
