"""The commons game: a common-pool resource (a fish lake) shared by LLM members.

Rules in ``dynamics`` (pure), parameters in ``params``, the round loop in ``game``, the engine
runner in ``runner``. Importing this package plugs the scripted policies into the dryrun backend
and the runner into the engine (kind ``commons``).
"""

from __future__ import annotations

from simulator.engine.kinds import register_kind
from simulator.scenarios.commons import scripted
from simulator.scenarios.commons.params import CommonsParams, MonitorParams, Policy, load_params
from simulator.scenarios.commons.runner import estimate_calls, fork_conversation, run_commons

register_kind("commons", run_commons)
scripted.register()
try:
    from simulator.engine.grid import register_call_estimator
except ImportError:  # pragma: no cover - an engine without batch estimates
    pass
else:
    register_call_estimator("commons", estimate_calls)

__all__ = [
    "CommonsParams",
    "MonitorParams",
    "Policy",
    "fork_conversation",
    "load_params",
    "run_commons",
]
