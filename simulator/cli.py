"""The composition root for every entry point: ``python main.py`` and the ``simulator`` command.

With no command, the TUI starts. Each group of headless commands lives in its own module under
``simulator/commands/`` and registers itself here; nothing opens a connection at import time.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from simulator import __version__

# Modules under simulator/commands that define ``register(subparsers)``; each command sets
# ``func`` (a callable taking the parsed args and returning an exit code).
COMMAND_MODULES = [
    "db",
    "run",
    "worker",
    "experiments",
    "export",
    "annotate",
    "coding",
    "stats",
    "login",
    "kinds",  # every experiment kind's own group: simulator commons ..., simulator reputation ...
    "cache",
]


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
    tui.set_defaults(func=_run_tui)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"simulator.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"simulator.commands.{name}":
                continue  # that command group is not built yet
            raise
        module.register(sub)
    return parser


def _run_tui(args: argparse.Namespace) -> int:
    from simulator.tui.launch import run_tui

    return run_tui(args)


def main(argv: Sequence[str] | None = None) -> int:
    from simulator.scenarios.registry import install

    install()  # the experiment kinds, handed to the engine once for the process
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None) or _run_tui
    from simulator.commands.common import run_command

    return run_command(func, args)


if __name__ == "__main__":
    sys.exit(main())
