"""How many model calls one reputation conversation makes, for batch estimates.

A step's decisions depend on the answers (a declined partner asks nothing more, a gossip that
is told travels on), so the count is an expectation per agent and step, measured with the
scripted policies over 3 seeds x 10 steps (population 10 and 20 agree within 2 %) and split into
what each treatment flag adds. ``tests/test_reputation_estimate.py`` checks it against played
games.
"""

from __future__ import annotations

from typing import Any

from simulator.domain.models import Experiment
from simulator.scenarios.reputation.params import ReputationParams, params_for

# Decisions per agent and step without reputation or gossip: choosing and answering partners
# (investment: invest and return; pd: cooperate or defect; signup: sign up, chat, re-rate).
BASE = {"investment": 2.65, "pd": 2.97, "signup": 3.13}
# With reputation: updating the records of oneself and the partner (and a connect/disconnect).
RECORDS = {"investment": 1.15, "pd": 1.08, "signup": 1.98}
PERSONA_REWRITE = 1.0  # one rewrite after each direct update (needs reputation)
GOSSIP = 1.0  # whether to gossip, and what, after an interaction
OBSERVATION = 0.2  # public re-rating every observation_period steps


def calls_per_agent_step(params: ReputationParams) -> float:
    game = str(params.game)
    calls = BASE[game]
    if params.reputation:
        calls += RECORDS[game]
        if params.persona_rewrite:
            calls += PERSONA_REWRITE
    if params.gossip:
        calls += GOSSIP
    if params.observation_on:
        calls += OBSERVATION
    return calls


def estimate_calls(experiment: Experiment, cell: Any) -> int:
    """Model calls of one conversation of ``cell``: agents x steps x decisions per agent-step
    (the study factors that name a parameter, such as ``gossip``, apply per cell)."""
    params = params_for(experiment.game, cell.factors, cell.rounds)
    agents = sum(n for n in cell.counts.values() if n > 0) or params.population
    return round(agents * params.steps * calls_per_agent_step(params))


__all__ = ["calls_per_agent_step", "estimate_calls"]
