"""The public-goods game (Fehr and Gächter): members contribute to a pool that is multiplied and
shared equally, round after round, optionally punishing each other at a cost and talking first.

Parameters in ``params``, the payoffs in ``rules`` (pure), what members are told in ``prompts``,
the round loop in ``game`` (played through the decision seam), the engine runner, the estimate
and the in-process simulation in ``runner``, scripted members in ``scripted``, tables in
``metrics``, the chart in ``chart``, the command line in ``commands``; ``KIND`` is what the
registry lists (simulator/scenarios/registry.py). See docs/public_goods.md.
"""

from __future__ import annotations

import importlib
from typing import Any

from simulator.scenarios.public_goods.kind import KIND

_LAZY = {
    "PublicGoodsParams": "params",
    "load_params": "params",
    "params_for": "params",
    "run_public_goods": "runner",
    "scripted_model": "runner",
    "scripted_run": "runner",
    "simulate": "runner",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = ["KIND", *_LAZY]
