"""The reputation games' live chart: the share of cooperative choices (left axis) and the
network's ties (right axis) at the end of every step, from each step's snapshot (it holds the
step's metrics) and from the ``StepEnded`` event published as each step is stored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from simulator.scenarios.kind import Chart, GamePoint, Series


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def step_point(step: int, metrics: Mapping[str, Any], total: int | None = None) -> GamePoint:
    return GamePoint(
        x=int(step),
        values={
            "cooperation": _num(metrics.get("cooperation")),
            "ties": _num(metrics.get("edges")),
            "density": _num(metrics.get("density")),
        },
        total=total,
    )


def points(states: Sequence[tuple[int, Mapping[str, Any]]]) -> list[GamePoint]:
    """The points of a stored run, from every step's metrics."""
    out = []
    for step, data in sorted(states, key=lambda s: s[0]):
        metrics = data.get("metrics")
        if isinstance(metrics, Mapping):
            total = (data.get("params") or {}).get("steps")
            out.append(step_point(step, metrics, total))
    return out


def point(event: object) -> GamePoint | None:
    """A point from a ``StepEnded`` event (its step and metrics); None for anything else."""
    metrics = getattr(event, "metrics", None)
    step = getattr(event, "step", None)
    if isinstance(metrics, Mapping) and isinstance(step, int):
        return step_point(step, metrics, getattr(event, "steps", None))
    return None


CHART = Chart(
    title="Cooperation and network ties per step",
    series=(
        Series("cooperation", "cooperation", "left", digits=2, color=(44, 160, 44)),
        Series("ties", "ties", "right", digits=0, color=(255, 127, 14)),
        Series("density", "density", digits=3, plotted=False),
    ),
    points=points,
    point=point,
)

__all__ = ["CHART", "point", "points", "step_point"]
