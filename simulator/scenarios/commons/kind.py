"""The commons kind as the app sees it (``simulator.scenarios.kind.Kind``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from simulator.engine.kinds import ROUND, Tally
from simulator.scenarios.commons.chart import CHART
from simulator.scenarios.commons.commands import COMMANDS
from simulator.scenarios.commons.tables import TABLES, run_params
from simulator.scenarios.kind import GameParams, Kind


async def _run(
    store: Any, backends: Any, conversation: Any, experiment: Any, journal: Any, bus: Any
) -> None:
    from simulator.scenarios.commons.runner import run_commons

    await run_commons(store, backends, conversation, experiment, journal, bus)


def _estimate(experiment: Any, cell: Any, tally: Tally) -> None:
    from simulator.engine.grid import tally_game_calls
    from simulator.scenarios.commons.runner import estimate_calls

    tally_game_calls(experiment, cell, tally, estimate_calls(experiment, cell))


def _model() -> type[BaseModel]:
    from simulator.scenarios.commons.params import CommonsParams

    return CommonsParams


def _load(game: Mapping[str, Any]) -> BaseModel:
    from simulator.scenarios.commons.params import load_params

    return load_params(dict(game))


def _policies() -> Mapping[str, Any]:
    from simulator.scenarios.commons.scripted import POLICIES

    return POLICIES


KIND = Kind(
    name="commons",
    title="Commons game",
    summary=(
        "a common-pool resource (a lake) shared by members who talk, vote on a quota, extract, "
        "report, are audited and accused"
    ),
    clock=ROUND,
    run=_run,
    estimate=_estimate,
    params=GameParams(
        model=_model,
        load=_load,
        intro=(
            "Commons parameters. Empty fields use the default shown. Members are the agents of "
            "the role(s) ({members}); a batch sets how many and gives them the models of the "
            "Models tab (F5); member_models pins a model to one member."
        ),
        examples={
            "member_models": "Member 1: {provider: ollama, model: llama3.2}",
            "monitors.model": (
                "{provider: dryrun, model: dryrun, options: {policy: commons.monitor}}"
            ),
            "monitors.per_member": "Member 2: {provider: openai, model: gpt-4o-mini}",
        },
        of_run=run_params,
    ),
    policies=_policies,
    chart=CHART,
    commands=COMMANDS,
    tables=TABLES,
    modules=("simulator.scenarios.commons.runner",),
)

__all__ = ["KIND"]
