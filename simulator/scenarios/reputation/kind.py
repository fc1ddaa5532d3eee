"""The reputation kind as the app sees it (``simulator.scenarios.kind.Kind``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from simulator.engine.kinds import STEP, Tally
from simulator.scenarios.kind import GameParams, Kind
from simulator.scenarios.reputation.chart import CHART
from simulator.scenarios.reputation.commands import COMMANDS
from simulator.scenarios.reputation.tables import FIGURES, TABLES, run_params


async def _run(
    store: Any, backends: Any, conversation: Any, experiment: Any, journal: Any, bus: Any
) -> None:
    from simulator.scenarios.reputation.runner import run_reputation

    await run_reputation(store, backends, conversation, experiment, journal, bus)


def _estimate(experiment: Any, cell: Any, tally: Tally) -> None:
    from simulator.engine.grid import tally_game_calls
    from simulator.scenarios.reputation.estimate import estimate_calls

    tally_game_calls(experiment, cell, tally, estimate_calls(experiment, cell))


def _model() -> type[BaseModel]:
    from simulator.scenarios.reputation.params import ReputationParams

    return ReputationParams


def _load(game: Mapping[str, Any]) -> BaseModel:
    from simulator.scenarios.reputation.params import load_params

    return load_params(dict(game))


def _policies() -> Mapping[str, Any]:
    from simulator.scenarios.reputation.scripted import POLICIES

    return POLICIES


KIND = Kind(
    name="reputation",
    title="Reputation games",
    summary=(
        "investment, prisoner's dilemma and sign-up games on a social network with reputations, "
        "gossip and rewiring"
    ),
    clock=STEP,
    run=_run,
    estimate=_estimate,
    params=GameParams(
        model=_model,
        load=_load,
        intro=(
            "Reputation parameters. Empty fields use the default shown. With roles, a batch's "
            "agent counts give the population and each role its model from the Models tab "
            "(F5); without roles, population agents share the default model."
        ),
        examples={"personas": "builtin, or a list: [{name: Ada, persona: A careful engineer.}]"},
        preset_keys=("preset", "game"),
        extra_keys=("rounds",),  # the batch grid's name for steps (load_params drops it)
        of_run=run_params,
    ),
    policies=_policies,
    chart=CHART,
    commands=COMMANDS,
    tables=TABLES,
    figures=FIGURES,
    modules=("simulator.scenarios.reputation.runner",),
)

__all__ = ["KIND"]
