"""The payoffs of a round (pure functions): the linear public-goods game with costly
punishment.

Each member i keeps what it did not contribute and receives an equal share of the multiplied
pool: ``first_i = E - c_i + m * sum(c) / n``. With punishment, each deduction point p_ij that i
assigns to j costs i ``cost`` and takes ``effect`` from j:
``payoff_i = first_i - cost * sum_j p_ij - effect * sum_j p_ji``. Payoffs are not floored: a
heavily punished member can end a round below zero, and so can a heavy punisher.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    pool: float  # tokens contributed
    multiplied: float  # the pool times the multiplier
    share: float  # what each member receives
    first_stage: dict[str, float]  # member -> earnings before deductions
    spent: dict[str, float]  # member -> tokens paid for the points it gave
    lost: dict[str, float]  # member -> tokens taken by the points it received
    received: dict[str, int]  # member -> points received
    given: dict[str, int]  # member -> points given
    payoffs: dict[str, float]  # member -> earnings of the round


def outcome(
    contributions: Mapping[str, int],
    endowment: int,
    multiplier: float,
    points: Mapping[str, Mapping[str, int]] | None = None,
    cost: float = 1.0,
    effect: float = 3.0,
) -> Outcome:
    """The round's payoffs from every member's contribution and the deduction points each gave
    (``points[giver][receiver]``)."""
    members = list(contributions)
    n = len(members)
    pool = float(sum(contributions.values()))
    multiplied = pool * multiplier
    share = multiplied / n if n else 0.0
    first = {m: _r(endowment - contributions[m] + share) for m in members}
    given = {m: 0 for m in members}
    received = {m: 0 for m in members}
    for giver, targets in (points or {}).items():
        for target, k in targets.items():
            if target == giver or target not in received or k <= 0:
                continue
            given[giver] += k
            received[target] += k
    spent = {m: _r(cost * given[m]) for m in members}
    lost = {m: _r(effect * received[m]) for m in members}
    payoffs = {m: _r(first[m] - spent[m] - lost[m]) for m in members}
    return Outcome(pool, _r(multiplied), _r(share), first, spent, lost, received, given, payoffs)


def _r(x: float) -> float:
    return round(x, 6)


__all__ = ["Outcome", "outcome"]
