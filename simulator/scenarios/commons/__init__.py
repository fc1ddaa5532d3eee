"""The commons game: a common-pool resource (a fish lake) shared by LLM members.

Rules in ``dynamics`` (pure), parameters in ``params``, the round loop in ``game``; importing this
package plugs the scripted policies into the dryrun backend and the runner into the engine.
"""

from __future__ import annotations

from simulator.scenarios.commons.params import CommonsParams, Policy, load_params

__all__ = ["CommonsParams", "Policy", "load_params"]
