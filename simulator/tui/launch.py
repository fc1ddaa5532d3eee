"""``simulator tui`` (and ``python main.py`` with no command): run the app on the composition
root the command line built (``simulator.services.root.AppRoot``)."""

from __future__ import annotations

from simulator.services.root import AppRoot


def run_tui(root: AppRoot | None = None) -> int:
    """Run the TUI until the user quits; returns the exit code."""
    from simulator.settings import load_settings
    from simulator.tui.app import SimulatorApp

    # Without a root: the settings now (a bad value raises ConfigurationError: exit 2).
    root = root if root is not None else AppRoot.from_environment()
    app = SimulatorApp(root=root, reload_settings=load_settings)
    app.run()
    return int(app.return_code or 0)
