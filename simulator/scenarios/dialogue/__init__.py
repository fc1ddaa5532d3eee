"""The dialogue kind: free conversation among roles over days, with a summary after each day."""

from simulator.engine.kinds import register_kind
from simulator.scenarios.dialogue.runner import run_dialogue

register_kind("dialogue", run_dialogue)

__all__ = ["run_dialogue"]
