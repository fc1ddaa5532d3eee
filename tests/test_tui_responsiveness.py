"""The UI stays responsive while a batch runs: a 10 ms timer of the app keeps ticking (largest gap
between two ticks under 100 ms) from the moment a 50-conversation dryrun batch is confirmed in
batch setup: while it is stored and prepared, the run monitor opens, and the batch runs to the
end with the monitor repainting live.

The dryrun model answers at once, so the batch keeps the event loop as busy as it can be: what
the timer measures is how long the engine, the database driver and the UI ever hold the loop in
one go (and whether anything slow, such as a first import or a full garbage collection of the
app's heap, happens on it).

Two bounds: every gap stays under 100 ms (the acceptance figure), from the confirmation (the batch
and its 50 conversations stored and prepared while the run starts) through the run watched in
the monitor, except the few gaps around the moment the monitor screen first appears: a new
screen's first layout and paint is a one-off cost of any screen switch in Textual that reaches
60-100 ms on a loaded 2-core machine, so those are held to 250 ms.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from simulator.db.store import ConversationFilter
from simulator.domain import Status
from simulator.tui.screens.batch_setup import BatchSetupScreen
from simulator.tui.screens.dialogs import ConfirmDialog
from simulator.tui.screens.monitor import RunMonitorScreen
from simulator.tui.widgets.transcript import TranscriptView
from tests.plugins.tui import wait_library, wait_until
from tests.plugins.tui_runs import fill, runs_experiment, wait_batch

TICK_S = 0.01
MAX_GAP_S = 0.1
MAX_SWITCH_GAP_S = 0.25


async def test_a_10ms_timer_keeps_ticking_while_50_conversations_run(
    store: Any, runs_app: Any
) -> None:
    await store.experiments.create(runs_experiment())
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BatchSetupScreen), what="setup")
        setup = app.screen
        # Opening the setup screen prepares the first run in a thread (slow imports, see
        # simulator.tui.runs.warm_up); the user fills the form meanwhile.
        await wait_until(
            pilot,
            lambda: (
                setup.checks >= 1
                and all(w.is_finished for w in app.workers if w.group == "batch-setup-warm-up")
            ),
            what="the warm-up",
        )

        await fill(pilot, setup, {"total": "40", "days": "2", "max-0": "5", "max-1": "5"})
        await fill(pilot, setup, {"repeats": "2"})
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
        assert "50 conversations" in app.screen.message
        await pilot.pause(0.2)

        # From the confirmation (the batch is stored, its conversations prepared, the monitor
        # opens, the batch runs) to the end of the run.
        ticks: list[float] = []
        on_monitor: list[bool] = []

        def tick() -> None:
            ticks.append(time.perf_counter())
            on_monitor.append(isinstance(app.screen, RunMonitorScreen))

        timer = app.set_interval(TICK_S, tick)
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, RunMonitorScreen), what="monitor")
        monitor = app.screen
        assert isinstance(monitor, RunMonitorScreen) and monitor.batch_id is not None
        await wait_batch(pilot, monitor.batch_id, within=90)
        await pilot.pause(0.3)  # the last repaints
        timer.stop()

        # The screen switch: the gaps ending at the first ticks with the monitor on screen (its
        # first layout and paint happen there). Every other gap is the run's.
        first = on_monitor.index(True)
        switching = set(range(first - 1, first + 3))
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        assert len(gaps) > 100
        run = [g for i, g in enumerate(gaps) if i not in switching]
        switch = [g for i, g in enumerate(gaps) if i in switching]
        worst = [round(g, 3) for g in sorted(run)[-5:]]
        assert max(run) < MAX_GAP_S, f"largest gaps between ticks during the run (s): {worst}"
        worst_switch = [round(g, 3) for g in sorted(switch)[-3:]]
        assert max(switch) < MAX_SWITCH_GAP_S, f"largest gaps opening the monitor: {worst_switch}"

        # The monitor followed the run live and ended showing all of it.
        assert monitor.flushes > 3
        convs = await store.conversations.list(ConversationFilter(batch_id=monitor.batch_id))
        assert len(convs) == 50 and all(c.status is Status.done for c in convs)
        await wait_until(
            pilot,
            lambda: "50/50 done" in str(monitor.query_one("#monitor-summary").render()),
            what="the summary",
        )
        assert monitor.query_one("#monitor-transcript", TranscriptView).messages
