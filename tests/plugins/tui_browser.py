"""Shared pytest fixtures of the tui browser tests (registered in tests/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from simulator.db.store import ConversationFilter
from simulator.domain import (
    Agent,
    Batch,
    BatchSpec,
    Conversation,
    Experiment,
    GridCell,
    Message,
    MessageKind,
    ModelRef,
    ModelSet,
    Provider,
    Role,
    Status,
    TokenUsage,
)
from tests.plugins.batches import make_prison_experiment
from tests.plugins.tui import FIXED_TIME, sample_experiment

DRYRUN = ModelRef(provider=Provider.dryrun, model="dryrun")
FIVE_ROLES = ["Mayor", "Baker", "Smith", "Farmer", "Priest"]


@dataclass
class BrowserBatch:
    experiment: Experiment
    batch: Batch
    conversations: list[Conversation]


async def run_browser_batch(store: Any, owner: str = "alice") -> BrowserBatch:
    """A finished dryrun batch of the prison experiment: agents 1v1, 1v2, 2v1, 2v2, two days,
    six agent messages each (so every conversation has two summaries)."""
    from simulator.engine.batch import BatchRunner
    from simulator.llm.registry import Backends

    exp = await store.experiments.create(make_prison_experiment(name="Prison browser", owner=owner))
    spec = BatchSpec(
        experiment_id=exp.id,
        max_agents={"Guard": 2, "Prisoner": 2},
        days=2,
        total_messages=6,
        model_sets=[ModelSet(default=DRYRUN)],
        concurrency=4,
    )
    runner = BatchRunner(store, Backends(max_attempts=1, backoff_s=0.0), None, poll_s=0.05)
    batch = await runner.start(exp, spec, owner=owner)
    await runner.run(batch.id)
    conversations = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    return BrowserBatch(exp, batch, conversations)


@pytest.fixture
async def browser_batch(store: Any) -> BrowserBatch:
    return await run_browser_batch(store)


def roles_experiment(
    roles: list[str], *, name: str = "Village", experiment_id: str = "f" * 32
) -> Experiment:
    """An experiment with these roles and fixed id and timestamps (for snapshots)."""
    base = sample_experiment(name, experiment_id=experiment_id)
    return base.model_copy(update={"roles": [Role(name=r) for r in roles], "factors": []})


def fixed_conversation(
    experiment: Experiment,
    *,
    conversation_id: str = "c" * 32,
    cell_index: int = 0,
    owner: str = "alice",
    days: int = 2,
) -> tuple[Conversation, list[Message]]:
    """A finished conversation with fixed text, ids and timestamps: one agent per role, a kickoff,
    each agent speaking once a day (one private message on day 1), a summary per day."""
    roles = [r.name for r in experiment.roles]
    cell = GridCell(
        counts={r: 1 for r in roles},
        days=days,
        total_messages=len(roles) * days,
        models=ModelSet(default=DRYRUN),
        seed=7,
    )
    agents = [
        Agent(name=f"{r} 1", role=r, model=DRYRUN, system_prompt=f"You are the {r.lower()}.")
        for r in roles
    ]
    messages: list[Message] = []

    def add(**fields: Any) -> None:
        messages.append(
            Message(
                conversation_id=conversation_id,
                seq=len(messages),
                created_at=FIXED_TIME,
                **fields,
            )
        )

    add(
        day=1,
        turn=0,
        speaker="Moderator",
        role="kickoff",
        kind=MessageKind.kickoff,
        content=experiment.starting_message,
    )
    for day in range(1, days + 1):
        for turn, agent in enumerate(agents, start=1):
            private = day == 1 and turn == 2
            add(
                day=day,
                turn=turn,
                speaker=agent.name,
                role=agent.role,
                content=f"Day {day}: {agent.name} speaks about the {agent.role.lower()}'s work.",
                recipients=[agents[0].name] if private else None,
                model=DRYRUN,
                usage=TokenUsage(prompt_tokens=40, completion_tokens=12),
            )
        add(
            day=day,
            turn=0,
            speaker="Summarizer",
            role="summarizer",
            kind=MessageKind.summary,
            content=f"Summary of day {day}: everyone spoke once.",
            model=DRYRUN,
        )
    conversation = Conversation(
        id=conversation_id,
        experiment_id=experiment.id,
        cell_index=cell_index,
        owner=owner,
        cell=cell,
        status=Status.done,
        seed=7,
        agents=agents,
        kickoff=experiment.starting_message,
        summarizer_prompt="Summarise the day objectively.",
        budget=cell.total_messages,
        messages_done=cell.total_messages,
        tokens=TokenUsage(
            prompt_tokens=40 * len(roles) * days, completion_tokens=12 * len(roles) * days
        ),
        created_at=FIXED_TIME,
        started_at=FIXED_TIME,
        finished_at=FIXED_TIME,
    )
    return conversation, messages


async def store_conversation(
    store: Any, conversation: Conversation, messages: list[Message]
) -> None:
    await store.conversations.create(conversation)
    for message in messages:
        await store.messages.append(message)
