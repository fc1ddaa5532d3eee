"""Axis ticks of the app's charts (no plotting library imported here)."""

from __future__ import annotations

import math


def whole_ticks(low: float, high: float, most: int = 6) -> list[int]:
    """At most ``most`` evenly spaced whole numbers from ``low`` to ``high``: turns, rounds,
    steps and token counts are whole (plotext's own ticks read 1.50, 2.50)."""
    first, last = math.floor(low), math.ceil(high)
    step = max(1, math.ceil((last - first) / max(most - 1, 1)))
    return list(range(first, last + 1, step))


def tick_args(ticks: list[int]) -> tuple[list[float], list[str]]:
    """``ticks`` as plotext's ``xticks``/``yticks`` take them: positions and their labels."""
    return [float(t) for t in ticks], [str(t) for t in ticks]
