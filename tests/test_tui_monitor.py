"""The run monitor through the real app on the embedded server with dryrun: cancel a running
batch and resume it (nothing lost, nothing asked twice), a batch an earlier session left behind
listed and resumed, leaving the monitor while a batch runs and coming back to it, the live
transcript, and escape in the manual speaker dialog."""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable, Static

from simulator.db.store import ConversationFilter
from simulator.domain import BatchSpec, MessageKind, ModelSet, SpeakerSelection, Status, utcnow
from simulator.engine.batch import BatchRunner
from simulator.tui.runs import runs_of
from simulator.tui.screens.batches import BatchListScreen
from simulator.tui.screens.dialogs import ConfirmDialog
from simulator.tui.screens.library import LibraryScreen
from simulator.tui.screens.monitor import RunMonitorScreen
from simulator.tui.screens.speaker_dialog import SpeakerDialog
from simulator.tui.widgets.transcript import TranscriptView
from tests.plugins.tui import settle, wait_library, wait_until
from tests.plugins.tui_runs import runs_experiment, wait_batch

AGENT_KINDS = (MessageKind.utterance, MessageKind.action)


def spec_for(exp: Any, **kw: Any) -> BatchSpec:
    fields: dict[str, Any] = {
        "experiment_id": exp.id,
        "max_agents": {"Guard": 2, "Prisoner": 2},
        "total_messages": 12,
        "days": 2,
        "model_sets": [ModelSet(default=exp.models[0])],  # with the experiment's latency
    }
    fields.update(kw)
    return BatchSpec(**fields)


def shown(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def assert_complete(store: Any, batch_id: str) -> None:
    """Every conversation done with exactly its budget and dense, unique seqs."""
    convs = await store.conversations.list(ConversationFilter(batch_id=batch_id))
    assert convs
    for conv in convs:
        assert conv.status is Status.done, (conv.status, conv.error)
        messages = await store.messages.list(conv.id)
        assert [m.seq for m in messages] == list(range(len(messages)))
        assert sum(m.kind in AGENT_KINDS for m in messages) == conv.budget == conv.messages_done


async def test_cancel_a_running_batch_and_resume_it(store: Any, runs_app: Any) -> None:
    exp = await store.experiments.create(runs_experiment(latency_ms=80))
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        registry = runs_of(app)
        batch = await registry.create(exp, spec_for(exp, total_messages=16))
        registry.run(batch.id)
        await app.push_screen(RunMonitorScreen(batch.id))
        monitor = app.screen
        await wait_until(pilot, lambda: monitor.loads >= 1, what="monitor")
        run = registry.runs[batch.id]
        await wait_until(pilot, lambda: run.messages_done >= 4, what="some messages")
        await wait_until(
            pilot, lambda: "running" in shown(monitor, "#monitor-summary"), what="running"
        )
        assert "ETA" in shown(monitor, "#monitor-summary")

        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
        await pilot.press("y")
        await wait_batch(pilot, batch.id, (Status.cancelled,))
        stored = await store.batches.get(batch.id)
        assert stored is not None and stored.status is Status.cancelled
        convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
        assert any(c.status is Status.cancelled for c in convs)
        assert sum(c.messages_done for c in convs) < sum(c.budget for c in convs)
        before = {c.id: await store.messages.list(c.id) for c in convs}
        assert sum(len(ms) for ms in before.values()) > 0
        await wait_until(
            pilot,
            lambda: (
                "cancelled" in shown(monitor, "#monitor-summary")
                and "r resumes it" in shown(monitor, "#monitor-summary")
            ),
            what="the cancelled summary",
        )

        await pilot.press("r")
        await wait_until(pilot, lambda: registry.is_running(batch.id), what="resumed")
        await wait_batch(pilot, batch.id)
        await assert_complete(store, batch.id)
        for cid, messages in before.items():  # what was stored before the cancel is unchanged
            after = await store.messages.list(cid)
            assert [(m.seq, m.content) for m in after[: len(messages)]] == [
                (m.seq, m.content) for m in messages
            ]
        await wait_until(
            pilot, lambda: "4/4 done" in shown(monitor, "#monitor-summary"), what="done"
        )


async def test_an_unfinished_batch_of_an_earlier_session_is_listed_and_resumed(
    store: Any, runs_app: Any
) -> None:
    exp = await store.experiments.create(runs_experiment())
    # An earlier session stored the batch, started it and died: its status is still running.
    earlier = BatchRunner(store, backends=None)
    batch = await earlier.start(exp, spec_for(exp, total_messages=4), owner="alice")
    await store.batches.set_fields(batch.id, status=Status.running)
    done = await earlier.start(exp, spec_for(exp, max_agents={}), owner="alice")
    await store.batches.set_fields(done.id, status=Status.done)

    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        await pilot.press("r")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, BatchListScreen) and app.screen.loads >= 1,
            what="the batch list",
        )
        listing = app.screen
        table = listing.query_one("#monitor-batches", DataTable)
        rows = {str(table.get_row_at(i)[0]): table.get_row_at(i) for i in range(table.row_count)}
        assert set(rows) == {batch.id[:8], done.id[:8]}
        assert str(rows[batch.id[:8]][2]) == "interrupted"
        assert str(rows[done.id[:8]][2]) == "done"
        table.move_cursor(row=[r.batch.id for r in listing.batch_rows].index(batch.id))
        await wait_until(
            pilot,
            lambda: "r resumes it" in shown(listing, "#monitor-batch-details"),
            what="the details",
        )

        await pilot.press("r")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, RunMonitorScreen) and app.screen.batch_id == batch.id,
            what="the batch's monitor",
        )
        await wait_batch(pilot, batch.id)
        await assert_complete(store, batch.id)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is listing, what="back to the list")
        await wait_until(
            pilot, lambda: listed_status(listing, batch.id) == "done", what="the list updated"
        )


async def test_a_batch_another_live_runner_holds_is_listed_running_and_not_resumed_here(
    store: Any, runs_app: Any
) -> None:
    exp = await store.experiments.create(runs_experiment())
    batch = await BatchRunner(store, backends=None).start(exp, spec_for(exp), owner="alice")
    await store.batches.set_fields(
        batch.id, status=Status.running, runner="another-host:4242/1", heartbeat_at=utcnow()
    )
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        await pilot.press("r")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, BatchListScreen) and app.screen.loads >= 1,
            what="the batch list",
        )
        listing = app.screen
        assert listed_status(listing, batch.id) == "running"
        await pilot.press("r")
        # the refusal is the answer to the key: once it shows, the key has been handled
        await wait_until(
            pilot,
            lambda: any("another-host:4242/1" in n.message for n in app._notifications),
            what="the refusal",
        )
        assert app.screen is listing  # not opened, not run
        assert not runs_of(app).is_running(batch.id)
        convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
        assert all(c.status is Status.pending for c in convs)


def listed_status(listing: BatchListScreen, batch_id: str) -> str:
    table = listing.query_one("#monitor-batches", DataTable)
    index = [r.batch.id for r in listing.batch_rows].index(batch_id)
    return str(table.get_row_at(index)[2])


async def test_leaving_the_monitor_keeps_the_batch_running_and_coming_back_shows_it(
    store: Any, runs_app: Any
) -> None:
    exp = await store.experiments.create(runs_experiment(latency_ms=200))
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        library = await wait_library(pilot)
        registry = runs_of(app)
        batch = await registry.create(exp, spec_for(exp, total_messages=16))
        registry.run(batch.id)
        await app.push_screen(RunMonitorScreen(batch.id))
        monitor = app.screen
        await wait_until(pilot, lambda: monitor.loads >= 1, what="monitor")

        # The live transcript of the highlighted conversation grows as messages are stored.
        transcript = monitor.query_one("#monitor-transcript", TranscriptView)
        await wait_until(pilot, lambda: len(transcript.messages) >= 2, what="live messages")
        seen = len(transcript.messages)
        await wait_until(pilot, lambda: len(transcript.messages) > seen, what="more messages")
        seqs = [m.seq for m in transcript.messages]
        assert seqs == list(range(len(seqs)))  # in order, none twice

        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is library, what="library")
        run = registry.runs[batch.id]
        done_when_left = run.messages_done
        assert registry.is_running(batch.id)
        await wait_until(pilot, lambda: run.messages_done > done_when_left + 4, what="progress")

        await pilot.press("r")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, BatchListScreen) and app.screen.loads >= 1,
            what="the batch list",
        )
        listing = app.screen
        assert listing.selected_batch_id() == batch.id  # the running batch comes first
        table = listing.query_one("#monitor-batches", DataTable)
        assert str(table.get_row_at(0)[2]) == "running"
        depth = len(app.screen_stack)
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, RunMonitorScreen) and app.screen.batch_id == batch.id,
            what="the batch again",
        )
        await settle(pilot, workers=False)  # (the batch runs on)
        assert len(app.screen_stack) == depth + 1  # opened once
        again = app.screen
        await wait_until(pilot, lambda: again.loads >= 1, what="loaded")
        assert again.run is run  # the same live state, not a copy from the database
        await wait_batch(pilot, batch.id)
        await wait_until(pilot, lambda: "4/4 done" in shown(again, "#monitor-summary"), what="done")
        await assert_complete(store, batch.id)
        convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
        assert sum(c.tokens.total_tokens for c in convs) == sum(r.tokens for r in run.rows.values())


async def test_escape_in_the_speaker_dialog_cancels_the_batch_and_resume_asks_again(
    store: Any, runs_app: Any
) -> None:
    exp = await store.experiments.create(runs_experiment())
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        registry = runs_of(app)
        spec = spec_for(
            exp,
            max_agents={},
            total_messages=2,
            days=1,
            speaker_selection=SpeakerSelection.manual,
        )
        batch = await registry.create(exp, spec)
        registry.run(batch.id)
        await app.push_screen(RunMonitorScreen(batch.id))
        await wait_until(pilot, lambda: isinstance(app.screen, SpeakerDialog), what="dialog")
        assert app.screen.question.turn == 1
        await pilot.press("2")  # Prisoner 1 speaks first
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, SpeakerDialog) and app.screen.question.turn == 2,
            what="the second question",
        )
        await pilot.press("escape")
        await wait_batch(pilot, batch.id, (Status.cancelled,))
        assert isinstance(app.screen, RunMonitorScreen)

        await pilot.press("r")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, SpeakerDialog) and app.screen.question.turn == 2,
            what="asked again for turn 2 (turn 1 is stored)",
        )
        await pilot.press("1")
        await wait_batch(pilot, batch.id)
        (conv,) = await store.conversations.list(ConversationFilter(batch_id=batch.id))
        spoken = [m.speaker for m in await store.messages.list(conv.id) if m.kind in AGENT_KINDS]
        assert spoken == ["Prisoner 1", "Guard 1"]
        assert not isinstance(app.screen, LibraryScreen)


async def test_quitting_while_a_batch_runs_asks_first_and_stay_keeps_it_running(
    store: Any, runs_app: Any
) -> None:
    exp = await store.experiments.create(runs_experiment(latency_ms=200))
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        registry = runs_of(app)
        batch = await registry.create(exp, spec_for(exp, total_messages=16))
        registry.run(batch.id)
        await wait_until(pilot, lambda: registry.is_running(batch.id), what="the run")
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question")
        assert app.screen.title_text == "Stop the running batches and quit?"  # not "saving"
        assert "1 batch is running in this app: quitting stops it" in app.screen.message
        assert "simulator resume" in app.screen.message
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, LibraryScreen), what="library")
        assert app.is_running and registry.is_running(batch.id)
        run = registry.runs[batch.id]
        done = run.messages_done
        await wait_until(pilot, lambda: run.messages_done > done, what="more progress")
        await registry.runner.cancel(batch.id)
        await wait_until(pilot, lambda: not registry.is_running(batch.id), what="the cancel")
        # With nothing running and nothing unsaved, ctrl+q quits at once.
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: not app.is_running, what="the app to exit")


async def test_a_long_list_is_filled_whole_in_order_and_its_first_conversation_selected(
    store: Any, runs_app: Any
) -> None:
    """A batch of more than ``FILL_CHUNK`` conversations is put in the table in chunks (the loop
    free between them): every conversation is listed once, in cell order, and the first one is
    selected and shown, as with a short list."""
    from simulator.tui.screens.monitor import FILL_CHUNK

    exp = await store.experiments.create(runs_experiment())
    repeats = FILL_CHUNK // 2 + 20  # 4 cells (2 x 2 agents) per repeat: over two chunks
    batch = await BatchRunner(store, backends=None).start(
        exp, spec_for(exp, repeats=repeats, total_messages=2, days=1), owner="alice"
    )
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    assert len(convs) > 2 * FILL_CHUNK
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        await app.push_screen(RunMonitorScreen(batch.id))
        monitor = app.screen
        table = monitor.query_one("#monitor-conversations", DataTable)
        await wait_until(
            pilot,
            lambda: table.row_count == len(convs) and monitor.selected is not None,
            what="the whole list and a selection",
        )
        keys = [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(len(convs))]
        assert keys == [r.id for r in monitor.run.ordered]
        assert len(set(keys)) == len(convs)
        assert monitor.selected == keys[0]
        assert keys[0][:8] in shown(monitor, "#monitor-selected")
