"""Batch setup through the real app on the embedded server with dryrun: the grid preview and
totals, invalid choices explained in place, a 2x2 grid over 2 days launched and watched to the
end in the monitor, and the manual speaker dialog."""

from __future__ import annotations

from collections import Counter
from typing import Any

from textual.widgets import Button, Checkbox, DataTable, Static

from simulator.db.store import ConversationFilter
from simulator.domain import (
    ExperimentKind,
    MessageKind,
    Status,
)
from simulator.engine.budget import day_budgets
from simulator.tui.runs import runs_of
from simulator.tui.screens.batch_setup import BatchSetupScreen
from simulator.tui.screens.dialogs import ConfirmDialog
from simulator.tui.screens.monitor import RunMonitorScreen
from simulator.tui.screens.speaker_dialog import SpeakerDialog
from simulator.tui.widgets.transcript import TranscriptView
from tests.plugins.tui import wait_library, wait_until
from tests.plugins.tui_runs import (
    conversation_row,
    fill,
    runs_experiment,
    settle_setup,
    wait_batch,
)

AGENT_KINDS = (MessageKind.utterance, MessageKind.action)


def shown(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_setup_previews_the_grid_and_explains_invalid_choices(
    store: Any, runs_app: Any
) -> None:
    exp = await store.experiments.create(runs_experiment(factors=True))
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        library = await wait_library(pilot)
        assert library.selected_id() == exp.id
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BatchSetupScreen), what="setup")
        screen = app.screen
        await wait_until(pilot, lambda: screen.checks >= 1, what="first check")
        table = screen.query_one("#setup-grid", DataTable)
        # Defaults: 1v1, 1 day, both levels of the goal factor.
        assert table.row_count == 2
        assert "2 conversations" in shown(screen, "#setup-totals")
        assert "$0.00 (dryrun)" in shown(screen, "#setup-totals")

        await fill(pilot, screen, {"max-0": "3", "max-1": "2", "days": "2", "repeats": "2"})
        # 6 count combinations x 2 levels x 1 day count x 2 repeats
        assert table.row_count == 24
        assert "24 conversations" in shown(screen, "#setup-totals")
        screen.query_one("#every-day-count", Checkbox).value = True
        await settle_setup(pilot, screen)
        assert table.row_count == 48
        screen.query_one("#every-combination", Checkbox).value = False
        await settle_setup(pilot, screen)
        assert table.row_count == 8  # only 3v2, x 2 levels x 2 day counts x 2 repeats
        assert str(table.get_row_at(0)[0]).split()[:3] == ["1", "3v2", "1"]  # #, agents, days

        # Invalid: more days than messages; a bad maximum. Explained under the fields.
        await fill(pilot, screen, {"total": "3", "days": "4", "max-1": "0"})
        assert "at most the total messages (3)" in shown(screen, "#err-days")
        assert "must be a whole number from 1 to 100, not 0" in shown(screen, "#err-max-1")
        assert screen.query_one("#err-days").has_class("shown")
        assert screen.query_one("#setup-start", Button).disabled
        assert table.row_count == 0
        assert "Fix the fields" in shown(screen, "#setup-totals")
        await pilot.press("ctrl+s")  # refused, with a toast instead of a dialog
        assert not isinstance(app.screen, ConfirmDialog)

        # A maximum of 99,999 is refused at once with the bound (it once froze the app while
        # listing 10^10 agent-count combinations).
        await fill(pilot, screen, {"days": "3", "max-1": "99999"})
        assert "from 1 to 100, not 99999" in shown(screen, "#err-max-1")
        assert screen.query_one("#setup-start", Button).disabled

        await fill(pilot, screen, {"days": "3", "max-1": "1"})
        assert not screen.query_one("#err-days").has_class("shown")
        assert not screen.query_one("#setup-start", Button).disabled
        assert await store.batches.list() == []  # nothing is stored before confirming
        await pilot.press("escape")
        await wait_library(pilot)


async def test_launch_a_2x2_grid_with_2_days_and_watch_it_finish(store: Any, runs_app: Any) -> None:
    exp = await store.experiments.create(runs_experiment())
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BatchSetupScreen), what="setup")
        setup = app.screen
        await wait_until(pilot, lambda: setup.checks >= 1, what="first check")
        await fill(pilot, setup, {"total": "6", "days": "2", "max-0": "2", "max-1": "2"})
        assert setup.query_one("#setup-grid", DataTable).row_count == 4

        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
        assert "4 conversations" in app.screen.message
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, RunMonitorScreen), what="monitor")
        monitor = app.screen
        batch_id = monitor.batch_id
        assert batch_id is not None
        run = await wait_batch(pilot, batch_id)
        await wait_until(
            pilot,
            lambda: monitor.flushes > 0 and "4/4 done" in shown(monitor, "#monitor-summary"),
            what="the summary of a finished batch",
        )
        await wait_until(
            pilot,
            lambda: statuses(monitor) == ["done"] * 4,
            what="rows done",
        )
        table = monitor.query_one("#monitor-conversations", DataTable)
        assert table.row_count == 4
        rows = [conversation_row(monitor, i) for i in range(4)]
        assert [r[1] for r in rows] == ["1v1, 2 days", "1v2, 2 days", "2v1, 2 days", "2v2, 2 days"]
        assert [r[4] for r in rows] == ["8/8"] * 4  # 6 agent turns and 2 summaries each
        assert [r[6] for r in rows] == ["0"] * 4
        assert run.fraction() == 1.0

        convs = await store.conversations.list(ConversationFilter(batch_id=batch_id))
        assert len(convs) == 4
        for conv in convs:
            assert conv.status is Status.done and conv.experiment_id == exp.id
            messages = await store.messages.list(conv.id)
            agent = Counter(m.day for m in messages if m.kind in AGENT_KINDS)
            assert [agent[1], agent[2]] == day_budgets(6, 2)
            assert sum(m.kind is MessageKind.summary for m in messages) == 2
            assert rows[conv.cell_index][5] == f"{conv.tokens.total_tokens:,}"
        stored = await store.batches.get(batch_id)
        assert stored is not None and stored.status is Status.done and stored.owner == "alice"

        # The transcript shows the highlighted (first) conversation, every message of it.
        first = min(convs, key=lambda c: c.cell_index)
        expected = [m.seq for m in await store.messages.list(first.id)]
        transcript = monitor.query_one("#monitor-transcript", TranscriptView)
        await wait_until(
            pilot, lambda: [m.seq for m in transcript.messages] == expected, what="transcript"
        )


def statuses(monitor: RunMonitorScreen) -> list[str]:
    table = monitor.query_one("#monitor-conversations", DataTable)
    return [conversation_row(monitor, i)[3] for i in range(table.row_count)]


async def test_manual_speaker_dialog_decides_who_speaks(store: Any, runs_app: Any) -> None:
    await store.experiments.create(runs_experiment())
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BatchSetupScreen), what="setup")
        setup = app.screen
        await wait_until(pilot, lambda: setup.checks >= 1, what="first check")
        setup.query_one("#speaker-round_robin", Checkbox).value = False
        setup.query_one("#speaker-manual", Checkbox).value = True
        await fill(pilot, setup, {"total": "3"})
        assert "a dialog asks you" in shown(setup, "#speaker-note")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
        await pilot.press("y")

        picks = ["Prisoner 1", "Prisoner 1", "Guard 1"]
        for turn, name in enumerate(picks, start=1):
            await wait_until(
                pilot,
                lambda: (
                    isinstance(app.screen, SpeakerDialog)
                    and app.screen.question.turn == turn  # noqa: B023
                    # its buttons laid out (a click needs a place on screen)
                    and app.screen.query_one("#speaker-2").region.width > 0
                ),
                what=f"the speaker dialog of turn {turn}",
            )
            dialog = app.screen
            assert dialog.question.candidates == ["Guard 1", "Prisoner 1"]
            assert dialog.question.day == 1
            if turn == 1:
                await pilot.click("#speaker-2")  # a button
            else:
                await pilot.press(str(dialog.question.candidates.index(name) + 1))  # its key
            await wait_until(pilot, lambda: app.screen is not dialog, what=f"answer {turn}")  # noqa: B023
        await wait_until(pilot, lambda: isinstance(app.screen, RunMonitorScreen), what="monitor")
        batch_id = app.screen.batch_id
        await wait_batch(pilot, batch_id)
        (conv,) = await store.conversations.list(ConversationFilter(batch_id=batch_id))
        messages = await store.messages.list(conv.id)
        spoken = [m.speaker for m in messages if m.kind is MessageKind.utterance]
        assert spoken == picks
        assert runs_of(app).runs[batch_id].batch.status is Status.done


async def test_setup_of_a_game_asks_for_rounds_instead_of_days(store: Any, runs_app: Any) -> None:
    exp = await store.experiments.create(
        runs_experiment("Lake", experiment_id="c" * 32).model_copy(
            update={"kind": ExperimentKind.commons}
        )
    )
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        library = await wait_library(pilot)
        assert library.selected_id() == exp.id
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BatchSetupScreen), what="setup")
        screen = app.screen
        await wait_until(pilot, lambda: screen.checks >= 1, what="first check")
        assert not screen.query("#in-days") and not screen.query("#in-total")
        await fill(pilot, screen, {"rounds": "4", "max-0": "2"})
        assert screen.plan.ok and screen.plan.spec is not None and screen.plan.spec.rounds == 4
        assert screen.query_one("#setup-grid", DataTable).row_count == 2
        assert "2 conversations" in shown(screen, "#setup-totals")
