"""The services one session of the app uses, built once by the composition root
(``simulator.services.root``).

The model backends, the event bus and the batch runner are imported when the services are built,
not when this module is imported: a screen or a command that only lists experiments does not pay
for the model clients' imports at start-up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from simulator.db.store import Store
from simulator.services.conversations import ConversationService
from simulator.services.experiments import ExperimentService

if TYPE_CHECKING:
    from simulator.engine.batch import BatchRunner
    from simulator.engine.events import EventBus
    from simulator.llm.registry import Backends
    from simulator.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What the TUI and the commands work with: never a raw database client or model SDK."""

    settings: Settings
    store: Store
    user: str
    experiments: ExperimentService
    conversations: ConversationService
    backends: Backends
    bus: EventBus
    batches: BatchRunner

    async def aclose(self) -> None:
        """Close the model clients; the store belongs to whoever opened it."""
        await self.backends.aclose()


async def build_services(
    settings: Settings,
    store: Store,
    user: str | None = None,
    *,
    backends: Backends | None = None,
    bus: EventBus | None = None,
) -> Services:
    """Services for ``user`` (by default who the store says you are:
    ``identity.current_user``) on ``store``."""
    from simulator.engine.batch import BatchRunner
    from simulator.engine.events import EventBus
    from simulator.llm.registry import Backends
    from simulator.services.identity import current_user

    if user is None:
        user = await current_user(store, settings)
    if bus is None:
        bus = EventBus()
    if backends is None:
        backends = Backends(settings, on_event=bus.publish)
    return Services(
        settings=settings,
        store=store,
        user=user,
        experiments=ExperimentService(store, user),
        conversations=ConversationService(store, user),
        backends=backends,
        bus=bus,
        batches=BatchRunner(store, backends, bus),
    )
