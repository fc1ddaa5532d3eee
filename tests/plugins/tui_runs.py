"""Shared pytest fixtures of the tui runs tests (registered in tests/conftest.py): experiments
for batch setup and the run monitor, the app on the test store, and waiting helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from simulator.domain import Experiment, ModelRef, Provider, Status
from simulator.settings import Settings
from tests.plugins.tui import sample_experiment, wait_until
from tests.plugins.waiting import DEADLINE_S


def runs_experiment(
    name: str = "Prison runs",
    *,
    experiment_id: str = "f" * 32,
    latency_ms: int = 0,
    factors: bool = False,
    models: list[ModelRef] | None = None,
) -> Experiment:
    """The tui sample experiment (Guard, Prisoner), without factors unless asked, with a dryrun
    model that waits ``latency_ms`` per call (so a batch runs long enough to cancel)."""
    exp = sample_experiment(name, owner="alice", experiment_id=experiment_id)
    options: dict[str, Any] = {"latency_ms": latency_ms} if latency_ms else {}
    refs = models or [ModelRef(provider=Provider.dryrun, model="dryrun", options=options)]
    update: dict[str, Any] = {"models": refs}
    if not factors:
        update["factors"] = []
    return exp.model_copy(update=update)


@pytest.fixture
def runs_app(store: Any, tui_settings: Settings) -> Callable[..., Any]:
    """``runs_app()``: the app on the test store as alice (no example offer)."""
    from simulator.tui.app import SimulatorApp  # Textual only for the tests that use it

    def make(user: str = "alice") -> SimulatorApp:
        return SimulatorApp(tui_settings, store=store, user=user, offer_example=False)

    return make


async def wait_services(pilot: Any) -> None:
    await wait_until(pilot, lambda: pilot.app.services is not None, what="services")


async def fill(pilot: Any, screen: Any, values: dict[str, str]) -> None:
    """Type values into the batch setup form's inputs (by key: total, days, max-0, ...)."""
    from textual.widgets import Input

    for key, value in values.items():
        screen.query_one(f"#in-{key}", Input).value = value
    await settle_setup(pilot, screen)


async def settle_setup(pilot: Any, screen: Any) -> None:
    """Wait until the setup screen has re-checked the form after the last change."""
    checks = screen.checks
    await wait_until(
        pilot,
        lambda: screen.checks > checks and not screen._recheck_timer_pending(),
        what="the form check",
    )


async def wait_batch(
    pilot: Any,
    batch_id: str,
    statuses: tuple[Status, ...] = (Status.done,),
    within: float = DEADLINE_S,
) -> Any:
    """Wait until the app's registry has the batch stopped in one of ``statuses``."""
    from simulator.tui.runs import runs_of

    registry = runs_of(pilot.app)

    def ended() -> bool:
        run = registry.runs.get(batch_id)
        return (
            run is not None and not registry.is_running(batch_id) and run.batch.status in statuses
        )

    await wait_until(pilot, ended, within=within, what=f"batch {batch_id} {statuses}")
    return registry.runs[batch_id]


def conversation_row(monitor: Any, index: int) -> list[str]:
    """The columns of a conversation line of the run monitor, as displayed (fixed widths)."""
    from textual.widgets import DataTable

    from simulator.tui.screens.monitor import COLUMN_GAP, CONVERSATION_COLUMNS

    table = monitor.query_one("#monitor-conversations", DataTable)
    line = str(table.get_row_at(index)[0])
    out, pos = [], 0
    for _, width, _ in CONVERSATION_COLUMNS:
        out.append(line[pos : pos + width].strip())
        pos += width + len(COLUMN_GAP)
    return out
