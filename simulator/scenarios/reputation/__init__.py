"""Reputation games (RepuNet, arXiv 2505.05029): trust investment, prisoner's dilemma and sign-up
on a social network with self and peer reputation, gossip and rewiring. Treatments are flags of one
pipeline (see docs/reputation.md).

``KIND`` is what the registry lists (simulator/scenarios/registry.py). Importing the package is
cheap: the runner (and networkx, which its metrics draw with) loads on use.
"""

from __future__ import annotations

import importlib
from typing import Any

from simulator.scenarios.reputation.kind import KIND

_LAZY = {
    "ReputationParams": "params",
    "load_params": "params",
    "params_for": "params",
    **dict.fromkeys(
        (
            "StepEnded",
            "build_run",
            "configure",
            "create_conversation",
            "fork",
            "play",
            "run_reputation",
            "scripted_population",
            "simulate",
            "snapshots",
        ),
        "runner",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = ["KIND", *_LAZY]
