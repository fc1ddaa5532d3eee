"""Shared plumbing of headless commands: settings, logging, the store, clean error reporting."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from simulator.domain.errors import SimulatorError

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
