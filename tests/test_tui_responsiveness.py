"""The UI never blocks on the database: every store call the screens make runs in a Textual
worker on the app's event loop, never in a message handler, a key binding or a timer callback;
the batches they start make none on the app's client (each runs on its own thread, event loop
and client: tests/test_tui_batch_thread.py records those). Checked by recording, for every call
of the app's store's repositories, which worker made it and on which thread; what load cannot
change.

How long the loop is kept busy in one go is measured, not tested: benchmarks/ui_responsiveness.py
(figures in docs/benchmarks.md).
"""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass
from typing import Any

from textual.widgets import DataTable
from textual.worker import NoActiveWorker, get_current_worker

from simulator.db.store import ConversationFilter
from simulator.domain import Status
from simulator.tui.screens.batch_setup import BatchSetupScreen
from simulator.tui.screens.batches import BatchListScreen
from simulator.tui.screens.dialogs import ConfirmDialog
from simulator.tui.screens.monitor import RunMonitorScreen
from simulator.tui.widgets.transcript import TranscriptView
from tests.plugins.tui import wait_library, wait_until
from tests.plugins.tui_runs import fill, runs_experiment, wait_batch

REPOSITORIES = ("experiments", "batches", "conversations", "messages", "states")


@dataclass(frozen=True)
class StoreCall:
    what: str  # "conversations.list"
    worker: str | None  # the group of the Textual worker that made it; None: outside any worker
    thread: int


def record_store_calls(store: Any) -> list[StoreCall]:
    """Wrap every coroutine method of the store's repositories (on this store object only) so
    that each call is recorded with the worker and thread that made it."""
    calls: list[StoreCall] = []

    def recorded(what: str, method: Any) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            try:
                worker: str | None = get_current_worker().group
            except NoActiveWorker:
                worker = None
            calls.append(StoreCall(what, worker, threading.get_ident()))
            return await method(*args, **kwargs)

        return call

    for name in REPOSITORIES:
        repo = getattr(store, name)
        for attr, method in inspect.getmembers(repo, inspect.iscoroutinefunction):
            if not attr.startswith("_"):
                setattr(repo, attr, recorded(f"{name}.{attr}", method))
    return calls


async def test_the_store_calls_of_setup_and_monitor_run_in_workers_and_the_batch_makes_none(
    store: Any, runs_app: Any
) -> None:
    await store.experiments.create(runs_experiment())
    calls = record_store_calls(store)
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app_thread = threading.get_ident()
        await wait_library(pilot)
        # Batch setup: the form is checked as it is filled; 'y' stores and starts the batch.
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BatchSetupScreen), what="setup")
        setup = app.screen
        await wait_until(pilot, lambda: setup.checks >= 1, what="the first check")
        await fill(pilot, setup, {"total": "8", "days": "2", "max-0": "2", "max-1": "2"})
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
        assert "4 conversations" in app.screen.message
        await pilot.press("y")
        # The run monitor follows the batch live to its end.
        await wait_until(pilot, lambda: isinstance(app.screen, RunMonitorScreen), what="monitor")
        monitor = app.screen
        assert isinstance(monitor, RunMonitorScreen) and monitor.batch_id is not None
        batch_id = monitor.batch_id
        await wait_batch(pilot, batch_id)
        await wait_until(
            pilot,
            lambda: "4/4 done" in str(monitor.query_one("#monitor-summary").render()),
            what="the summary",
        )
        transcript = monitor.query_one("#monitor-transcript", TranscriptView)
        await wait_until(pilot, lambda: transcript.messages, what="the transcript")
        # Another conversation's transcript, then the list of batches.
        monitor.query_one("#monitor-conversations", DataTable).move_cursor(row=1)
        loads = len([c for c in calls if c.what == "messages.list"])
        await wait_until(
            pilot,
            lambda: len([c for c in calls if c.what == "messages.list"]) > loads,
            what="the second transcript",
        )
        await pilot.press("escape")
        await pilot.press("r")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, BatchListScreen) and app.screen.loads >= 1,
            what="the batch list",
        )
    calls = list(calls)  # the app's calls (the checks below make their own)

    convs = await store.conversations.list(ConversationFilter(batch_id=batch_id))
    assert len(convs) == 4 and all(c.status is Status.done for c in convs)
    made = {c.what for c in calls}
    # every kind of the screens' work was seen: listings, the batch, the transcripts
    assert {"experiments.list", "batches.list", "batches.get", "messages.list"} <= made
    # the batch was created and run on its own thread's client, never on the app's
    writes = {"batches.create", "conversations.create", "messages.append"}
    assert not made & writes, f"batch writes on the app's client: {sorted(made & writes)}"
    outside = sorted({c.what for c in calls if c.worker is None})
    assert outside == [], f"store calls made outside any worker (in a handler): {outside}"
    threads = {c.thread for c in calls}
    assert threads == {app_thread}, "store calls made off the app's thread (its client's loop)"
