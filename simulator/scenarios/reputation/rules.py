"""The pure rules of the reputation games: payoffs, pairing order, schedules. No I/O, no models.

Every random draw takes a ``random.Random`` from ``simulator.engine.rng.stream`` named after what
it draws, so a resumed run draws exactly what the uninterrupted run drew.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from simulator.scenarios.reputation.params import PDPayoffs, ReputationParams
from simulator.scenarios.reputation.state import GameState

COOPERATE = "cooperate"
DEFECT = "defect"


# --------------------------------------------------------------------------- payoffs


def pd_payoffs(move_a: str, move_b: str, table: PDPayoffs) -> tuple[float, float]:
    """Payoffs of a prisoner's dilemma game (default 3/3, 5/0, 0/5, 1/1)."""
    if move_a == COOPERATE and move_b == COOPERATE:
        return table.reward, table.reward
    if move_a == DEFECT and move_b == COOPERATE:
        return table.temptation, table.sucker
    if move_a == COOPERATE and move_b == DEFECT:
        return table.sucker, table.temptation
    if move_a == DEFECT and move_b == DEFECT:
        return table.punishment, table.punishment
    raise ValueError(f"unknown moves {move_a!r}, {move_b!r}")


@dataclass(frozen=True)
class InvestmentOutcome:
    amount: float  # units the investor put in
    pot: float  # amount * k: what the trustee divides (the investor sees it: deception shows)
    investor_gain: float  # what the investor receives back
    trustee_gain: float
    investor_net: float  # investor_gain - amount
    deviated: bool  # the allocation differs from the proposal
    honest: bool  # the reported outcome equals the true pot
    return_ratio: float  # investor_gain / pot


def investment_outcome(
    amount: float,
    k: float,
    proposed_investor_share: float,
    allocated_investor_share: float,
    allocated_trustee_share: float,
    reported_total: float,
) -> InvestmentOutcome:
    """An accepted investment: the pot is ``k * amount``; payoffs follow the actual allocation
    (shares in percent, summing to 100), not the proposal; the report is honest when it equals
    the pot."""
    if amount < 0:
        raise ValueError("the invested amount cannot be negative")
    if abs(allocated_investor_share + allocated_trustee_share - 100) > 1e-9:
        raise ValueError("the allocation's shares must sum to 100")
    pot = round(k * amount, 6)
    investor_gain = round(pot * allocated_investor_share / 100, 6)
    trustee_gain = round(pot * allocated_trustee_share / 100, 6)
    return InvestmentOutcome(
        amount=amount,
        pot=pot,
        investor_gain=investor_gain,
        trustee_gain=trustee_gain,
        investor_net=round(investor_gain - amount, 6),
        deviated=abs(allocated_investor_share - proposed_investor_share) > 1e-9,
        honest=abs(reported_total - pot) < 1e-6,
        return_ratio=(investor_gain / pot) if pot > 0 else 0.0,
    )


# --------------------------------------------------------------------------- schedules


def is_signup_round(step: int, period: int) -> bool:
    """Sign-up rounds at steps 1, 1 + period, 1 + 2 * period, ..."""
    return (step - 1) % period == 0


def is_observation_round(step: int, period: int) -> bool:
    """Observation re-rating at steps 1 + period, 1 + 2 * period, ... (not at step 1)."""
    return step > 1 and (step - 1) % period == 0


# --------------------------------------------------------------------------- pairing


def split_roles(names: list[str], rng: random.Random) -> tuple[list[str], list[str]]:
    """Shuffle and split: even positions choose (investors / first players), odd are chosen."""
    order = list(names)
    rng.shuffle(order)
    return order[0::2], order[1::2]


def order_by_reputation(
    choosers: list[str], state: GameState, role: str, use_reputation: bool
) -> list[str]:
    """Choosers pick in order of reputation, best first (stable for ties); as drawn without it."""
    if not use_reputation:
        return list(choosers)
    return sorted(choosers, key=lambda n: -state.score(n, role))


def partner_candidates(
    chooser: str, unmatched: list[str], state: GameState, mutual: bool
) -> list[str]:
    """Unmatched partners the chooser is connected to (mutually for PD), in table order."""
    if mutual:
        return [p for p in unmatched if state.mutual(chooser, p)]
    return [p for p in unmatched if state.connected(chooser, p)]


def random_pairs(names: list[str], rng: random.Random, n: int) -> list[tuple[str, str]]:
    """Up to ``n`` disjoint random pairs (sign-up chats)."""
    order = list(names)
    rng.shuffle(order)
    pairs = [(order[i], order[i + 1]) for i in range(0, len(order) - 1, 2)]
    return pairs[:n]


def initial_network(
    names: list[str], probability: float, rng: random.Random
) -> dict[str, list[str]]:
    return {a: [b for b in names if b != a and rng.random() < probability] for a in names}


def chat_pair_count(params: ReputationParams) -> int:
    return params.population // 2 if params.chat_pairs is None else params.chat_pairs


__all__ = [
    "COOPERATE",
    "DEFECT",
    "InvestmentOutcome",
    "chat_pair_count",
    "initial_network",
    "investment_outcome",
    "is_observation_round",
    "is_signup_round",
    "order_by_reputation",
    "partner_candidates",
    "pd_payoffs",
    "random_pairs",
    "split_roles",
]
