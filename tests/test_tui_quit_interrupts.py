"""Quitting the TUI while a batch runs stores it ``interrupted`` with the reason (not
``cancelled``, which an explicit cancel keeps), and a resume finishes it."""

from __future__ import annotations

import asyncio
from typing import Any

from simulator.db.store import ConversationFilter
from simulator.domain import BatchSpec, ModelSet, Status
from simulator.engine.batch import BatchRunner
from simulator.llm.registry import Backends
from simulator.tui.runs import runs_of
from simulator.tui.screens.dialogs import ConfirmDialog
from tests.plugins.tui import wait_library, wait_until
from tests.plugins.tui_runs import runs_experiment


async def stored_status(store: Any, batch_id: str, status: Status) -> Any:
    """The batch once it is stored with ``status`` (the write may land as the app closes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        batch = await store.batches.get(batch_id)
        if batch.status is status or loop.time() > deadline:
            return batch
        await asyncio.sleep(0.05)


async def test_quit_anyway_stores_the_batch_interrupted_with_the_reason(
    store: Any, runs_app: Any
) -> None:
    exp = await store.experiments.create(runs_experiment(latency_ms=200))
    spec = BatchSpec(
        experiment_id=exp.id,
        max_agents={"Guard": 2, "Prisoner": 2},
        total_messages=12,
        days=2,
        model_sets=[ModelSet(default=exp.models[0])],
    )
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        registry = runs_of(app)
        batch = await registry.create(exp, spec)
        registry.run(batch.id)
        await wait_until(
            pilot,
            lambda: registry.is_running(batch.id) and registry.runs[batch.id].messages_done > 0,
            within=30,
            what="some progress",
        )
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question")
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.is_running, what="the app to exit")

    stopped = await stored_status(store, batch.id, Status.interrupted)
    assert stopped.status is Status.interrupted
    assert stopped.stop_reason == "the app was closed (ctrl+q)"
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    assert not [c for c in convs if c.status is Status.cancelled]
    assert {c.stop_reason for c in convs if c.status is Status.interrupted} <= {
        "the app was closed (ctrl+q)"
    }

    ended = await BatchRunner(store, Backends()).resume(batch.id)
    assert ended.status is Status.done and ended.stop_reason is None
