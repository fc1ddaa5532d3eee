"""The commons game: a common-pool resource (a fish lake) shared by LLM members.

Rules in ``dynamics`` (pure), parameters in ``params``, the round loop in ``game``, the engine
runner in ``runner``, the chart in ``chart``, the command line in ``commands``; ``KIND`` is what
the registry lists (simulator/scenarios/registry.py). Importing the package is cheap: the rest
loads on use.
"""

from __future__ import annotations

import importlib
from typing import Any

from simulator.scenarios.commons.kind import KIND

_LAZY = {
    "CommonsParams": "params",
    "MonitorParams": "params",
    "Policy": "params",
    "load_params": "params",
    "fork_conversation": "runner",
    "run_commons": "runner",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = ["KIND", *_LAZY]
