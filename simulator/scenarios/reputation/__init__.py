"""Reputation games (RepuNet, arXiv 2505.05029): trust investment, prisoner's dilemma and sign-up
on a social network with self and peer reputation, gossip and rewiring. Treatments are flags of one
pipeline (see docs/reputation.md)."""

from __future__ import annotations

from simulator.engine.grid import register_call_estimator
from simulator.engine.kinds import register_kind
from simulator.scenarios.reputation.estimate import estimate_calls
from simulator.scenarios.reputation.params import ReputationParams, load_params, params_for
from simulator.scenarios.reputation.runner import (
    StepEnded,
    build_run,
    configure,
    create_conversation,
    fork,
    play,
    run_reputation,
    scripted_population,
    simulate,
    snapshots,
)
from simulator.scenarios.reputation.scripted import register as _register_policies

register_kind("reputation", run_reputation)
_register_policies()
register_call_estimator("reputation", estimate_calls)

__all__ = [
    "ReputationParams",
    "StepEnded",
    "build_run",
    "configure",
    "create_conversation",
    "fork",
    "load_params",
    "params_for",
    "play",
    "run_reputation",
    "scripted_population",
    "simulate",
    "snapshots",
]
