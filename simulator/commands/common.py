"""Shared plumbing of headless commands: settings, logging, the database, clean error reporting.

``run_command`` reads the settings once and builds the composition root
(``simulator.services.root.AppRoot``) for the command; a command that reads or writes the
database opens it with ``open_session()`` and nothing else, so every command finds the same
database (a remembered login included) and fails the same way when it cannot be opened. Each
command says whether it does with ``set_defaults(uses_database=...)``; a test goes through every
command of the parser (tests/test_composition_root.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from simulator.domain.errors import ConfigurationError, SimulatorError
from simulator.services.root import AppRoot

if TYPE_CHECKING:
    from simulator.services.container import Services
    from simulator.settings import Settings

log = logging.getLogger(__name__)

EXIT_USAGE = 2  # bad input or configuration: nothing ran, nothing was stored
EXIT_BUG = 1  # an error we did not foresee (logged with its traceback), or a lost database

#: Builds the composition root from the settings; tests give their own to act as a user.
RootFactory = Callable[["Settings"], AppRoot]

_ROOT: ContextVar[AppRoot | None] = ContextVar("simulator_command_root", default=None)


def command_root() -> AppRoot:
    """The composition root of the command being run (built by ``run_command``)."""
    root = _ROOT.get()
    return root if root is not None else AppRoot.from_environment()


def open_session() -> AbstractAsyncContextManager[Services]:
    """The services of this command (``AppRoot.session``): the configured database, or the
    remembered login's, or the embedded server; a password is asked at the terminal when one is
    needed; everything is closed afterwards."""
    return command_root().session()


def run_command(
    func: Callable[[argparse.Namespace], int],
    args: argparse.Namespace,
    make_root: RootFactory = AppRoot,
) -> int:
    """Run a command; our errors become a one-paragraph message and exit code 2, never a
    traceback. The settings are checked first, whatever the command: a bad value in the
    environment or ``.env`` is one message naming the variable (the TUI starts the same way).
    ``make_root`` builds the composition root from them (tests inject a user there)."""
    from simulator.logging_setup import scrub, setup_logging
    from simulator.settings import load_settings

    log_file = None
    token = None
    try:
        settings = load_settings()
        try:
            log_file = setup_logging(settings.simulator_log_dir, settings.log_level)
        except OSError as exc:
            raise ConfigurationError(
                f"The log directory cannot be created ({exc.strerror or exc}: "
                f"{exc.filename}). Set SIMULATOR_LOG_DIR to a writable directory.",
                title="Invalid setting",
            ) from None
        token = _ROOT.set(make_root(settings))
        return int(func(args) or 0)
    except SimulatorError as exc:
        print(f"error: {exc.title}: {exc}", file=sys.stderr)
        if log_file is not None:  # else Python's last-resort handler would print it again
            log.warning("%s: %s", exc.title, exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from simulator.db.store import is_store_unreachable

        if is_store_unreachable(exc):  # the database went away mid-command: not a bug
            print(
                "error: Database lost: the database stopped answering "
                f"({type(exc).__name__}). Everything stored before is kept; try again once it "
                "answers (simulator db status shows the embedded server).",
                file=sys.stderr,
            )
            return EXIT_BUG
        # a bug: one line for the user, the traceback in the log
        if log_file is not None:
            log.exception("unexpected error")
        where = f" The details are in {log_file}." if log_file else ""
        print(
            f"error: Unexpected error ({type(exc).__name__}): {scrub(str(exc))}.{where} "
            "This is a bug of the simulator; please report it.",
            file=sys.stderr,
        )
        return EXIT_BUG
    finally:
        if token is not None:
            _ROOT.reset(token)
