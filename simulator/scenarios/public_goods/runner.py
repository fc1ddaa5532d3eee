"""Running public-goods games: the engine runner (resume from the latest snapshot), the batch
estimate, the fast in-process simulation of scripted members, and building experiments.

A stored run holds, in order: a setup record, snapshot 0, then per round the messages, the
contributions and the deduction points (structured actions), the announcements (system records)
and, at the round's end, a snapshot of the whole game (``GameState`` and the journal ``seq`` it is
valid at). A resumed run seeks the journal to the latest snapshot and plays the unfinished round
again: the journal replays every stored answer and asks only for the rest.
"""

from __future__ import annotations

from typing import Any

from simulator.domain import (
    Conversation,
    Experiment,
    ExperimentKind,
    GridCell,
    MessageKind,
    ModelRef,
    ModelSet,
    Provider,
    Role,
)
from simulator.engine.decisions import InProcessDecisions, JournalDecisions
from simulator.scenarios.public_goods.game import GAME, PublicGoodsGame, initial_state
from simulator.scenarios.public_goods.params import PublicGoodsParams, load_params, params_for
from simulator.scenarios.public_goods.scripted import policy_name, register
from simulator.scenarios.public_goods.state import GameState

KIND = ExperimentKind("public_goods")
ROLE = "Member"


def run_params(experiment: Experiment, conversation: Conversation) -> PublicGoodsParams:
    """The run's own parameters (``Conversation.game``) or else the experiment's, with the study
    factors that name a parameter and the cell's round count applied."""
    game = conversation.game if conversation.game is not None else experiment.game
    cell = conversation.cell
    return params_for(game, cell.factors, cell.rounds)


async def run_public_goods(
    store: Any,
    backends: Any,
    conversation: Conversation,
    experiment: Experiment,
    journal: Any,
    bus: Any,
) -> None:
    """The ``public_goods`` kind runner: play (or resume) the game to its last round."""
    register()
    latest = await store.states.latest(conversation.id)
    if latest is None:
        params = run_params(experiment, conversation)
        members = [(a.name, a.role) for a in conversation.agents]
        state = initial_state(params, members, conversation.seed)
        await journal.record(
            kind=MessageKind.system,
            speaker=GAME,
            role=GAME,
            content=(
                f"Public-goods game: {len(members)} members, {params.rounds} rounds, "
                f"punishment {'on' if params.punishment else 'off'}."
            ),
            day=0,
            data={"event": "setup", "params": state.params},
        )
        await journal.snapshot(0, state.to_snapshot())
    else:
        _, data = latest
        state = GameState.from_snapshot(data)
        params = load_params(state.params)
        journal.seek(int(data["seq"]))  # replay only the unfinished round
    models = {a.name: a.model for a in conversation.agents}
    system = {a.name: a.system_prompt for a in conversation.agents}
    decisions = JournalDecisions(journal, params.max_reasks)
    await PublicGoodsGame(params, state, decisions, models, system=system).play()


def calls_per_round(params: PublicGoodsParams, members: int) -> int:
    """Model calls of one round: a contribution per member, and a message and a set of
    deduction points per member when those stages are on (re-asks not counted)."""
    return members * (1 + int(params.punishment) + int(params.communication))


def estimate_calls(experiment: Experiment, cell: GridCell) -> int:
    """Model calls of one conversation of ``cell`` (the study factors that name a parameter
    apply per cell)."""
    params = params_for(experiment.game, cell.factors, cell.rounds)
    members = sum(n for n in cell.counts.values() if n > 0)
    return params.rounds * calls_per_round(params, members)


# --------------------------------------------------------------------------- in-process


def scripted_model(kind: str, **options: Any) -> ModelRef:
    """A dryrun member played by a scripted policy (``free_rider``, ``punisher``, ...)."""
    return ModelRef(
        provider=Provider.dryrun, model="dryrun", options={"policy": policy_name(kind), **options}
    )


def scripted_members(mix: dict[str, int]) -> list[tuple[str, str, ModelRef]]:
    """(name, role, model) of scripted members, e.g. ``{"free_rider": 1, "punisher": 1}`` gives
    ``Free rider 1`` and ``Punisher 1``."""
    out = []
    for kind, count in mix.items():
        role = role_of(kind)
        out += [(f"{role} {i}", role, scripted_model(kind)) for i in range(1, count + 1)]
    return out


def role_of(kind: str) -> str:
    """``free_rider`` -> ``Free rider``: the role a scripted kind plays under."""
    text = kind.removeprefix("public_goods.").replace("_", " ")
    return text[:1].upper() + text[1:]


async def simulate(
    params: PublicGoodsParams, members: list[tuple[str, str, ModelRef]], seed: int = 0
) -> GameState:
    """Play every round in the process with the dryrun backend (scripted members); nothing is
    stored. Returns the final state (every round's record)."""
    register()
    state = initial_state(params, [(n, r) for n, r, _ in members], seed)
    models = {n: m for n, _, m in members}
    return await PublicGoodsGame(params, state, InProcessDecisions(), models).play()


# --------------------------------------------------------------------------- experiments


def experiment_for(
    params: PublicGoodsParams,
    roles: list[str] | None = None,
    *,
    name: str = "Public goods",
    owner: str = "",
    models: list[ModelRef] | None = None,
) -> Experiment:
    """An experiment of kind public_goods whose members are the agents of ``roles``."""
    return Experiment(
        name=name,
        kind=KIND,
        starting_message="The public-goods game begins.",
        roles=[Role(name=r) for r in (roles or [ROLE])],
        models=models or [ModelRef()],
        game=params.model_dump(mode="json", exclude_defaults=True),
        owner=owner,
    )


def cell_for(
    counts: dict[str, int],
    models: dict[str, ModelRef],
    *,
    seed: int = 0,
    rounds: int | None = None,
    factors: dict[str, str] | None = None,
) -> GridCell:
    """The grid cell that runs ``counts`` agents per role, each role with its model."""
    default = next(iter(models.values()))
    return GridCell(
        counts=dict(counts),
        days=1,
        total_messages=1,
        models=ModelSet(default=default, per_role=dict(models)),
        factors=dict(factors or {}),
        seed=seed,
        rounds=rounds,
    )


def scripted_run(
    params: PublicGoodsParams,
    mix: dict[str, int],
    *,
    seed: int = 0,
    name: str = "Public goods (scripted)",
    owner: str = "",
) -> tuple[Experiment, GridCell]:
    """An experiment whose roles are the scripted kinds of ``mix``, and the cell that runs it."""
    roles = {role_of(k): scripted_model(k) for k, n in mix.items() if n > 0}
    counts = {role_of(k): n for k, n in mix.items() if n > 0}
    exp = experiment_for(params, list(roles), name=name, owner=owner, models=list(roles.values()))
    return exp, cell_for(counts, roles, seed=seed, rounds=params.rounds)


__all__ = [
    "ROLE",
    "calls_per_round",
    "cell_for",
    "estimate_calls",
    "experiment_for",
    "load_params",
    "role_of",
    "run_params",
    "run_public_goods",
    "scripted_members",
    "scripted_model",
    "scripted_run",
    "simulate",
]
