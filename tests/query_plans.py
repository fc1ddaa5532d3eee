"""Which index serves each query the code sends: on the embedded server, and on a real MongoDB.

``nx-27017``'s own ``explain`` plans the filter only (it drops sort, projection, limit, min and
max), so on the embedded server the probe runs the server's own code (its handler, over
``neosqlite``) in this process, on a thread, records every SQL statement SQLite executes for the
test's database (``sqlite3``'s trace callback gives them with their parameters bound), and asks
SQLite for the ``EXPLAIN QUERY PLAN`` of each. A statement on one of our collections' tables
must ``SEARCH`` it through an index; a ``SCAN`` of it (with or without an index: a full scan of
an index is a scan too) is a violation.

On a real MongoDB (``TEST_MONGODB_URI``) the probe records the commands the driver sends (a
command listener) and asks the server to ``explain`` each read, update and delete: a
``COLLSCAN`` anywhere in the winning plan is a violation.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.monitoring import CommandListener, CommandStartedEvent

from simulator.db.mongo import MongoStore

#: The tables (collections) of the simulator's database.
COLLECTIONS = (
    "experiments",
    "batches",
    "conversations",
    "messages",
    "states",
    "annotations",
    "annotators",
    "responses",
    "ledgers",
    "meta",
)
_TABLE = "|".join(COLLECTIONS)
_TOUCHES = re.compile(rf"\b(FROM|UPDATE|INTO|JOIN)\s+\"?({_TABLE})\"?(\s|$|\))", re.IGNORECASE)
_SCAN = re.compile(rf"^SCAN \"?({_TABLE})\"?(\s|$)")
_SKIP_KEYS = {"lsid", "$db", "$clusterTime", "$readPreference", "txnNumber", "signature"}
_PLANNED = {"find", "aggregate", "count", "distinct", "update", "delete", "findAndModify"}


@dataclass
class Query:
    """One statement or command the code sent, and how the server would run it."""

    collection: str
    text: str
    plan: list[str] = field(default_factory=list)

    @property
    def scans(self) -> bool:
        return any(_SCAN.match(p) or p == "COLLSCAN" for p in self.plan)


class InProcessEmbeddedServer:
    """The embedded server's code (nx-27017 over neosqlite) on a thread of this process, on a
    free loopback port, with its SQLite files in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        from nx_27017.handler import NeoSQLiteHandler

        from simulator.db.server_main import grouped_inserts

        handler_class = grouped_inserts(NeoSQLiteHandler)  # as simulator.db.server_main runs it
        self.handler = handler_class(str(data_dir), journal_mode="WAL", data_dir=str(data_dir))
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._serve, name="nx-27017", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the in-process embedded server did not start")

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def _serve(self) -> None:
        from nx_27017.server import handle_client

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()

            async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await handle_client(reader, writer, self.handler)

            server = await asyncio.start_server(on_client, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            async with server:
                await self._stop.wait()

        asyncio.run(main())

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self.handler.close_all()

    def connection(self, db_name: str) -> Any:
        """The ``sqlite3`` connection of a database (opened if needed)."""
        return self.handler.get_database(db_name).db

    def lock(self, db_name: str) -> Any:
        return self.handler._lock_for(db_name)


class EmbeddedProbe:
    """Records the SQL of one database of an ``InProcessEmbeddedServer``."""

    def __init__(self, server: InProcessEmbeddedServer, store: MongoStore) -> None:
        self.server = server
        self.store = store
        self.statements: list[str] = []

    def start(self) -> None:
        self.statements = []
        with self.server.lock(self.store.db_name):
            self.server.connection(self.store.db_name).set_trace_callback(self.statements.append)

    async def stop(self) -> list[Query]:
        await self.store.messages.inserts.flush()
        name = self.store.db_name
        with self.server.lock(name):
            conn = self.server.connection(name)
            conn.set_trace_callback(None)
            out: list[Query] = []
            for sql in self.statements:
                head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
                touched = _TOUCHES.search(sql)
                if head not in ("SELECT", "UPDATE", "DELETE", "WITH") or touched is None:
                    continue
                rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
                out.append(Query(touched.group(2), sql, [str(r[3]) for r in rows]))
        return out


class _Recorder(CommandListener):
    def __init__(self) -> None:
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self.recording = False

    def started(self, event: CommandStartedEvent) -> None:
        if self.recording and event.command_name in _PLANNED:
            self.commands.append((event.database_name, dict(event.command)))

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass


class MongoProbe:
    """Records the commands sent to a real MongoDB and explains them."""

    def __init__(self, store: MongoStore, recorder: _Recorder) -> None:
        self.store = store
        self.recorder = recorder

    def start(self) -> None:
        self.recorder.commands = []
        self.recorder.recording = True

    async def stop(self) -> list[Query]:
        await self.store.messages.inserts.flush()
        self.recorder.recording = False
        out: list[Query] = []
        for db_name, command in self.recorder.commands:
            if db_name != self.store.db_name:
                continue
            name = next(iter(command))
            collection = str(command[name])
            if collection not in COLLECTIONS:
                continue
            for one in _statements(name, command):
                result = await self.store.client[db_name].command(
                    {"explain": one, "verbosity": "queryPlanner"}
                )
                stages = list(_stages(result.get("queryPlanner", {}).get("winningPlan", {})))
                out.append(Query(collection, repr(one), stages))
        return out


def _statements(name: str, command: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The command as explainable commands: one per statement of an update or a delete."""
    body = {k: v for k, v in command.items() if k not in _SKIP_KEYS}
    if name in ("update", "delete"):
        key = "updates" if name == "update" else "deletes"
        for statement in body.get(key, []):
            yield {name: body[name], key: [statement]}
    else:
        yield body


def _stages(plan: Any) -> Iterator[str]:
    """Every stage name in a winning plan (classic and slot-based engine layouts)."""
    if isinstance(plan, dict):
        if "stage" in plan:
            yield str(plan["stage"])
        for key in ("inputStage", "queryPlan", "outerStage", "innerStage"):
            if key in plan:
                yield from _stages(plan[key])
        for child in plan.get("inputStages", []):
            yield from _stages(child)


async def mongo_probe(uri: str, db_name: str) -> MongoProbe:
    """A store on ``uri`` whose commands the probe can record."""
    recorder = _Recorder()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri, tz_aware=True, tzinfo=UTC, event_listeners=[recorder]
    )
    store = MongoStore(client, db_name, uri)
    await store.init()
    return MongoProbe(store, recorder)


def violations(queries: list[Query]) -> list[str]:
    """Readable lines for the queries no index serves."""
    return [f"{q.collection}: {q.text[:300]} -> {q.plan}" for q in queries if q.scans]


__all__ = [
    "COLLECTIONS",
    "EmbeddedProbe",
    "InProcessEmbeddedServer",
    "MongoProbe",
    "Query",
    "mongo_probe",
    "violations",
]
