"""``simulator db status|serve|stop``: manage the embedded local database server by hand."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from simulator.db.embedded import EmbeddedServer, default_data_dir
from simulator.domain.errors import SimulatorError
from simulator.words import plural


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = subparsers.add_parser(
        "db",
        help="the embedded local database server: status, serve, stop",
        description=(
            "With no MONGODB_URI (or DB_CLUSTER_URL) configured, the app stores its data in an "
            "embedded MongoDB-compatible server (nx-27017 over SQLite) that it starts on a free "
            "loopback port and stops on exit. These commands inspect and manage it by hand."
        ),
    )
    sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)

    status = sub.add_parser(
        "status", help="is the embedded server running; its URI, pid and data directory"
    )
    status.set_defaults(func=cmd_status, uses_database=False)

    serve = sub.add_parser(
        "serve",
        help="start the embedded server (or join the running one), print its URI, run until Ctrl-C",
        description=(
            "Start the embedded server (or reuse the one already running for this data "
            "directory), print the mongodb:// URI it listens on, and keep it running until "
            "interrupted (Ctrl-C). Any MongoDB client or tool can connect to that URI meanwhile."
        ),
    )
    serve.add_argument(
        "--port", type=int, default=0, help="port to listen on (default: a free port)"
    )
    serve.set_defaults(func=cmd_serve, uses_database=False)

    stop = sub.add_parser("stop", help="stop the embedded server")
    stop.add_argument(
        "--force",
        action="store_true",
        help="stop it even while other simulator processes use it",
    )
    stop.set_defaults(func=cmd_stop, uses_database=False)


def _server() -> EmbeddedServer:
    from simulator.commands.common import command_root

    return EmbeddedServer(default_data_dir(command_root().settings))


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _database_in_use() -> str:
    """Which database the app would use and why (a remembered login included), with any
    password redacted."""
    from simulator.commands.common import command_root
    from simulator.services.root import Source
    from simulator.settings import redact_uri

    root = command_root()
    try:
        target = root.target()
    except SimulatorError as exc:
        return f"configuration problem: {exc}"
    db = root.settings.mongodb_db
    if target.uri is None:
        return f"the embedded server, database {db!r}"
    why = f" ({target.source.value})" if target.source is Source.remembered else ""
    return f"{redact_uri(target.uri.get_secret_value())}, database {db!r}{why}"


def cmd_status(args: argparse.Namespace) -> int:
    server = _server()
    st = server.status()
    if st.running:
        answer = "answering" if st.responding else "NOT answering ping"
        print(f"Embedded server: running (pid {st.pid}, since {st.started_at}, {answer})")
        print(f"  URI:            {st.uri}")
        print(f"  Clients:        {plural(st.clients, 'simulator process')}")
    else:
        print("Embedded server: not running (the app starts it when needed)")
    print(f"  Data directory: {st.data_dir}")
    print(f"  Database files: {_size(st.db_bytes)}")
    print(f"  Server log:     {st.log_file}")
    print(f"The app uses:     {_database_in_use()}")
    return 0


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def cmd_serve(args: argparse.Namespace) -> int:
    server = _server()
    server.requested_port = args.port
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        uri = server.start()
        joined = "" if server.started_here else " (already running; joined it)"
        print(f"Embedded MongoDB-compatible server listening on {uri}{joined}")
        if args.port and server.port != args.port:
            print(f"  note: it was already running on port {server.port}, not {args.port}")
        print(f"  Data directory: {server.data_dir}")
        print("  Connect with any MongoDB client, e.g. pymongo.MongoClient(URI).")
        print("Press Ctrl-C to stop.", flush=True)
        while server.status(check_ping=False).running:
            time.sleep(0.5)
        print("The embedded server was stopped elsewhere.", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Stop):
        print("Stopping...", flush=True)
        return 0
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


def cmd_stop(args: argparse.Namespace) -> int:
    server = _server()
    pid = server.status(check_ping=False).pid
    if server.shutdown(force=args.force):
        print(f"Stopped the embedded server (pid {pid}); data kept in {server.data_dir}")
    else:
        print(f"No embedded server is running for {server.data_dir}")
    return 0
