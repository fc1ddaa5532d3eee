"""The services one session of the app uses, built once at the composition root.

``build_services`` imports the model backends, the event bus and the batch runner lazily, so the
services work (and can be tested) on their own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from simulator.db.store import Store
from simulator.services.conversations import ConversationService
from simulator.services.experiments import ExperimentService

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Any  # simulator.settings.Settings
    store: Store
    user: str
    experiments: ExperimentService
    conversations: ConversationService
    backends: Any  # simulator.llm.registry.Backends
    bus: Any  # simulator.engine.events.EventBus
    batches: Any  # simulator.engine.batch.BatchRunner

    async def aclose(self) -> None:
        """Close the model clients; the store belongs to whoever opened it."""
        close = getattr(self.backends, "aclose", None)
        if close is not None:
            await close()


async def build_services(
    settings: Any,
    store: Store,
    user: str | None = None,
    *,
    backends: Any = None,
    bus: Any = None,
) -> Services:
    """Services for ``user`` (by default: ``identity.current_user``) on ``store``."""
    if user is None:
        from simulator.services.identity import current_user

        user = await current_user(store, settings)
    if bus is None:
        bus = _optional("simulator.engine.events", "EventBus")
    if backends is None:
        backends_cls = _optional("simulator.llm.registry", "Backends", instantiate=False)
        if backends_cls is not None:
            sink = getattr(bus, "publish", None)
            backends = backends_cls(settings, on_event=sink)
    batches = None
    runner_cls = _optional("simulator.engine.batch", "BatchRunner", instantiate=False)
    if runner_cls is not None and backends is not None:
        batches = runner_cls(store, backends, bus)
    return Services(
        settings=settings,
        store=store,
        user=user,
        experiments=ExperimentService(store, user),
        conversations=ConversationService(store, user),
        backends=backends,
        bus=bus,
        batches=batches,
    )


def _optional(module: str, name: str, *, instantiate: bool = True) -> Any:
    """``module.name`` (instantiated without arguments, unless told not to), or None when that
    part of the app is not installed yet."""
    import importlib

    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        log.warning("%s.%s is not available; that feature is off", module, name)
        return None
    return obj() if instantiate else obj
