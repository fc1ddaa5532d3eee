"""Running reputation conversations: the engine runner (resume, snapshots), forks, and the fast
in-process simulation of scripted agents.

The runner is registered for the ``reputation`` kind; ``run_conversation`` / batches call it with
an open journal. Resume: the latest snapshot gives the state after its step and the message seq it
is valid at; the journal walks the stored messages up to that seq, then the partial step is played
again through the journal, which replays every stored decision and asks only for the rest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from simulator.domain import (
    Agent,
    Conversation,
    Experiment,
    ExperimentKind,
    GridCell,
    MessageKind,
    ModelRef,
    ModelSet,
    Status,
    new_id,
)
from simulator.domain.errors import NotFoundError, SimulatorError
from simulator.engine.decisions import InProcessDecisions, JournalDecisions
from simulator.scenarios.reputation.game import (
    GAME_SPEAKER,
    Population,
    ReputationGame,
    initial_state,
)
from simulator.scenarios.reputation.metrics import step_metrics
from simulator.scenarios.reputation.params import ReputationParams, params_for
from simulator.scenarios.reputation.state import GameState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepEnded:
    """Published on the event bus after each stored step (the run monitor shows it live)."""

    conversation_id: str
    batch_id: str | None
    step: int
    steps: int
    metrics: dict[str, Any]


# --------------------------------------------------------------------------- configuration


def _sections_text(sections: list[Any], levels: dict[str, str]) -> str:
    parts = [s.content_for(levels).strip() for s in sorted(sections, key=lambda s: s.position)]
    return "\n\n".join(p for p in parts if p)


def configure(
    experiment: Experiment, cell: GridCell, game: dict[str, Any] | None = None
) -> tuple[ReputationParams, Population]:
    """The parameters and the population of one conversation (``game``: the conversation's own
    parameters when set, else the experiment's; study factors and the cell's rounds apply on top).

    With roles and agent counts in the cell, each role is a group of agents (its model from the
    cell's model set, its sections added to each persona); otherwise ``population`` agents share the
    default model."""
    params = params_for(experiment.game if game is None else game, cell.factors, cell.rounds)
    shared = _sections_text(experiment.shared_sections, cell.factors)
    groups = [(r.name, int(cell.counts.get(r.name, 0))) for r in experiment.roles]
    groups = [(g, n) for g, n in groups if n > 0]
    if groups:
        models = {g: cell.models.for_role(g) for g, _ in groups}
        text = {
            r.name: "\n\n".join(p for p in (shared, _sections_text(r.sections, cell.factors)) if p)
            for r in experiment.roles
        }
        counts = dict(groups)

        def render(group: str, name: str) -> str:
            from simulator.roles import render_system_prompt

            return render_system_prompt(experiment, group, counts, name=name, factors=cell.factors)

        population = Population(groups=groups, models=models, group_text=text, render=render)
        params = params.model_copy(update={"population": population.size})
    else:
        population = Population(
            groups=[("", params.population)],
            models={"": cell.models.default},
            group_text={"": shared},
        )
    ReputationParams.model_validate(params.model_dump())  # personas vs the final population
    return params, population


def scripted_population(mix: dict[str, int]) -> Population:
    """Groups of scripted dryrun agents, e.g.
    ``{"reputation_following": 15, "always_defect": 5}``."""
    from simulator.domain import ModelRef, Provider
    from simulator.scenarios.reputation.scripted import policy_name

    groups = [(kind, n) for kind, n in mix.items() if n > 0]
    models = {
        kind: ModelRef(
            provider=Provider.dryrun, model="dryrun", options={"policy": policy_name(kind)}
        )
        for kind, _ in groups
    }
    return Population(groups=groups, models=models)


def build_run(
    game: dict[str, Any],
    groups: list[tuple[str, int, ModelRef]],
    *,
    name: str = "Reputation game",
    owner: str = "",
    seed: int = 0,
    factors: dict[str, str] | None = None,
) -> tuple[Experiment, GridCell]:
    """An experiment whose roles are the agent groups, and the grid cell that runs it."""
    from simulator.domain import Role

    params = params_for(game)
    experiment = Experiment(
        name=name,
        kind=ExperimentKind.reputation,
        roles=[Role(name=g) for g, _, _ in groups],
        models=[m for _, _, m in groups],
        game=params.model_dump(mode="json"),
        owner=owner,
    )
    per_role = {g: m for g, _, m in groups}
    cell = GridCell(
        counts={g: n for g, n, _ in groups},
        days=1,
        total_messages=1,
        models=ModelSet(default=groups[0][2], per_role=per_role),
        factors=dict(factors or {}),
        seed=seed,
        rounds=params.steps,
    )
    return experiment, cell


# --------------------------------------------------------------------------- fast path


async def simulate(
    params: ReputationParams,
    population: Population,
    seed: int = 0,
    history: list[GameState] | None = None,
) -> tuple[GameState, list[dict[str, Any]]]:
    """Play every step in-process with the dryrun backend (scripted agents); no database.
    Returns the final state and the metrics after step 0, 1, ..., steps. ``history``, when given,
    receives each step's events (interactions, record updates, gossip; the world is not copied)."""
    from simulator.scenarios.reputation.scripted import register

    register()
    params = params.model_copy(update={"population": population.size})
    state = initial_state(params, population, seed)
    game = ReputationGame(params, state, population, InProcessDecisions())
    metrics = [step_metrics(state)]
    for step in range(1, params.steps + 1):
        await game.run_step(step)
        metrics.append(step_metrics(state))
        if history is not None and step < params.steps:
            # begin_step starts new lists, so this step's lists stay as they are
            history.append(
                GameState.model_construct(
                    step=step,
                    game=state.game,
                    seed=seed,
                    interactions=state.interactions,
                    updates=state.updates,
                    gossip=state.gossip,
                )
            )
    if history is not None:
        history.append(state)
    return state, metrics


# --------------------------------------------------------------------------- the engine runner


def agents_of(state: GameState, population: Population) -> list[Agent]:
    """The conversation's agent list: persona names, groups, models and personas."""
    return [
        Agent(
            name=a.name,
            role=a.group or "agent",
            model=population.model_for(a.group),
            system_prompt=a.persona,
        )
        for a in state.agents
    ]


def load_state(data: dict[str, Any]) -> GameState:
    return GameState.model_validate({k: v for k, v in data.items() if k not in ("seq", "metrics")})


async def _advance(journal: Any, seq: int) -> None:
    """Walk the journal over the stored messages before ``seq`` (the snapshot's position)."""
    while journal.next_seq < seq:
        m = journal.peek()
        if m is None:
            raise SimulatorError(
                f"The snapshot is at message {seq} but only {journal.next_seq} are stored; "
                "run the conversation again as a new one.",
                title="Cannot resume",
            )
        await journal.record(kind=m.kind, speaker=m.speaker, role=m.role, content=m.content)


async def run_reputation(
    store: Any,
    backends: Any,
    conversation: Conversation,
    experiment: Experiment,
    journal: Any,
    bus: Any,
) -> None:
    """Play (or resume) a reputation conversation to its last step through ``journal``."""
    from simulator.scenarios.reputation.scripted import register

    register()
    params, population = configure(experiment, conversation.cell, conversation.game)
    latest = await store.states.latest(conversation.id)
    if latest is not None:
        _, data = latest
        state = load_state(data)
        await _advance(journal, int(data.get("seq", 0)))
    else:
        state = initial_state(params, population, conversation.seed)
        await journal.record(
            kind=MessageKind.system,
            speaker=GAME_SPEAKER,
            role=GAME_SPEAKER,
            content=(
                f"Reputation game ({params.game}), {len(state.agents)} agents, "
                f"{params.steps} steps."
            ),
            day=0,
            data={
                "params": params.model_dump(mode="json"),
                "agents": [{"name": a.name, "group": a.group} for a in state.agents],
            },
        )
        agents = agents_of(state, population)
        if [a.name for a in conversation.agents] != [a.name for a in agents]:
            # prepared by the engine (role-numbered names): list the personas that play
            await store.conversations.set_fields(conversation.id, agents=agents)
        await journal.snapshot(0, {**state.model_dump(mode="json"), "metrics": step_metrics(state)})
    game = ReputationGame(params, state, population, JournalDecisions(journal, params.max_reasks))
    for step in range(state.step + 1, params.steps + 1):
        await game.run_step(step)
        metrics = step_metrics(state)
        await journal.snapshot(step, {**state.model_dump(mode="json"), "metrics": metrics})
        if bus is not None:
            await bus.publish(
                StepEnded(conversation.id, conversation.batch_id, step, params.steps, metrics)
            )


async def play(store: Any, backends: Any, conversation_id: str, bus: Any = None) -> Conversation:
    """Run or resume one reputation conversation to its end (the engine's ``run_conversation``:
    a failure is stored as the conversation's status and error)."""
    from simulator.engine.conversation import run_conversation

    return await run_conversation(store, backends, conversation_id, bus=bus)


async def create_conversation(
    store: Any,
    experiment: Experiment,
    cell: GridCell,
    *,
    owner: str = "",
    seed: int | None = None,
) -> Conversation:
    """Store a pending reputation conversation for ``cell`` (agents listed with their personas)."""
    params, population = configure(experiment, cell)
    seed = cell.seed if seed is None else seed
    agents = agents_of(initial_state(params, population, seed), population)
    conversation = Conversation(
        experiment_id=experiment.id,
        experiment_version=experiment.version,
        owner=owner,
        kind=ExperimentKind.reputation,
        cell=cell,
        seed=seed,
        agents=agents,
        budget=0,
    )
    return await store.conversations.create(conversation)


async def fork(
    store: Any,
    conversation_id: str,
    step: int,
    *,
    factors: dict[str, str] | None = None,
    models: ModelSet | None = None,
    steps: int | None = None,
) -> Conversation:
    """A new conversation that continues ``conversation_id`` from the end of ``step`` with changed
    parameters (``factors`` named like parameters, e.g. ``{"gossip": "off"}``), models or step
    count. The messages and snapshots up to that step are copied; run it with :func:`play`."""
    src = await store.conversations.get(conversation_id)
    if src is None:
        raise NotFoundError(f"No conversation {conversation_id}.")
    snapshots = {s: d for s, d in await store.states.list(conversation_id)}
    if step not in snapshots:
        known = ", ".join(str(s) for s in sorted(snapshots)) or "none"
        raise NotFoundError(
            f"Conversation {conversation_id} has no snapshot after step {step} (stored: {known})."
        )
    seq = int(snapshots[step].get("seq", 0))
    cell = src.cell.model_copy(
        update={
            "factors": {**src.cell.factors, **(factors or {})},
            "models": models or src.cell.models,
            "rounds": steps if steps is not None else src.cell.rounds,
        }
    )
    experiment = await store.experiments.get(src.experiment_id)
    if experiment is not None:
        configure(experiment, cell, src.game)  # fail now on a bad override
    new = src.model_copy(
        update={
            "id": new_id(),
            "batch_id": None,
            "cell": cell,
            "status": Status.pending,
            "parent_id": src.id,
            "forked_at": step,
            "error": None,
            "started_at": None,
            "finished_at": None,
            "messages_done": 0,
            "fallbacks": 0,
        }
    )
    if models is not None:
        new.agents = [a.model_copy(update={"model": models.for_role(a.role)}) for a in src.agents]
    await store.conversations.create(new)
    for m in await store.messages.list(conversation_id):
        if m.seq < seq:
            await store.messages.append(m.model_copy(update={"conversation_id": new.id}))
    for s in sorted(snapshots):
        if s <= step:
            await store.states.put(new.id, s, dict(snapshots[s]))
    return new


async def snapshots(store: Any, conversation_id: str) -> list[tuple[GameState, dict[str, Any]]]:
    """The stored (state, metrics) of every step of a conversation, in step order."""
    out = []
    for _, data in sorted(await store.states.list(conversation_id), key=lambda t: t[0]):
        out.append((load_state(data), data.get("metrics") or step_metrics(load_state(data))))
    return out


__all__ = [
    "StepEnded",
    "build_run",
    "configure",
    "create_conversation",
    "fork",
    "load_state",
    "play",
    "run_reputation",
    "scripted_population",
    "simulate",
    "snapshots",
]
