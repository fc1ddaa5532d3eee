"""The dialogue kind as the app sees it (``simulator.scenarios.kind.Kind``)."""

from __future__ import annotations

from typing import Any

from simulator.engine.kinds import DAY, Tally
from simulator.scenarios.kind import Kind


async def _run(
    store: Any, backends: Any, conversation: Any, experiment: Any, journal: Any, bus: Any
) -> None:
    from simulator.scenarios.dialogue.runner import run_dialogue

    await run_dialogue(store, backends, conversation, experiment, journal, bus)


def _estimate(experiment: Any, cell: Any, tally: Tally) -> None:
    from simulator.scenarios.dialogue.estimate import estimate_dialogue

    estimate_dialogue(experiment, cell, tally)


async def _interview(*args: Any) -> Any:
    from simulator.scenarios.dialogue.interview import interview_context

    return await interview_context(*args)


KIND = Kind(
    name="dialogue",
    title="Dialogue",
    summary="free conversation among roles over days, with a summary after each day",
    clock=DAY,
    run=_run,
    estimate=_estimate,
    interview=_interview,
)

__all__ = ["KIND"]
