"""The public-goods kind as the app sees it (``simulator.scenarios.kind.Kind``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from simulator.engine.kinds import ROUND, Tally
from simulator.scenarios.kind import GameParams, Kind
from simulator.scenarios.public_goods.chart import CHART
from simulator.scenarios.public_goods.commands import COMMANDS
from simulator.scenarios.public_goods.tables import TABLES, run_params


async def _run(
    store: Any, backends: Any, conversation: Any, experiment: Any, journal: Any, bus: Any
) -> None:
    from simulator.scenarios.public_goods.runner import run_public_goods

    await run_public_goods(store, backends, conversation, experiment, journal, bus)


def _estimate(experiment: Any, cell: Any, tally: Tally) -> None:
    from simulator.engine.grid import tally_game_calls
    from simulator.scenarios.public_goods.runner import estimate_calls

    tally_game_calls(experiment, cell, tally, estimate_calls(experiment, cell))


def _model() -> type[BaseModel]:
    from simulator.scenarios.public_goods.params import PublicGoodsParams

    return PublicGoodsParams


def _load(game: Mapping[str, Any]) -> BaseModel:
    from simulator.scenarios.public_goods.params import load_params

    return load_params(dict(game))


def _policies() -> Mapping[str, Any]:
    from simulator.scenarios.public_goods.scripted import POLICIES

    return POLICIES


KIND = Kind(
    name="public_goods",
    title="Public-goods game",
    summary=(
        "a repeated public-goods game: contributions to a multiplied, equally shared pool, with "
        "optional costly peer punishment and communication (Fehr and Gächter)"
    ),
    clock=ROUND,
    run=_run,
    estimate=_estimate,
    params=GameParams(
        model=_model,
        load=_load,
        intro=(
            "Public-goods parameters. Empty fields use the default shown (Fehr and Gächter's "
            "design). Members are the agents of the roles ({members}); a batch sets how many "
            "(four in the original design) and gives them the models of the Models tab (F5). "
            "A study factor named like a parameter (punishment: on/off) varies it per run."
        ),
        of_run=run_params,
    ),
    policies=_policies,
    chart=CHART,
    commands=COMMANDS,
    tables=TABLES,
    modules=("simulator.scenarios.public_goods.runner",),
)

__all__ = ["KIND"]
