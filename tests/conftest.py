"""Shared fixtures: a real embedded MongoDB-compatible server for the whole session, a fresh
database per test, and a private data directory.

``TEST_MONGODB_URI`` (when set) points ``mongo_uri`` at that server instead of the embedded one; the
storage contract suite runs on both (see tests/test_storage_contract.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.monitoring import CommandListener

from simulator.db.embedded import EmbeddedServer
from simulator.db.mongo import MongoStore, connect_store

# Fixtures of each area live in tests/plugins/<area>.py.
pytest_plugins = [
    "tests.plugins.hang_guard",
    "tests.plugins.kinds",
    "tests.plugins.llm",
    "tests.plugins.engine",
    "tests.plugins.roles",
    "tests.plugins.batches",
    "tests.plugins.tui",
    "tests.plugins.tui_runs",
    "tests.plugins.tui_browser",
    "tests.plugins.analysis",
    "tests.plugins.commons",
    "tests.plugins.reputation",
    "tests.plugins.services",
    "tests.plugins.annotations",
]


@pytest.fixture(scope="session", autouse=True)
def _private_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Nothing a test does may touch the user's real data directory (their embedded database)."""
    if os.environ.get("SIMULATOR_DATA_DIR"):
        yield
        return
    path = tmp_path_factory.mktemp("session-data")
    os.environ["SIMULATOR_DATA_DIR"] = str(path)
    try:
        yield
    finally:
        os.environ.pop("SIMULATOR_DATA_DIR", None)


@pytest.fixture(scope="session")
def embedded_mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of one embedded server (in a temporary directory) shared by the whole test session."""
    server = EmbeddedServer(tmp_path_factory.mktemp("embedded-mongo"))
    uri = server.start()
    try:
        yield uri
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mongo_uri(request: pytest.FixtureRequest) -> str:
    """``TEST_MONGODB_URI`` when set, else the session's embedded server."""
    external = os.environ.get("TEST_MONGODB_URI")
    if external:
        return external
    return request.getfixturevalue("embedded_mongo_uri")


def unique_db_name() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


async def store_heard_by(mongo_uri: str, listener: CommandListener) -> MongoStore:
    """A MongoStore on a fresh database whose driver reports every command it sends to
    ``listener`` (tests that count what the code asks of the server). The caller drops and
    closes it."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_uri, tz_aware=True, tzinfo=UTC, event_listeners=[listener]
    )
    store = MongoStore(client, unique_db_name())
    await store.init()
    return store


@pytest.fixture
async def store(mongo_uri: str) -> AsyncIterator[MongoStore]:
    """A connected MongoStore on a fresh database, dropped afterwards."""
    s = await connect_store(mongo_uri, unique_db_name())
    try:
        yield s
    finally:
        try:
            await s.drop_database()
        finally:
            await s.close()


@pytest.fixture
def tmp_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private SIMULATOR_DATA_DIR for one test."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("SIMULATOR_DATA_DIR", str(path))
    return path
