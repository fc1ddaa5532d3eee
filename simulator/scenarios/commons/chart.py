"""The commons game's live chart: the resource (left axis) and each member's credits (right axis)
at the end of every round, from the latest snapshot (it holds every round's record) and from the
``round_end`` record stored as each round ends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from simulator.scenarios.kind import Chart, GamePoint, Series


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def round_end_point(data: Mapping[str, Any]) -> GamePoint | None:
    """A commons ``round_end`` record (the data of the round's last system message)."""
    if data.get("event") != "round_end" or "round" not in data:
        return None
    return GamePoint(
        x=int(data["round"]),
        values={"resource": _num(data.get("resource"))},
        members={k: float(v) for k, v in (data.get("credits") or {}).items()},
    )


def points(states: Sequence[tuple[int, Mapping[str, Any]]]) -> list[GamePoint]:
    """The points of a stored run, from its latest snapshot's round records."""
    if not states:
        return []
    _, latest = max(states, key=lambda s: s[0])
    params = latest.get("params") or {}
    total = params.get("rounds")
    records = latest.get("rounds") or []
    out = [_start(latest, records, total)]
    for rec in records:
        out.append(
            GamePoint(
                x=int(rec["round"]),
                values={"resource": _num(rec.get("resource_after_growth"))},
                members={k: float(v) for k, v in (rec.get("credits_end") or {}).items()},
                total=total,
            )
        )
    return out


def _start(
    snapshot: Mapping[str, Any], records: Sequence[Mapping[str, Any]], total: int | None
) -> GamePoint:
    """Round 0: the lake and the founding members' credits before the first round."""
    founders = [m for m in snapshot.get("members") or [] if not m.get("born_round")]
    if records:
        resource = _num(records[0].get("resource_start"))
        start = float((snapshot.get("params") or {}).get("start_credits", 0.0))
        credits = {m["name"]: start for m in founders}
    else:  # the snapshot is the start itself
        resource = _num((snapshot.get("world") or {}).get("resource"))
        credits = {m["name"]: float(m.get("credits", 0.0)) for m in founders}
    return GamePoint(x=0, values={"resource": resource}, members=credits, total=total)


def point(event: object) -> GamePoint | None:
    """A point from a stored ``round_end`` record (``MessageStored``); None for anything else."""
    message = getattr(event, "message", None)
    data = getattr(message, "data", None)
    if isinstance(data, dict) and data.get("event") == "round_end":
        return round_end_point(data)
    return None


CHART = Chart(
    title="Resource and credits per round",
    series=(Series("resource", "resource", "left", color=(31, 119, 180)),),
    points=points,
    point=point,
    members="credits",
    latest_only=True,
)

__all__ = ["CHART", "point", "points", "round_end_point"]
