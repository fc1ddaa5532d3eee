"""Batch estimates of reputation games: the expected model calls per conversation against the
decisions a played game makes (scripted agents, every game and treatment)."""

from __future__ import annotations

import itertools

import pytest

from simulator.engine.grid import estimate_cells
from simulator.scenarios.reputation import configure, simulate
from simulator.scenarios.reputation.estimate import estimate_calls
from tests.plugins.reputation import reputation_setup

MIX = {"reputation_following": 4, "always_defect": 3, "tit_for_tat": 3}


@pytest.mark.parametrize(
    ("game", "reputation", "gossip"),
    list(itertools.product(["investment", "pd", "signup"], ["on", "off"], ["on", "off"])),
)
async def test_estimate_is_within_a_fifth_of_the_decisions_played(
    game: str, reputation: str, gossip: str
) -> None:
    experiment, cell = reputation_setup(
        game, MIX, steps=6, factors={"reputation": reputation, "gossip": gossip}
    )
    params, population = configure(experiment, cell)
    played = 0
    for seed in range(2):
        _, metrics = await simulate(params, population, seed=seed)
        played += sum(m["decisions"] for m in metrics)
    played /= 2
    estimated = estimate_calls(experiment, cell)
    assert abs(estimated - played) <= 0.2 * played, (estimated, played)


def test_the_batch_estimate_counts_the_games_calls_not_two_per_agent() -> None:
    experiment, cell = reputation_setup("pd", MIX, steps=10)
    expected = estimate_calls(experiment, cell)
    # 10 agents x 10 steps x about 6 decisions (the old flat guess was 2 per agent and step)
    assert 550 <= expected <= 650
    assert estimate_cells(experiment, [cell, cell]).llm_calls == 2 * expected


def test_treatment_factors_change_the_estimate() -> None:
    with_gossip, cell_on = reputation_setup("investment", MIX, factors={"gossip": "on"})
    _, cell_off = reputation_setup("investment", MIX, factors={"gossip": "off"})
    # 10 agents x 3 steps x (1 gossip decision + 0.2 public re-rating, which by default runs
    # in investment games only with gossip on)
    assert estimate_calls(with_gossip, cell_on) - estimate_calls(with_gossip, cell_off) == 36
