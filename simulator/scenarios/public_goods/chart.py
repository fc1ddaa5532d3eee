"""The public-goods game's live chart: per round, the mean contribution (over choices), the
members' mean earnings and the tokens spent on punishment (left axis), and the pool (right axis);
from the latest snapshot (it holds every round's record) and from the ``round_end`` record stored
as each round ends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from simulator.scenarios.kind import Chart, GamePoint, Series


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def round_end_point(data: Mapping[str, Any]) -> GamePoint | None:
    """A ``round_end`` record (the data of the round's last system message)."""
    if data.get("event") != "round_end" or "round" not in data:
        return None
    return GamePoint(
        x=int(data["round"]),
        values={
            "contribution": _num(data.get("mean_contribution")),
            "earnings": _num(data.get("mean_earnings")),
            "punishment": _num(data.get("punishment_spent")),
            "pool": _num(data.get("pool")),
        },
        total=data.get("rounds"),
    )


def points(states: Sequence[tuple[int, Mapping[str, Any]]]) -> list[GamePoint]:
    """The points of a stored run, from its latest snapshot's round records."""
    from simulator.scenarios.public_goods.metrics import latest_state, round_rows

    state = latest_state(states)
    if state is None:
        return []
    total = state.params.get("rounds")
    return [
        GamePoint(
            x=row["round"],
            values={
                "contribution": row["mean_contribution"],
                "earnings": row["mean_earnings"],
                "punishment": row["punishment_spent"],
                "pool": row["pool"],
            },
            total=total,
        )
        for row in round_rows(state)
    ]


def point(event: object) -> GamePoint | None:
    """A point from a stored ``round_end`` record (``MessageStored``); None for anything else."""
    data = getattr(getattr(event, "message", None), "data", None)
    return round_end_point(data) if isinstance(data, dict) else None


CHART = Chart(
    title="Contributions, earnings and punishment per round",
    series=(
        Series("contribution", "contribution", "left", color=(31, 119, 180)),
        Series("earnings", "earnings", "left", color=(44, 160, 44)),
        Series("punishment", "punishment", "left", color=(214, 39, 40)),
        Series("pool", "pool", "right", color=(255, 127, 14)),
    ),
    points=points,
    point=point,
    latest_only=True,
)

__all__ = ["CHART", "point", "points", "round_end_point"]
