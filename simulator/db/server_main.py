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
from pathlib import Path


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


async def _serve(args: argparse.Namespace) -> None:
    # Imported here so that `--help` and argument errors do not pay for the import.
    from nx_27017.handler import NeoSQLiteHandler
    from nx_27017.server import handle_client

    handler = NeoSQLiteHandler(str(args.data_dir), journal_mode="WAL", data_dir=str(args.data_dir))

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
