"""Which scenario runner runs a conversation of each experiment kind.

A scenario package registers its runner at import time::

    register_kind("commons", run_commons)

``runner(store, backends, conversation, experiment, journal, bus) -> None`` plays the conversation
through the journal (every model call and event is written by ``journal``), from wherever the
journal's stored messages end. ``run_conversation`` imports ``simulator.scenarios.<kind>`` on
first use, so registering needs no central list.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from simulator.domain.errors import ConfigurationError

if TYPE_CHECKING:
    from simulator.domain import Conversation, Experiment
    from simulator.engine.events import EventBus
    from simulator.engine.journal import Journal

log = logging.getLogger(__name__)

Runner = Callable[
    [Any, Any, "Conversation", "Experiment", "Journal", "EventBus | None"], Awaitable[None]
]

_RUNNERS: dict[str, Runner] = {}


def register_kind(kind: str, runner: Runner) -> None:
    """Make ``runner`` play conversations of ``kind`` (a later registration replaces it)."""
    _RUNNERS[str(kind)] = runner


def runner_for(kind: str) -> Runner:
    """The runner of ``kind``, importing ``simulator.scenarios.<kind>`` if needed."""
    kind = str(kind)
    if kind not in _RUNNERS:
        try:
            importlib.import_module(f"simulator.scenarios.{kind}")
        except ImportError as exc:
            log.debug("no scenario package for %s: %s", kind, exc)
    if kind not in _RUNNERS:
        raise ConfigurationError(
            f"This version of the simulator cannot run experiments of kind {kind!r} "
            f"(known kinds: {', '.join(sorted(_RUNNERS)) or 'none'}).",
            title="Unknown experiment kind",
        )
    return _RUNNERS[kind]


def registered_kinds() -> list[str]:
    return sorted(_RUNNERS)


__all__ = ["Runner", "register_kind", "registered_kinds", "runner_for"]
