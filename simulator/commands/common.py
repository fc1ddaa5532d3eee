"""Shared plumbing of headless commands: settings, logging, the store, clean error reporting."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from simulator.domain import Conversation, Experiment
from simulator.domain.errors import ConfigurationError, SimulatorError

log = logging.getLogger(__name__)


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; our errors become a one-paragraph message and exit code 2, never a
    traceback."""
    from simulator.logging_setup import setup_logging

    setup_logging()
    try:
        return int(func(args) or 0)
    except SimulatorError as exc:
        print(f"error: {exc.title}: {exc}", file=sys.stderr)
        log.warning("%s: %s", exc.title, exc)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


async def game_conversation(store: Any, ref: str, kind: str) -> Conversation:
    """The conversation ``ref`` names (an id or a unique prefix, ``services.ids``), which must be
    a run of the game ``kind``."""
    from simulator.services.ids import resolve_conversation

    conv = await resolve_conversation(store, ref)
    if conv.kind.value != kind:
        raise ConfigurationError(
            f"conversation {conv.id} is a {conv.kind.value} run, not a {kind} game; "
            f"'simulator {conv.kind.value} ...' reads it"
            if conv.kind.value in ("commons", "reputation")
            else f"conversation {conv.id} is a {conv.kind.value} run, not a {kind} game"
        )
    return conv


async def game_experiment(store: Any, ref: str, kind: str, user: str | None = None) -> Experiment:
    """The experiment ``ref`` names (id, unique prefix or name), which must be of ``kind``."""
    from simulator.services.ids import resolve_experiment

    exp = await resolve_experiment(store, ref, user)
    if exp.kind.value != kind:
        raise ConfigurationError(f"experiment {exp.name!r} is not a {kind} game")
    return exp
