"""The commons game on the engine: the kind runner (through ``JournalDecisions``), resume and
fork.

A run stores, in order: a setup record, snapshot 0, then per round every answer (a structured
action), every public post and direct message, every phase outcome (a system record) and, at the
round's end, a full snapshot (``GameState`` + the journal ``seq`` it is valid at). A resumed run
restarts from the latest snapshot: the journal is positioned at the snapshot's ``seq`` and replays
the stored part of the unfinished round, so no stored call is made twice.
"""

from __future__ import annotations

from typing import Any

from simulator.domain import (
    Conversation,
    Experiment,
    MessageKind,
    ModelRef,
    Status,
    new_id,
)
from simulator.domain.errors import ConfigurationError, NotFoundError
from simulator.engine.decisions import JournalDecisions
from simulator.scenarios.commons.game import CommonsGame, initial_state
from simulator.scenarios.commons.params import CommonsParams, MonitorParams, load_params
from simulator.scenarios.commons.state import GameState


def run_params(experiment: Experiment, conversation: Conversation) -> CommonsParams:
    """The run's own parameters (``Conversation.game``) or else the experiment's; the grid
    cell's ``rounds`` wins."""
    params = load_params(conversation.game if conversation.game is not None else experiment.game)
    if conversation.cell.rounds is not None:
        params = params.model_copy(update={"rounds": conversation.cell.rounds})
    return params


async def run_commons(
    store: Any,
    backends: Any,
    conversation: Conversation,
    experiment: Experiment,
    journal: Any,
    bus: Any,
) -> None:
    """The ``commons`` kind runner (registered with the engine)."""
    latest = await store.states.latest(conversation.id)
    if latest is None:
        params = run_params(experiment, conversation)
        members = [(a.name, a.role, a.model) for a in conversation.agents]
        if len(members) < 1:
            raise ConfigurationError("a commons run needs at least one member")
        state = initial_state(params, members, conversation.seed)
        await journal.record(
            kind=MessageKind.system,
            speaker="system",
            role="system",
            content=f"Commons game: {len(members)} members, {params.rounds} rounds.",
            day=0,
            turn=0,
            data={"event": "setup", "params": state.params},
        )
        await journal.snapshot(0, state.to_snapshot())
    else:
        _, data = latest
        state = GameState.from_snapshot(data)
        params = load_params(state.params)
        journal.seek(int(data["seq"]))  # replay only the unfinished round
    if not state.world.finished and hasattr(backends, "ensure_available"):
        await backends.ensure_available(extra_models(params))
    extra = {a.name: a.system_prompt for a in conversation.agents}
    decisions = JournalDecisions(journal, params.max_reasks)
    game = CommonsGame(params, state, decisions, extra_system=extra)
    await game.play()


def extra_models(params: CommonsParams) -> list[ModelRef]:
    """Models a run uses beyond its grid cell's: members' own models and the monitors'."""
    refs = list(params.member_models.values()) + list(params.monitors.per_member.values())
    if params.monitors.enabled and params.monitors.model is not None:
        refs.append(params.monitors.model)
    return refs


def estimate_calls(experiment: Experiment, cell: Any) -> int:
    """Model calls of one conversation of ``cell`` (the batch estimate's call estimator)."""
    params = load_params(experiment.game)
    rounds = cell.rounds or params.rounds
    return rounds * calls_per_round(params, sum(cell.counts.values()))


def calls_per_round(params: CommonsParams, members: int) -> int:
    """Model calls a round takes at least (no accusation round, no spawn), for estimates:
    discussion turns, a vote, an extraction and an accusation request per member, a memory
    summary every ``memory_every`` rounds; doubled when every answer is monitored."""
    per_member = params.discussion_passes + 3 + 1 / params.memory_every
    calls = members * per_member
    if params.monitors.enabled:
        calls *= 2
    return round(calls)


async def fork_conversation(
    store: Any,
    conversation_id: str,
    at_round: int,
    *,
    rounds: int | None = None,
    monitors: MonitorParams | None = None,
    member_models: dict[str, ModelRef] | None = None,
) -> Conversation:
    """A new conversation sharing rounds 1..``at_round`` with its parent (messages and snapshots
    copied), with changes applied from there: more rounds, monitors, a model for some members.
    Run it with ``run_conversation`` to play on from round ``at_round + 1``."""
    parent = await store.conversations.get(conversation_id)
    if parent is None:
        raise NotFoundError(f"Conversation {conversation_id} does not exist.")
    snapshots = dict(await store.states.list(conversation_id))
    if at_round not in snapshots:
        done = max(snapshots) if snapshots else 0
        raise ConfigurationError(
            f"Conversation {conversation_id} has no snapshot after round {at_round} "
            f"(it completed {done} round(s)); fork at a round from 0 to {done}.",
            title="Cannot fork there",
        )
    base = snapshots[at_round]
    state = GameState.from_snapshot(base)
    params = load_params(state.params)
    update: dict[str, Any] = {}
    if rounds is not None:
        update["rounds"] = rounds
    if monitors is not None:
        update["monitors"] = monitors
    if member_models:
        update["member_models"] = {**params.member_models, **member_models}
    params = CommonsParams.model_validate({**params.model_dump(), **update})
    state.params = params.model_dump(mode="json")
    w = state.world
    w.finished = w.collapsed or not state.alive or w.round >= params.rounds
    agents = [
        a.model_copy(update={"model": member_models[a.name]})
        if member_models and a.name in member_models
        else a
        for a in parent.agents
    ]
    fork = parent.model_copy(
        update={
            "id": new_id(),
            "parent_id": parent.id,
            "forked_at": at_round,
            "status": Status.pending,
            "started_at": None,
            "finished_at": None,
            "error": None,
            "agents": agents,
            "cell": parent.cell.model_copy(update={"rounds": params.rounds}),
            "messages_done": 0,
            "fallbacks": 0,
            "game": state.params,
        }
    )
    fork = await store.conversations.create(fork)
    seq = int(base["seq"])
    for message in await store.messages.list(parent.id):
        if message.seq < seq:
            await store.messages.append(message.model_copy(update={"conversation_id": fork.id}))
    for step in sorted(snapshots):
        if step < at_round:
            await store.states.put(fork.id, step, snapshots[step])
    await store.states.put(fork.id, at_round, {**state.to_snapshot(), "seq": seq})
    return fork
