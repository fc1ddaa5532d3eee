"""``simulator tui`` (and ``python main.py`` with no command): build the app and run it."""

from __future__ import annotations

import argparse

from simulator.settings import load_settings


def run_tui(args: argparse.Namespace | None = None) -> int:
    """Run the TUI until the user quits; returns the exit code."""
    from simulator.tui.app import SimulatorApp

    settings = load_settings()  # a bad value raises ConfigurationError: a clean message, exit 2
    app = SimulatorApp(settings, reload_settings=load_settings)
    app.run()
    return int(app.return_code or 0)
