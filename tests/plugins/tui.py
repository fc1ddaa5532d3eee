"""Shared pytest fixtures of the tui tests (registered in tests/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from simulator.domain.models import (
    Experiment,
    ModelRef,
    Provider,
    Role,
    Section,
    SectionKind,
    StudyFactor,
)
from simulator.settings import Settings
from tests.plugins import waiting
from tests.plugins.waiting import DEADLINE_S, POLL_S

FIXED_TIME = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

_CONFIG_VARS = [
    "MONGODB_URI",
    "DB_USER",
    "DB_PASSWORD",
    "DB_CLUSTER_URL",
    "MONGODB_DB",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OLLAMA_HOST",
]


@pytest.fixture
def tui_settings(tmp_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Hermetic settings: no .env, no configured server, private config dir, cwd in tmp_path."""
    for var in _CONFIG_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIMULATOR_CONFIG_DIR", str(tmp_path / "config"))
    # Ollama at a closed port: listing fails fast and clearly, nothing is ever pulled.
    return Settings(_env_file=None, ollama_host="http://127.0.0.1:9")  # type: ignore[call-arg]


def sample_experiment(
    name: str = "Prison 1v1",
    *,
    owner: str = "alice",
    experiment_id: str = "e" * 32,
    note: str = "",
    favourite: bool = False,
    kind: str = "dialogue",
) -> Experiment:
    """A small two-role experiment with fixed id and timestamps (for snapshots)."""
    return Experiment(
        id=experiment_id,
        name=name,
        kind=kind,  # type: ignore[arg-type]
        starting_message="Start the experiment.",
        roles=[
            Role(
                name="Guard",
                sections=[
                    Section(
                        id="g-goal",
                        title="Goal",
                        content="Keep control of the <PRISONER_NOUN>.",
                        kind=SectionKind.private,
                        position=1,
                    )
                ],
            ),
            Role(
                name="Prisoner",
                sections=[
                    Section(
                        id="p-goal",
                        title="Goal",
                        content="You face <GUARD_NUM> <GUARD_NOUN>.",
                        kind=SectionKind.private,
                        position=2,
                    )
                ],
            ),
        ],
        shared_sections=[
            Section(
                id="s-env",
                title="Environment",
                content="A simulated prison with <AGENTS_NUM> agents.",
                kind=SectionKind.shared,
                position=0,
            )
        ],
        summarizer_sections=[
            Section(
                id="sum-1",
                title="",
                content="Summarise the day objectively.",
                kind=SectionKind.summarizer,
                position=0,
            )
        ],
        models=[ModelRef(provider=Provider.dryrun, model="dryrun")],
        factors=[StudyFactor(name="goal", levels=["Escape", "Yard Time"])],
        note=note,
        favourite=favourite,
        owner=owner,
        created_at=FIXED_TIME,
        updated_at=FIXED_TIME,
    )


async def wait_until(
    pilot: Any, predicate: Callable[[], Any], within: float = DEADLINE_S, what: str = ""
) -> Any:
    """Let the app run until ``predicate()`` holds (workers finish, screens change); see
    tests/plugins/waiting.py (an exception counts as "not yet" and is re-raised at the end)."""
    return await waiting.wait_until(
        predicate,
        within=within,
        what=what,
        pause=lambda: pilot.pause(POLL_S),  # poll interval
    )


async def settle(pilot: Any, *, workers: bool = True) -> None:
    """Wait until the app has handled everything it was given: no message waiting in the queue
    of the app, the screen or any of its widgets (a change bubbles up one queue at a time), twice
    in a row with the screen's queues drained in between, and (``workers``) every worker of the
    app finished. The state to assert on or to take a snapshot of: never a fixed pause, and not
    Textual's idle guess (``pilot.pause()`` alone), which a starved process can satisfy early."""
    app = pilot.app
    calm: list[bool] = []

    def quiet() -> bool:
        pumps = [app, *app.screen.walk_children(with_self=True)]
        now = all(p.message_queue_size == 0 for p in pumps) and (
            not workers or all(w.is_finished for w in app.workers)
        )
        calm.append(now)
        return calm[-2:] == [True, True]

    await wait_until(pilot, quiet, what="the app to settle")


@pytest.fixture
def run_sync() -> Callable[[Any], Any]:
    """Run a coroutine to completion on a fresh loop (sync snapshot tests)."""
    return asyncio.run


async def wait_library(pilot: Any, loads: int = 1) -> Any:
    """Wait until the library is the current screen and has loaded ``loads`` times."""
    from simulator.tui.screens.library import LibraryScreen

    app = pilot.app
    await wait_until(
        pilot,
        lambda: isinstance(app.screen, LibraryScreen) and app.screen.loads >= loads,
        what="the library",
    )
    await settle(pilot, workers=False)
    return app.screen


# --------------------------------------------------------------------------- snapshots

SNAPSHOT_SUBTITLE = "alice · MongoDB at test server"  # the real one names a port that varies


def app_on_fresh_database(
    mongo_uri: str, populate: Callable[[str, str], Awaitable[None]]
) -> Iterator[Any]:
    """For SVG snapshots: the app (user alice, no example offered, Ollama at a closed port) on a
    database of its own, filled by ``populate(uri, db)`` first and dropped afterwards."""
    import uuid

    from pydantic import SecretStr
    from pymongo import MongoClient

    from simulator.tui.app import SimulatorApp

    db = f"snap_{uuid.uuid4().hex[:12]}"
    asyncio.run(populate(mongo_uri, db))
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        mongodb_uri=SecretStr(mongo_uri),
        mongodb_db=db,
        ollama_host="http://127.0.0.1:9",
    )
    try:
        yield SimulatorApp(settings, user="alice", offer_example=False)
    finally:
        client: MongoClient[Any] = MongoClient(mongo_uri)
        client.drop_database(db)
        client.close()


async def snapshot_library(pilot: Any) -> Any:
    """Wait for the library's first load and give the header a subtitle that never varies."""
    from simulator.tui.screens.library import LibraryScreen

    app = pilot.app
    await wait_until(
        pilot,
        lambda: isinstance(app.screen, LibraryScreen) and app.screen.loads >= 1,
        what="library",
    )
    app.sub_title = SNAPSHOT_SUBTITLE
    return app.screen
