"""Shared pytest fixtures of the annotations tests (registered in tests/conftest.py).

- ``dialogue_study(store)``: a finished dryrun batch of a two-role prison experiment with a
  ``goal`` factor (two conversations, one per goal, 1v1, six agent messages in one day).
- ``moderation_server``: a fresh local server speaking OpenAI's chat and moderation APIs.
- ``Recorder``: wraps ``Backends`` and keeps every request sent (in-process checks of what a
  model would receive).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from simulator.domain import BatchSpec, Conversation, Experiment, ModelRef, ModelSet, Provider
from tests.plugins.batches import make_prison_experiment
from tests.servers import FakeModerationServer

DRYRUN = ModelRef(provider=Provider.dryrun, model="dryrun")
RUBRIC = "simulator/examples/rubrics/persuasion.yaml"


@dataclass
class DialogueStudy:
    experiment: Experiment
    batch_id: str
    conversations: list[Conversation]


async def run_dialogue_study(
    store: Any,
    *,
    model: ModelRef = DRYRUN,
    total_messages: int = 6,
    days: int = 1,
    repeats: int = 1,
    backends: Any = None,
    **experiment_fields: Any,
) -> DialogueStudy:
    """A finished batch of the prison experiment with a goal factor (1v1, one conversation per
    goal and repeat)."""
    from simulator.db.store import ConversationFilter
    from simulator.engine.batch import BatchRunner
    from simulator.llm.registry import Backends

    exp = await store.experiments.create(
        make_prison_experiment(with_goal_factor=True, owner="alice", **experiment_fields)
    )
    spec = BatchSpec(
        experiment_id=exp.id,
        model_sets=[ModelSet(default=model)],
        total_messages=total_messages,
        days=days,
        repeats=repeats,
        concurrency=4,
    )
    own = backends is None
    backends = backends or Backends(max_attempts=1, backoff_s=0.0)
    try:
        runner = BatchRunner(store, backends, None, poll_s=0.05)
        batch = await runner.start(exp, spec, owner="alice")
        await runner.run(batch.id)
    finally:
        if own:
            await backends.aclose()
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    return DialogueStudy(exp, batch.id, sorted(convs, key=lambda c: c.cell_index))


@pytest.fixture
async def dialogue_study(store: Any) -> DialogueStudy:
    return await run_dialogue_study(store)


@pytest.fixture
def moderation_server() -> Iterator[FakeModerationServer]:
    with FakeModerationServer() as server:
        yield server


class Recorder:
    """Backends that remember every request (and answer through the real ones)."""

    def __init__(self, backends: Any) -> None:
        self.backends = backends
        self.requests: list[Any] = []
        self.on_event = getattr(backends, "on_event", None)

    async def chat(self, request: Any) -> Any:
        self.requests.append(request)
        return await self.backends.chat(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backends, name)
