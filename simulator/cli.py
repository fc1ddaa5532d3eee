"""The composition root for every entry point: ``python main.py`` and the ``simulator`` command.

With no command, the TUI starts. Each group of headless commands lives in its own module under
``simulator/commands/`` and registers itself here; nothing opens a connection at import time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from simulator import __version__
from simulator.commands import (
    annotate,
    cache,
    coding,
    db,
    experiments,
    export,
    kinds,
    login,
    run,
    stats,
    worker,
)

if TYPE_CHECKING:
    from simulator.commands.common import RootFactory

# Command groups: each module defines ``register(subparsers)``; each command sets ``func`` (a
# callable taking the parsed args and returning an exit code) and ``uses_database``. ``kinds``
# adds every experiment kind's own group (simulator commons ..., simulator reputation ...).
COMMAND_MODULES = (
    db,
    run,
    worker,
    experiments,
    export,
    annotate,
    coding,
    stats,
    login,
    kinds,
    cache,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simulator",
        description=(
            "LLM Interaction Simulator: build experiments, run batches of multi-agent LLM "
            "conversations and games, and read the results. Without a command, the interactive "
            "TUI starts."
        ),
        epilog=(
            "Configuration comes from the environment and .env (see .env_template). With no "
            "MONGODB_URI, an embedded local MongoDB-compatible server is started automatically. "
            "Run 'simulator COMMAND --help' for the options of a command."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    tui = sub.add_parser("tui", help="start the interactive TUI (the default)")
    tui.set_defaults(func=_run_tui, uses_database=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def _run_tui(args: argparse.Namespace) -> int:
    from simulator.commands.common import command_root
    from simulator.tui.launch import run_tui

    return run_tui(command_root())


def main(argv: Sequence[str] | None = None, *, make_root: RootFactory | None = None) -> int:
    """Run the command ``argv`` names (the TUI without one); returns the exit code.
    ``make_root`` builds the composition root from the settings (tests inject a user); the root
    hands the experiment kinds to the engine."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None) or _run_tui
    from simulator.commands.common import run_command

    if make_root is None:
        return run_command(func, args)
    return run_command(func, args, make_root)


if __name__ == "__main__":
    sys.exit(main())
