"""SVG snapshots (pytest-textual-snapshot) of batch setup and of the run monitor at 100x30,
under a fixed configuration: fixed user, experiment and batch ids, fixed timestamps, a dryrun
batch (deterministic text and token counts) run to the end before the app starts.

Update the baselines after an intended change of the UI with
``pytest tests/test_tui_runs_snapshots.py --snapshot-update`` and review the SVGs in the report.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from simulator.db.mongo import connect_store
from simulator.domain import Batch, BatchSpec, ModelSet
from simulator.engine.batch import BatchRunner
from simulator.engine.grid import estimate, expand_grid
from simulator.llm.registry import Backends
from simulator.settings import Settings
from simulator.tui.app import SimulatorApp
from simulator.tui.screens.batch_setup import BatchSetupScreen
from simulator.tui.screens.batches import BatchListScreen
from simulator.tui.screens.monitor import RunMonitorScreen
from tests.plugins.tui import (
    FIXED_TIME,
    app_on_fresh_database,
    settle,
    snapshot_library,
    wait_until,
)
from tests.plugins.tui_runs import runs_experiment

SIZE = (100, 30)
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
        await runner.run(BATCH_ID)  # creates the conversations (ids from the batch id), runs them
        await store.batches.set_fields(BATCH_ID, finished_at=FIXED_TIME + timedelta(seconds=42))
    finally:
        await store.close()


@pytest.fixture
def snapshot_app(tui_settings: Settings, mongo_uri: str) -> Iterator[SimulatorApp]:
    yield from app_on_fresh_database(mongo_uri, _populate)


async def _library(pilot: Pilot[Any]) -> None:
    await snapshot_library(pilot)


def _setup(values: dict[str, str]) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _library(pilot)
        app = pilot.app
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BatchSetupScreen), what="setup")
        screen = app.screen
        assert isinstance(screen, BatchSetupScreen)
        await wait_until(pilot, lambda: screen.checks >= 1, what="first check")
        for key, value in values.items():
            screen.query_one(f"#in-{key}", Input).value = value
        checks = screen.checks
        await wait_until(
            pilot,
            lambda: screen.checks > checks and not screen._recheck_timer_pending(),
            what="the check",
        )
        screen.set_focus(None)  # no blinking cursor in the picture
        await settle(pilot)

    return run_before


async def _monitor(pilot: Pilot[Any]) -> None:
    await _library(pilot)
    app = pilot.app
    await app.push_screen(RunMonitorScreen(BATCH_ID))
    screen = app.screen
    assert isinstance(screen, RunMonitorScreen)
    await wait_until(
        pilot,
        lambda: screen.loads >= 1 and screen._transcript_ready and screen.flushes > 1,
        what="the finished batch",
    )
    screen.set_focus(None)
    await settle(pilot)


async def _batch_list(pilot: Pilot[Any]) -> None:
    await _library(pilot)
    app = pilot.app
    await pilot.press("r")
    await wait_until(
        pilot,
        lambda: isinstance(app.screen, BatchListScreen) and app.screen.loads >= 1,
        what="the batch list",
    )
    await settle(pilot)


def test_batch_setup_snapshot(snap_compare: Any, snapshot_app: SimulatorApp) -> None:
    values = {"total": "6", "days": "2", "max-0": "2", "max-1": "2"}
    assert snap_compare(snapshot_app, terminal_size=SIZE, run_before=_setup(values))


def test_batch_setup_with_problems_snapshot(snap_compare: Any, snapshot_app: SimulatorApp) -> None:
    values = {"total": "3", "days": "5", "max-1": "0"}
    assert snap_compare(snapshot_app, terminal_size=SIZE, run_before=_setup(values))


def test_monitor_of_a_finished_batch_snapshot(
    snap_compare: Any, snapshot_app: SimulatorApp
) -> None:
    assert snap_compare(snapshot_app, terminal_size=SIZE, run_before=_monitor)


def test_batch_list_snapshot(snap_compare: Any, snapshot_app: SimulatorApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=SIZE, run_before=_batch_list)
