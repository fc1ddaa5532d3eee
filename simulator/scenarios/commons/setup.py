"""Building commons experiments, cells and runs (for the CLI, the TUI and tests)."""

from __future__ import annotations

from typing import Any

from simulator.domain import (
    Conversation,
    Experiment,
    ExperimentKind,
    GridCell,
    ModelRef,
    ModelSet,
    Provider,
    Role,
)
from simulator.domain.errors import NotFoundError
from simulator.scenarios.commons.params import CommonsParams
from simulator.scenarios.commons.state import GameState

ROLE = "Member"


def commons_experiment(
    params: CommonsParams | None = None, *, name: str = "Commons", owner: str = ""
) -> Experiment:
    """An experiment of kind commons with one role, ``Member`` (members are Member 1, 2, ...)."""
    return Experiment(
        name=name,
        kind=ExperimentKind.commons,
        starting_message="The commons game begins.",
        roles=[Role(name=ROLE)],
        game=(params or CommonsParams()).model_dump(mode="json"),
        owner=owner,
    )


def scripted_model(policy: str = "commons.honest", **options: Any) -> ModelRef:
    """A dryrun member (or monitor) driven by a scripted policy (see scripted.py)."""
    return ModelRef(provider=Provider.dryrun, model="dryrun", options={"policy": policy, **options})


def commons_cell(
    members: int = 4, *, model: ModelRef | None = None, seed: int = 0, rounds: int | None = None
) -> GridCell:
    return GridCell(
        counts={ROLE: members},
        days=1,
        total_messages=1,
        models=ModelSet(default=model or scripted_model()),
        seed=seed,
        rounds=rounds,
    )


async def start_run(
    store: Any,
    experiment: Experiment,
    cell: GridCell,
    *,
    owner: str = "",
    params: CommonsParams | None = None,
) -> Conversation:
    """Store the experiment (when new) and a pending conversation for ``cell``; ``params``
    (stored as ``Conversation.game``) replaces the experiment's parameters for this run only."""
    from simulator.engine.conversation import build_conversation

    if await store.experiments.get(experiment.id) is None:
        await store.experiments.create(experiment)
    conversation = build_conversation(experiment, cell, owner=owner)
    if params is not None:
        conversation = conversation.model_copy(update={"game": params.model_dump(mode="json")})
    return await store.conversations.create(conversation)


async def load_state(store: Any, conversation_id: str) -> GameState:
    """The latest snapshot of a commons run."""
    latest = await store.states.latest(conversation_id)
    if latest is None:
        raise NotFoundError(f"Conversation {conversation_id} has no commons snapshot yet.")
    return GameState.from_snapshot(latest[1])
