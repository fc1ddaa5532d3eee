"""build_services: the composition of services the TUI uses."""

from __future__ import annotations

from simulator.engine.batch import BatchRunner
from simulator.engine.events import EventBus
from simulator.llm.registry import Backends
from simulator.services.container import Services, build_services
from simulator.services.identity import os_user
from simulator.settings import load_settings


async def test_build_services_wires_everything_for_the_current_user(store) -> None:
    settings = load_settings()
    services = await build_services(settings, store)
    try:
        assert isinstance(services, Services)
        assert services.user == os_user()  # the embedded server: the OS account
        assert services.experiments.user == services.conversations.user == services.user
        assert isinstance(services.backends, Backends)
        assert isinstance(services.bus, EventBus)
        assert isinstance(services.batches, BatchRunner)
        assert services.batches.bus is services.bus
        created = await services.experiments.ensure_examples()
        assert created and created[0].owner == services.user
    finally:
        await services.aclose()


async def test_build_services_uses_what_it_is_given(store) -> None:
    bus = EventBus()
    backends = Backends(load_settings())
    services = await build_services(load_settings(), store, "carol", backends=backends, bus=bus)
    try:
        assert services.user == "carol"
        assert services.backends is backends and services.bus is bus
        assert services.batches.backends is backends
    finally:
        await services.aclose()
