"""Messages workers post to the UI (STYLE.md #6, #7): workers never touch widgets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from simulator.domain.errors import SimulatorError
    from simulator.tui.screens.startup import LoginDetails


class Connected(Message):
    """The store is open, the user is known and the services are built."""

    def __init__(
        self, store: Any, server: Any, services: Any, login: LoginDetails | None = None
    ) -> None:
        super().__init__()
        self.store = store
        self.server = server
        self.services = services
        self.login = login


class ConnectFailed(Message):
    """Opening the store failed with an error the user can act on."""

    def __init__(self, error: SimulatorError, login: LoginDetails | None = None) -> None:
        super().__init__()
        self.error = error
        self.login = login


class DraftChanged(Message):
    """An editor pane changed the draft; ``source`` is the pane (others re-read the draft)."""

    def __init__(self, source: object) -> None:
        super().__init__()
        self.source = source
