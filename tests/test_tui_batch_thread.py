"""Batches off the UI loop (issue 22, point 8) and honest progress (issue 29, point 4).

A batch started in the TUI runs on its own thread, with its own event loop, database client and
model backends: a recording wrapper around the store and the backends the app builds for it shows
that none of their calls runs on the app's loop. Across the thread boundary the monitor still
shows live progress, manual speaker selection works, cancel stops the batch, ctrl+q (or the app
closing) stores it ``interrupted`` with the reason, and the threads end with the app.

Progress counts every model call (summaries included) against the planned calls, so the monitor
never shows a batch done while a summary is being written; elapsed time does not jump when a
resumed batch fails.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from datetime import timedelta
from typing import Any

from simulator.db.store import ConversationFilter
from simulator.domain import (
    BatchSpec,
    MessageKind,
    ModelRef,
    ModelSet,
    Provider,
    SpeakerSelection,
    Status,
    utcnow,
)
from simulator.engine.batch import BatchRunner
from simulator.engine.grid import estimate_cells, expand_grid, planned_calls
from simulator.llm.registry import Backends
from simulator.services.container import build_services
from simulator.tui.runs import duration_label, runs_of
from simulator.tui.screens.batch_setup import BatchSetupScreen
from simulator.tui.screens.dialogs import ConfirmDialog
from simulator.tui.screens.monitor import RunMonitorScreen
from simulator.tui.screens.speaker_dialog import SpeakerDialog
from tests.plugins.batches import make_prison_experiment
from tests.plugins.tui import wait_library, wait_until
from tests.plugins.tui_runs import conversation_row, fill, runs_experiment, wait_batch
from tests.servers import FakeOpenAIServer
from tests.servers.base import Fault

REPOS = ("experiments", "batches", "conversations", "messages", "states", "annotations")


class Calls:
    """Where each call ran: (what, thread id, event loop id)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, int]] = []
        self._lock = threading.Lock()

    def add(self, what: str) -> None:
        with self._lock:
            self.seen.append((what, threading.get_ident(), id(asyncio.get_running_loop())))


class Recording:
    """A thin wrapper: every coroutine method of ``target`` (and of its repositories) notes
    the thread and loop it runs on, then does what it did."""

    def __init__(self, target: Any, name: str, calls: Calls) -> None:
        self._target, self._name, self._calls = target, name, calls

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._target, attr)
        if attr in REPOS:
            return Recording(value, f"{self._name}.{attr}", self._calls)
        if inspect.iscoroutinefunction(value):

            async def call(*args: Any, **kwargs: Any) -> Any:
                self._calls.add(f"{self._name}.{attr}")
                return await value(*args, **kwargs)

            return call
        return value


def batch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("batch ") and t.is_alive()]


def shown(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector).render())


async def test_no_store_or_model_call_of_a_running_batch_runs_on_the_ui_loop(
    store: Any, runs_app: Any
) -> None:
    await store.experiments.create(runs_experiment())
    calls = Calls()
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        ui_loop, ui_thread = id(asyncio.get_running_loop()), threading.get_ident()
        await wait_library(pilot)
        registry = runs_of(app)
        # Injected where the app builds a batch's own store and services.
        open_store, settings, user = registry.open_store, app.services.settings, app.user

        async def recording_store() -> Any:
            return Recording(await open_store(), "store", calls)

        async def recording_services(batch_store: Any) -> Any:
            from simulator.engine.events import EventBus

            bus = EventBus()
            backends = Recording(Backends(settings, on_event=bus.publish), "backends", calls)
            return await build_services(settings, batch_store, user, backends=backends, bus=bus)

        registry.open_store, registry.build_services = recording_store, recording_services

        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BatchSetupScreen), what="setup")
        setup = app.screen
        await wait_until(pilot, lambda: setup.checks >= 1, what="first check")
        await fill(pilot, setup, {"total": "6", "days": "2", "max-0": "2", "max-1": "2"})
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, RunMonitorScreen), what="monitor")
        monitor = app.screen
        run = await wait_batch(pilot, monitor.batch_id)
        await wait_until(
            pilot, lambda: "4/4 done" in shown(monitor, "#monitor-summary"), what="done shown"
        )
        assert run.batch.status is Status.done
        await wait_until(pilot, lambda: not batch_threads(), what="the batch thread to end")

    names = {what for what, _, _ in calls.seen}
    # The batch was created, prepared, run and finished through the recorded store and models.
    for expected in (
        "store.batches.create",
        "store.conversations.create",
        "store.messages.append",
        "store.batches.set_fields",
        "backends.chat",
        "backends.ensure_available",
    ):
        assert expected in names, (expected, sorted(names))
    on_ui = [what for what, thread, loop in calls.seen if loop == ui_loop or thread == ui_thread]
    assert on_ui == []
    assert len({loop for _, _, loop in calls.seen}) >= 1
    stored = await store.conversations.list(ConversationFilter(batch_id=run.id))
    assert len(stored) == 4 and all(c.status is Status.done for c in stored)


def two_speed_experiment() -> Any:
    """Agents answer at once; the summarizer takes ten minutes (its call is pending for as long
    as a test needs)."""
    fast = ModelRef(provider=Provider.dryrun, model="dryrun")
    slow = ModelRef(provider=Provider.dryrun, model="slow", options={"latency_ms": 600_000})
    return runs_experiment("Slow summaries", models=[fast, slow])


async def test_progress_counts_the_summary_call_and_cancel_crosses_the_thread(
    store: Any, runs_app: Any
) -> None:
    exp = await store.experiments.create(two_speed_experiment())
    fast, slow = exp.models
    spec = BatchSpec(
        experiment_id=exp.id,
        total_messages=4,
        model_sets=[ModelSet(default=fast, summarizer=slow)],
    )
    app = runs_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_library(pilot)
        registry = runs_of(app)
        batch = await registry.create(exp, spec)
        registry.run(batch.id)
        await app.push_screen(RunMonitorScreen(batch.id))
        monitor = app.screen
        await wait_until(pilot, lambda: monitor.loads >= 1, what="monitor")
        run = registry.runs[batch.id]
        (row,) = run.rows.values()
        assert row.planned == 5  # 4 agent turns and the day's summary
        # Every agent message is stored; the summary call is pending (ten minutes).
        await wait_until(pilot, lambda: run.messages_done == 4, what="the agent messages")
        await wait_until(pilot, lambda: run.eta_s() is not None, what="an ETA", within=20)
        flushes = monitor.flushes
        await wait_until(pilot, lambda: monitor.flushes > flushes + 1, what="a repaint")
        summary = shown(monitor, "#monitor-summary")
        assert "running" in summary and "messages 4/4" in summary and "calls 4/5" in summary
        assert "ETA 0:00:00" not in summary and "ETA -" not in summary
        assert run.fraction() < 1.0 and run.eta_s() >= 1.0
        assert monitor.query_one("#monitor-progress").progress < 1000
        assert conversation_row(monitor, 0)[4] == "4/5"

        # c in the monitor: the batch's own runner, on its own thread, stops it at once.
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
        await pilot.press("y")
        await wait_batch(pilot, batch.id, (Status.cancelled,))
        await wait_until(pilot, lambda: not batch_threads(), what="the batch thread to end")
    stored = await store.batches.get(batch.id)
    assert stored.status is Status.cancelled and stored.stop_reason == "cancelled in the app"
    (conv,) = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    assert conv.calls_done == 4 and conv.messages_done == 4


async def test_manual_speaker_selection_across_the_thread_and_ctrl_q_withdraws_the_question(
    store: Any, runs_app: Any
) -> None:
    exp = await store.experiments.create(runs_experiment())
    spec = BatchSpec(
        experiment_id=exp.id,
        total_messages=4,
        speaker_selection=SpeakerSelection.manual,
        model_sets=[ModelSet(default=exp.models[0])],
    )
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        registry = runs_of(app)
        batch = await registry.create(exp, spec)
        registry.run(batch.id)
        await wait_until(pilot, lambda: isinstance(app.screen, SpeakerDialog), what="turn 1")
        assert app.screen.question.turn == 1
        await pilot.press("2")  # Prisoner 1
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, SpeakerDialog) and app.screen.question.turn == 2,
            what="turn 2",
        )
        assert app.screen.question.recent[-1][0] == "Prisoner 1"  # the last message, shown
        # ctrl+q while the batch waits for an answer: quitting stops it, the question closes.
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="quit?")
        assert "running" in app.screen.message
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.is_running, what="the app to exit")
    assert not batch_threads()  # joined before the app closed its own client
    stored = await store.batches.get(batch.id)
    assert stored.status is Status.interrupted
    assert stored.stop_reason == "the app was closed (ctrl+q)"
    (conv,) = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    spoken = [m.speaker for m in await store.messages.list(conv.id) if m.kind.value == "utterance"]
    assert spoken == ["Prisoner 1"]


async def test_closing_the_app_stops_a_running_batch_and_joins_its_thread(
    store: Any, runs_app: Any
) -> None:
    exp = await store.experiments.create(runs_experiment(latency_ms=300))
    spec = BatchSpec(
        experiment_id=exp.id, total_messages=40, model_sets=[ModelSet(default=exp.models[0])]
    )
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        registry = runs_of(app)
        batch = await registry.create(exp, spec)
        registry.run(batch.id)
        await wait_until(
            pilot, lambda: registry.runs[batch.id].calls_done >= 1, what="a call", within=30
        )
        assert batch_threads()
    # The test's end closes the app without asking: the batch is stopped the same clean way.
    assert not batch_threads()
    stored = await store.batches.get(batch.id)
    assert stored.status is Status.interrupted and stored.stop_reason == "the app was closed"
    ended = await BatchRunner(store, Backends()).resume(batch.id)
    assert ended.status is Status.done


async def test_elapsed_does_not_jump_when_a_resumed_batch_fails(store: Any, runs_app: Any) -> None:
    with FakeOpenAIServer(models=("m",)) as server:
        model = ModelRef(provider=Provider.openai, model="m", base_url=server.base_url)
        exp = await store.experiments.create(runs_experiment("Failing", models=[model]))
        spec = BatchSpec(
            experiment_id=exp.id, total_messages=2, model_sets=[ModelSet(default=model)]
        )
        earlier = BatchRunner(store, backends=None)
        batch = await earlier.start(exp, spec, owner="alice", preflight=False)
        # It was created two days ago and interrupted; today it is resumed, and fails.
        await store.batches.set_fields(
            batch.id, status=Status.interrupted, created_at=utcnow() - timedelta(days=2)
        )
        server.script("/v1/chat/completions", *[Fault(401)] * 5)
        app = runs_app()
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_library(pilot)
            registry = runs_of(app)
            registry.run(batch.id, resume=True)
            await app.push_screen(RunMonitorScreen(batch.id))
            monitor = app.screen
            run = await wait_batch(pilot, batch.id, (Status.failed,), within=30)
            elapsed = run.elapsed_s()
            assert elapsed is not None and elapsed < 3600  # this run's time, not two days
            await wait_until(
                pilot, lambda: "failed" in shown(monitor, "#monitor-summary"), what="failed"
            )
            assert f"elapsed {duration_label(elapsed)}" in shown(monitor, "#monitor-summary")


def test_planned_calls_are_the_estimates_calls_and_what_a_run_stores() -> None:
    exp = make_prison_experiment()
    for method, guards, calls in (
        (SpeakerSelection.round_robin, 1, 12 + 3),  # turns + a summary a day
        (SpeakerSelection.auto, 1, 12 + 3 + 3),  # two agents: the manager on each day's first
        (SpeakerSelection.auto, 2, 12 + 3 + 12),  # three: the manager before every turn
    ):
        spec = BatchSpec(
            experiment_id=exp.id,
            total_messages=12,
            days=3,
            max_agents={"Guard": guards},
            every_combination=False,
            speaker_selection=method,
        )
        (cell,) = expand_grid(exp, spec)
        assert planned_calls(exp, cell) == calls == estimate_cells(exp, [cell]).llm_calls


async def test_a_run_stores_as_many_calls_as_planned(store: Any) -> None:
    exp = await store.experiments.create(make_prison_experiment())
    spec = BatchSpec(
        experiment_id=exp.id,
        total_messages=9,
        days=3,
        max_agents={"Guard": 2},
        every_combination=False,
        speaker_selection=SpeakerSelection.auto,
    )
    runner = BatchRunner(store, Backends())
    batch = await runner.start(exp, spec)
    await runner.run(batch.id)
    (conv,) = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    messages = await store.messages.list(conv.id)
    with_model = [m for m in messages if m.model is not None]
    assert conv.calls_done == len(with_model) == planned_calls(exp, conv.cell) == 9 + 3 + 9
    assert sum(m.kind is MessageKind.summary for m in with_model) == 3


async def test_a_load_read_before_a_batch_ended_does_not_undo_its_end(
    store: Any, runs_app: Any
) -> None:
    """The monitor's load reads the batch from the app's store while the batch runs on its
    thread; when the batch ends (and its thread reports it) before that read is back, what was
    read is older than what the thread reported, and the registry keeps the end."""
    exp = await store.experiments.create(runs_experiment())
    spec = BatchSpec(
        experiment_id=exp.id, total_messages=4, model_sets=[ModelSet(default=exp.models[0])]
    )
    batch = await BatchRunner(store, Backends()).start(exp, spec, owner="alice")
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        registry = runs_of(app)
        assert (await registry.load(batch.id)).batch.status is Status.pending
        conversations = app.services.store.conversations
        pages = conversations.pages
        entered, release = asyncio.Event(), asyncio.Event()

        async def held(flt: Any = None, **kwargs: Any) -> Any:
            if flt is not None and flt.batch_id == batch.id:  # the load's read of its rows
                entered.set()
                await release.wait()
            async for page in pages(flt, **kwargs):
                yield page

        conversations.pages = held  # the app's own client only: the batch's thread has its own
        try:
            load = asyncio.create_task(registry.load(batch.id))
            await wait_until(pilot, entered.is_set, what="the load to read the conversations")
            registry.run(batch.id)
            await wait_batch(pilot, batch.id)  # the thread reported the end
        finally:
            release.set()
            conversations.pages = pages
        run = await load
        assert run.batch.status is Status.done and not registry.is_running(batch.id)
        assert registry.runs[batch.id].batch.status is Status.done
        assert all(row.status is Status.done for row in run.rows.values())
