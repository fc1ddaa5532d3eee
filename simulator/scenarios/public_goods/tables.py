"""The public-goods kind's tidy tables (``Kind.tables``): ``rounds`` and ``members``.

Both come from a run's latest snapshot, which holds every round's record; the analysis layer
pools them over runs with each run's conditions (``simulator export --what members``).
Importing this module is cheap: the rules load when rows are asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from simulator.scenarios.kind import FLOAT, INT, STRING, Snapshots, Table

if TYPE_CHECKING:
    from pydantic import BaseModel

    from simulator.domain import Conversation, Experiment

ROUND_COLUMNS: dict[str, str] = {
    "round": INT,
    "members": INT,
    "mean_contribution": FLOAT,
    "contribution_rate": FLOAT,
    "min_contribution": INT,
    "max_contribution": INT,
    "free_riders": INT,
    "full_contributors": INT,
    "pool": FLOAT,
    "multiplied": FLOAT,
    "share": FLOAT,
    "punishment_points": INT,
    "punishers": INT,
    "punishment_spent": FLOAT,
    "punishment_lost": FLOAT,
    "mean_earnings": FLOAT,
    "total_earnings": FLOAT,
    "messages": INT,
    "decisions": INT,
    "reasked": INT,
    "fallbacks": INT,
    "contribution_fallbacks": INT,
    "punishment_fallbacks": INT,
    "message_fallbacks": INT,
}
MEMBER_COLUMNS: dict[str, str] = {
    "round": INT,
    "member": STRING,
    "role": STRING,
    "label": STRING,
    "contribution": INT,
    "contribution_decision": STRING,
    "first_stage": FLOAT,
    "points_given": INT,
    "points_received": INT,
    "punishment_decision": STRING,
    "spent": FLOAT,
    "lost": FLOAT,
    "payoff": FLOAT,
    "earnings": FLOAT,
}


def rounds(snapshots: Snapshots) -> list[dict[str, Any]]:
    """One row per round: contributions (over choices), the pool, punishment, earnings."""
    from simulator.scenarios.public_goods import metrics

    state = metrics.latest_state(snapshots)
    return metrics.round_rows(state) if state is not None else []


def members(snapshots: Snapshots) -> list[dict[str, Any]]:
    """One row per round and member: its contribution, the points it gave and received."""
    from simulator.scenarios.public_goods import metrics

    state = metrics.latest_state(snapshots)
    return metrics.member_rows(state) if state is not None else []


def run_params(
    experiment: Experiment | None, conversation: Conversation, snapshots: Snapshots
) -> BaseModel:
    """The parameters a run played with: as its snapshots stored them, else as it would start."""
    from simulator.domain import Experiment
    from simulator.scenarios.public_goods import metrics
    from simulator.scenarios.public_goods.params import load_params
    from simulator.scenarios.public_goods.runner import run_params as starting_params

    state = metrics.latest_state(snapshots)
    if state is not None and state.params:
        return load_params(state.params)
    return starting_params(experiment or Experiment(name="?", kind=conversation.kind), conversation)


TABLES: Mapping[str, Table] = {
    "rounds": Table(
        "public goods: one row per round of each run",
        rounds,
        ROUND_COLUMNS,
        latest_only=True,
        measure="mean_contribution",
    ),
    "members": Table(
        "public goods: per round and member (contribution, punishment, earnings)",
        members,
        MEMBER_COLUMNS,
        latest_only=True,
    ),
}

__all__ = ["MEMBER_COLUMNS", "ROUND_COLUMNS", "TABLES", "run_params"]
