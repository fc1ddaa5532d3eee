"""How screens and widgets reach the app's session: typed, through the app itself.

Screens are shown only after ``SimulatorApp`` connected (``Connected``), so the services exist;
``services_of`` says so plainly when that does not hold rather than failing on ``None``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import App

if TYPE_CHECKING:
    from simulator.services.container import Services
    from simulator.tui.app import SimulatorApp


def simulator_app(app: App[Any]) -> SimulatorApp:
    """``app`` as the simulator's app (screens run in no other)."""
    from simulator.tui.app import SimulatorApp

    if not isinstance(app, SimulatorApp):
        raise TypeError(f"this screen runs in SimulatorApp, not in {type(app).__name__}")
    return app


def services_of(app: App[Any]) -> Services:
    """The services of the app's session (experiments, conversations, batches, backends, bus)."""
    services = simulator_app(app).services
    if services is None:
        raise RuntimeError("the app is not connected to a database yet")
    return services


def user_of(app: App[Any]) -> str:
    """Who the app acts as (the owner of what this session creates)."""
    return services_of(app).user
