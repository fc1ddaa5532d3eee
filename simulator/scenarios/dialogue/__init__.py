"""The dialogue kind: free conversation among roles over days, with a summary after each day.

The rules in ``runner``, the closed-form estimate in ``estimate``, the interview context in
``interview``; ``KIND`` is what the registry lists (simulator/scenarios/registry.py)."""

from __future__ import annotations

from typing import Any

from simulator.scenarios.dialogue.kind import KIND


def __getattr__(name: str) -> Any:
    if name == "run_dialogue":  # loaded on use: importing the kind stays cheap
        from simulator.scenarios.dialogue.runner import run_dialogue

        return run_dialogue
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["KIND", "run_dialogue"]
