"""Messages workers post to the UI (STYLE.md #6, #7): workers never touch widgets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from simulator.domain.errors import SimulatorError
    from simulator.services.container import Services
    from simulator.services.root import Login, OpenedStore


class Connected(Message):
    """The store is open, the user is known and the services are built. ``opened`` is None
    when the app was given its store (tests)."""

    def __init__(
        self, services: Services, opened: OpenedStore | None = None, login: Login | None = None
    ) -> None:
        super().__init__()
        self.services = services
        self.opened = opened
        self.login = login


class ConnectFailed(Message):
    """Opening the store failed with an error the user can act on."""

    def __init__(self, error: SimulatorError, login: Login | None = None) -> None:
        super().__init__()
        self.error = error
        self.login = login


class DraftChanged(Message):
    """An editor pane changed the draft; ``source`` is the pane (others re-read the draft)."""

    def __init__(self, source: object) -> None:
        super().__init__()
        self.source = source
