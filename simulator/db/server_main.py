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
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Connections waiting to be accepted.
BACKLOG = 128
#: SQLite page cache per database, in KiB (a fresh batch's 44,000 messages fill about 60 MB).
CACHE_KIB = 64 * 1024
#: Signals that stop the server in order.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: How long a stop waits for the commands under way before it closes the databases (the
#: manager sends SIGKILL 10 s after SIGTERM: ``embedded._terminate``).
DRAIN_S = 5.0


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

    Each database's SQLite connection also gets a page cache of ``CACHE_KIB`` (SQLite's
    default is 2 MB, a few thousand messages; the cache grows only as pages are read).
    """
    import nx_27017.handler as nx

    found: Callable[[Any], str] | None = getattr(nx, "_msg_db_name", None)
    needed = ("_lock_for", "get_database", "handle_insert", "_open_db_conn")
    if found is None or not all(callable(getattr(base, name, None)) for name in needed):
        logging.getLogger(__name__).warning(
            "this nx-27017 lacks the internals the launcher extends: inserts commit each "
            "document, and each database keeps SQLite's default page cache"
        )
        return base
    db_name_of: Callable[[Any], str] = found

    class GroupedInserts(base):  # type: ignore[misc]
        def _open_db_conn(self, db_name: str) -> Any:
            conn = super()._open_db_conn(db_name)
            conn.db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            return conn

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


#: MongoDB's error code for a ``getMore`` of a cursor the server does not hold.
CURSOR_NOT_FOUND = 43


class _CursorLost(Exception):
    """A ``getMore`` named a cursor the server no longer holds."""


def lost_cursors_fail(base: type[Any]) -> type[Any]:
    """``base`` (nx-27017's handler) answering a ``getMore`` of a cursor it does not hold with
    CursorNotFound (code 43), as MongoDB does, instead of an empty last batch.

    Why: nx-27017 keeps the rest of a query's results as a cursor of the connection that ran
    it and drops it when that connection closes, while a driver sends the ``getMore`` on any
    connection of its pool. The empty last batch it answered for a dropped cursor ended the
    reader's loop as if every document had been read: a transcript, or the messages a resume
    continues from, cut short without a word. With the error the read fails loudly (a
    conversation that was reading its messages fails with the reason and runs again at the
    next resume). When a later nx-27017 no longer has the method this extends, ``base`` is
    returned unchanged (with a warning in the log).
    """
    if not callable(getattr(base, "_getmore_data", None)):
        logging.getLogger(__name__).warning(
            "this nx-27017 lacks the cursor internals the launcher extends: a getMore of a "
            "dropped cursor answers an empty last batch"
        )
        return base

    class LostCursorsFail(base):  # type: ignore[misc]
        def _getmore_data(self, cursor_id: int, batch_size: int) -> Any:
            data = super()._getmore_data(cursor_id, batch_size)
            if data is None:  # unknown: a cursor's last batch removes it and answers id 0
                raise _CursorLost(cursor_id)
            return data

        def handle_command(self, msg: dict[str, Any]) -> Any:
            try:
                return super().handle_command(msg)
            except _CursorLost as lost:
                return msg["request_id"], {
                    "ok": 0,
                    "code": CURSOR_NOT_FOUND,
                    "codeName": "CursorNotFound",
                    "errmsg": f"cursor id {lost.args[0]} not found",
                }

    return LostCursorsFail


class _Stop(Exception):
    """Raised by the signal handlers to end the accept loop."""


class _Draining:
    """The handler, counting the commands it runs, so that a stop waits for those under way
    before it closes the databases (a command cut short by the close would fail in its
    client's thread); commands arriving after the stop began are refused with an error."""

    def __init__(self, handler: Any) -> None:
        self._handler = handler
        self._idle = threading.Condition()
        self._running = 0
        self._stopping = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handler, name)

    def _run(self, method: Callable[[Any], Any], msg: Any) -> Any:
        with self._idle:
            if self._stopping:
                raise RuntimeError("the embedded server is stopping")
            self._running += 1
        try:
            return method(msg)
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def handle_command(self, msg: Any) -> Any:
        return self._run(self._handler.handle_command, msg)

    def handle_insert(self, msg: Any) -> Any:
        return self._run(self._handler.handle_insert, msg)

    def handle_query(self, msg: Any) -> Any:
        return self._run(self._handler.handle_query, msg)

    def drain(self, timeout_s: float) -> int:
        """Refuse new commands, wait for the running ones; returns how many still run."""
        with self._idle:
            self._stopping = True
            self._idle.wait_for(lambda: self._running == 0, timeout_s)
            return self._running


def _serve(args: argparse.Namespace) -> None:
    """Accept connections until SIGTERM, SIGINT or SIGHUP; one thread per client connection.

    Why threads and not nx-27017's asyncio server: there every command crossed from the event
    loop to a worker thread and back (a thread pool's hand-off, a wake-up of the loop), which
    cost the server more CPU than many commands themselves: a ``ping`` 0.14-0.29 ms of server
    CPU against 0.055-0.12 here, an ``insert`` of 7 documents 0.66-1.16 ms against 0.52-0.76
    (docs/benchmarks.md). A connection carries one command at a time, so its thread reads,
    runs and answers each in turn; nx-27017's per-database lock orders the writes as before.
    """
    # Imported here so that `--help` and argument errors do not pay for the import.
    from nx_27017.handler import NeoSQLiteHandler
    from nx_27017.server import handle_client_threaded

    handler_class = lost_cursors_fail(grouped_inserts(NeoSQLiteHandler))
    base = handler_class(str(args.data_dir), journal_mode="WAL", data_dir=str(args.data_dir))
    handler = _Draining(base)

    def serve_client(client: socket.socket) -> None:
        with contextlib.suppress(OSError):  # each answer is one write: no Nagle delay
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        handle_client_threaded(client, handler)

    def stop(signum: int, frame: Any) -> None:
        raise _Stop

    listener = socket.create_server((args.host, args.port), backlog=BACKLOG)
    port = listener.getsockname()[1]
    log = logging.getLogger(__name__)
    log.warning(
        "embedded server pid %d listening on %s:%d, data in %s",
        os.getpid(),
        args.host,
        port,
        args.data_dir,
    )
    try:
        for sig in STOP_SIGNALS:
            signal.signal(sig, stop)
        if args.port_file:
            _write_atomically(args.port_file, json.dumps({"pid": os.getpid(), "port": port}))
        with listener:
            while True:
                try:
                    client, _ = listener.accept()
                except OSError as exc:  # e.g. out of file descriptors: keep serving the others
                    log.warning("accept failed: %s", exc)
                    time.sleep(0.05)
                    continue
                threading.Thread(
                    target=serve_client, args=(client,), name="client", daemon=True
                ).start()
    except _Stop:
        pass
    finally:
        for sig in STOP_SIGNALS:  # a second signal must not cut the close short
            signal.signal(sig, signal.SIG_IGN)
        still = handler.drain(DRAIN_S)
        if still:
            log.warning("%d command(s) still running after %.0f s; closing anyway", still, DRAIN_S)
        # Every acknowledged write is already committed by SQLite; closing checkpoints the WAL.
        base.close_all()
        log.warning("embedded server pid %d stopped", os.getpid())


#: How long a thread may hold the GIL while another waits for it. Each client's thread reads
#: its requests while others write: with Python's default (5 ms) a request arriving during a
#: long write waited up to that long just to be read; 1 ms shortened every message's store by
#: about a millisecond under a batch's load (docs/benchmarks.md).
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
        _serve(args)
    except OSError as exc:  # e.g. the requested port is taken
        logging.getLogger(__name__).error("cannot start: %s", exc)
        print(f"cannot start the embedded server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
