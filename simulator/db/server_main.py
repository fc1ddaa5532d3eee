"""Launcher of the embedded MongoDB-compatible server (``nx-27017`` over SQLite).

Run as ``python -m simulator.db.server_main --data-dir DIR [--port P]`` by
``simulator.db.embedded.EmbeddedServer``; not meant to be run by hand (use ``simulator db serve``).

Why our own launcher instead of the ``nx-27017`` command: that command logs every request at INFO,
document contents included (experiments, messages), and its pid-file logic treats any live pid as
"running", so a stale pid file after a crash blocks a restart. Here logging is at WARNING, the
pid and port bookkeeping belongs to ``EmbeddedServer``, and ``--port 0`` lets the operating system
pick a free port atomically; the port actually bound is written to ``--port-file`` once the server
listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m simulator.db.server_main")
    p.add_argument("--data-dir", required=True, type=Path, help="directory of the SQLite files")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: let the system pick a free port")
    p.add_argument("--port-file", type=Path, help="written (atomically) once listening")
    p.add_argument("--log-file", type=Path, help="default: DATA_DIR/../server.log")
    return p.parse_args(argv)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def grouped_inserts(base: type[Any]) -> type[Any]:
    """``base`` (nx-27017's handler) with each insert command written in one SQLite transaction.

    Why: nx-27017 writes the documents of an ``insert`` (``insert_many``) one by one, each in
    its own transaction, so every stored message writes its table and index pages to the WAL
    and commits on its own (about 35 KB of disk writes per message under a batch). In one
    transaction the documents share their pages and one commit. The answer is unchanged: a
    duplicate ``_id`` still fails only its own document (SQLite aborts that statement, not the
    transaction); the command is acknowledged after the commit, so what it acknowledges is
    stored as before, and a server killed before the commit acknowledged nothing of it.

    An insert inside a client's own transaction (``autocommit: false``) is left to nx-27017.
    The override uses nx-27017's per-database lock and connection; when a later version no
    longer has them, ``base`` is returned unchanged (with a warning in the server's log).
    """
    import nx_27017.handler as nx

    found: Callable[[Any], str] | None = getattr(nx, "_msg_db_name", None)
    needed = ("_lock_for", "get_database", "handle_insert")
    if found is None or not all(callable(getattr(base, name, None)) for name in needed):
        logging.getLogger(__name__).warning(
            "this nx-27017 has no per-database lock to extend: inserts commit each document"
        )
        return base
    db_name_of: Callable[[Any], str] = found

    class GroupedInserts(base):  # type: ignore[misc]
        def handle_insert(self, msg: dict[str, Any]) -> Any:
            sections = msg.get("sections", ())
            body: dict[str, Any] = next((d for kind, d in sections if kind == "body"), {})
            db_name = db_name_of(msg)
            with self._lock_for(db_name):
                sqlite = self.get_database(db_name).db
                if sqlite.in_transaction or body.get("autocommit") is False:
                    return super().handle_insert(msg)
                sqlite.execute("BEGIN")
                try:
                    answer = super().handle_insert(msg)
                except BaseException:
                    if sqlite.in_transaction:
                        sqlite.execute("ROLLBACK")
                    raise
                if sqlite.in_transaction:
                    sqlite.execute("COMMIT")
                return answer

    return GroupedInserts


async def _serve(args: argparse.Namespace) -> None:
    # Imported here so that `--help` and argument errors do not pay for the import.
    from nx_27017.handler import NeoSQLiteHandler
    from nx_27017.server import handle_client

    handler_class = grouped_inserts(NeoSQLiteHandler)
    handler = handler_class(str(args.data_dir), journal_mode="WAL", data_dir=str(args.data_dir))

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await handle_client(reader, writer, handler)

    server = await asyncio.start_server(on_client, args.host, args.port)
    port = server.sockets[0].getsockname()[1]
    logging.getLogger(__name__).warning(
        "embedded server pid %d listening on %s:%d, data in %s",
        os.getpid(),
        args.host,
        port,
        args.data_dir,
    )
    if args.port_file:
        _write_atomically(args.port_file, json.dumps({"pid": os.getpid(), "port": port}))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with server:
            await stop.wait()
    finally:
        # Every acknowledged write is already committed by SQLite; closing checkpoints the WAL.
        handler.close_all()
        logging.getLogger(__name__).warning("embedded server pid %d stopped", os.getpid())


#: How long a thread may hold the GIL while another waits for it. The server parses requests
#: on its event-loop thread and runs them on worker threads: with Python's default (5 ms) a
#: request arriving during a long write waited up to that long just to be read; 1 ms shortens
#: every message's store by about a millisecond under a batch's load (docs/benchmarks.md).
SWITCH_INTERVAL_S = 0.001


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    args.data_dir = args.data_dir.resolve()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    log_file = args.log_file or args.data_dir.parent / "server.log"
    logging.basicConfig(
        filename=str(log_file),
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )
    try:
        asyncio.run(_serve(args))
    except OSError as exc:  # e.g. the requested port is taken
        logging.getLogger(__name__).error("cannot start: %s", exc)
        print(f"cannot start the embedded server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
