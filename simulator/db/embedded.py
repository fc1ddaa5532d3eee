"""The embedded local MongoDB-compatible server: start, share, stop.

When no MongoDB is configured the app runs ``nx-27017`` (MongoDB wire protocol over SQLite) through
our launcher ``simulator.db.server_main``, on a free loopback port, with its files under
``simulator.paths.embedded_db_dir()``::

    <dir>/server.json   state: pid, port, start time and command line of the running server
    <dir>/server.lock   flock held while a process starts, adopts or stops the server
    <dir>/server.log    the server's own log (warnings only: requests are never logged)
    <dir>/clients/      one file per app process using the server (reference count)
    <dir>/db/           the SQLite files, one per database

Sharing rule: every ``EmbeddedServer.start()`` registers a client; a process that finds a live
server of ours recorded in ``server.json`` connects to it instead of starting another one (two
servers on one set of SQLite files would fight over the files). ``stop()`` unregisters, and the
server is stopped when no live client remains. Clients that died without unregistering (SIGKILL,
power loss) are pruned by pid and process start time, so a crash never keeps the server alive for
ever nor blocks the next start; a state file whose process is gone, or whose pid now belongs to
another program, is stale and ignored.

The server runs in its own session (process group): Ctrl-C in the terminal of the TUI does not reach
it mid-write; the app stops it on exit.

Supervision (``supervise``): the app watches the server it uses. When that process dies (killed,
crashed) while its state file still names it, the server is started again once, under the same
lock, on the same port and the same files, so every client (in this process and in the others
sharing it) reconnects by itself; the driver's retry of the interrupted operation then succeeds.
A server stopped on purpose (``simulator db stop``) clears its state first and is not restarted.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.domain.errors import DatabaseUnavailableError

if TYPE_CHECKING:
    from simulator.settings import Settings

log = logging.getLogger(__name__)

STATE_FILE = "server.json"
LOCK_FILE = "server.lock"
LOG_FILE = "server.log"
PORT_FILE = "server.port"
CLIENTS_DIR = "clients"
DB_DIR = "db"
LAUNCHER = "simulator.db.server_main"
HOST = "127.0.0.1"

# Processes started by this interpreter, to reap them (a zombie still "exists" for kill 0).
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    data_dir: Path
    pid: int | None = None
    port: int | None = None
    started_at: str | None = None
    responding: bool | None = None  # None: not checked (not running)
    clients: int = 0
    db_bytes: int = 0

    @property
    def uri(self) -> str | None:
        return server_uri(self.port) if self.running and self.port else None

    @property
    def log_file(self) -> Path:
        return self.data_dir / LOG_FILE


def default_data_dir(settings: Settings | None = None) -> Path:
    """The embedded server's directory: ``SIMULATOR_DATA_DIR`` (environment or ``.env``) + mongo."""
    from simulator.domain.errors import ConfigurationError

    configured = settings.simulator_data_dir if settings is not None else None
    try:
        if configured:
            path = Path(configured).expanduser() / "mongo"
            path.mkdir(parents=True, exist_ok=True)
            return path
        from simulator.paths import embedded_db_dir

        return embedded_db_dir()
    except OSError as exc:
        raise ConfigurationError(
            f"The embedded database's directory cannot be created ({exc.strerror or exc}: "
            f"{exc.filename}). Set SIMULATOR_DATA_DIR to a writable directory.",
            title="Invalid setting",
        ) from None


def server_uri(port: int, host: str = HOST) -> str:
    return f"mongodb://{host}:{port}/"


# --------------------------------------------------------------------------- processes


def _pid_alive(pid: int) -> bool:
    """True when ``pid`` runs (zombies count as dead: they hold no files and answer nothing)."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _children.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    stat = _read_proc_stat(pid)
    return not (stat is not None and stat[0] == "Z")


def _read_proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (Linux), else None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _ps(pid: int, field: str) -> str | None:
    try:
        out = subprocess.run(
            ["ps", "-p", str(pid), "-o", f"{field}="],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def process_start_time(pid: int) -> str | None:
    """An identifier of the process's start, so that a reused pid is not mistaken for it."""
    stat = _read_proc_stat(pid)
    if stat is not None:
        return stat[19]  # field 22 (starttime, clock ticks since boot)
    return _ps(pid, "lstart")


def process_cmdline(pid: int) -> str | None:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return _ps(pid, "command")


def _same_process(pid: int, start_time: str | None) -> bool:
    if not _pid_alive(pid):
        return False
    return start_time is None or process_start_time(pid) == start_time


def _terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                _children.pop(pid, None)
                return
            time.sleep(0.05)
        if sig is signal.SIGTERM:
            log.warning("embedded server pid %d ignored SIGTERM for %.0fs; killing it", pid, wait)
    _children.pop(pid, None)


def ping(port: int, timeout_s: float = 2.0, host: str = HOST) -> bool:
    """True when a MongoDB wire-protocol server on ``host:port`` answers ``ping``."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    ms = int(timeout_s * 1000)
    client: MongoClient[dict[str, Any]] = MongoClient(
        server_uri(port, host),
        serverSelectionTimeoutMS=ms,
        connectTimeoutMS=ms,
        socketTimeoutMS=ms,
        directConnection=True,
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


# --------------------------------------------------------------------------- the manager


class EmbeddedServer:
    """Start (or join) the embedded server for a data directory; ``stop()`` leaves it.

    Synchronous (files, locks and a subprocess); from async code call ``start``/``stop`` through
    ``asyncio.to_thread`` (``simulator.db.mongo.open_store`` does).
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        port: int = 0,
        start_timeout_s: float = 30.0,
    ) -> None:
        if data_dir is None:
            data_dir = default_data_dir()
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.requested_port = port
        self.start_timeout_s = start_timeout_s
        self.port: int | None = None
        self.pid: int | None = None
        self.started_here = False  # this instance launched the process (as opposed to joining it)
        self.restarts = 0  # times this instance started the server again after it died
        self._client_file: Path | None = None
        self._supervisor: threading.Thread | None = None
        self._stop_supervising = threading.Event()

    # ----------------------------------------------------------------- paths

    @property
    def state_file(self) -> Path:
        return self.data_dir / STATE_FILE

    @property
    def log_file(self) -> Path:
        return self.data_dir / LOG_FILE

    @property
    def db_dir(self) -> Path:
        return self.data_dir / DB_DIR

    @property
    def clients_dir(self) -> Path:
        return self.data_dir / CLIENTS_DIR

    @property
    def uri(self) -> str | None:
        return server_uri(self.port) if self.port else None

    @property
    def running(self) -> bool:
        return self._client_file is not None

    # ----------------------------------------------------------------- public API

    def start(self) -> str:
        """Join the running server of this data directory, or start one; returns its URI."""
        if self._client_file is not None and self.uri:
            return self.uri
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            state = self._live_state()
            if state is not None and not self._answers(state["port"]):
                log.warning(
                    "embedded server pid %d does not answer on port %d; restarting it",
                    state["pid"],
                    state["port"],
                )
                _terminate(state["pid"])
                self._clear_state()
                state = None
            if state is None:
                state = self._launch()
                self.started_here = True
            self.pid, self.port = state["pid"], state["port"]
            self._register_client()
        atexit.register(self.stop)
        log.info("using embedded server pid %d at %s (data in %s)", self.pid, self.uri, self.db_dir)
        assert self.uri is not None
        return self.uri

    def supervise(self, *, interval_s: float = 0.5, restarts: int = 1) -> None:
        """Watch the server from a daemon thread; restart it (at most ``restarts`` times) when
        its process dies. ``stop`` ends the watch."""
        if self._supervisor is not None or self._client_file is None:
            return
        self._stop_supervising.clear()
        thread = threading.Thread(
            target=self._watch, args=(interval_s, restarts), name="embedded-server", daemon=True
        )
        self._supervisor = thread
        thread.start()

    def _watch(self, interval_s: float, restarts: int) -> None:
        while not self._stop_supervising.wait(interval_s):
            pid = self.pid
            if pid is None or self._client_file is None:
                return
            if _pid_alive(pid):
                continue
            if self.restarts >= restarts:
                log.warning("embedded server pid %d died again; not restarting it", pid)
                return
            try:
                restarted = self.restart_if_dead(pid)
            except Exception:
                log.exception("restarting the embedded server failed")
                return
            if restarted:
                log.warning(
                    "embedded server pid %d died; restarted as pid %s on port %s (same files)",
                    pid, self.pid, self.port,
                )  # fmt: skip
            elif self.pid == pid:  # stopped on purpose: nothing left to watch
                return

    @property
    def supervising(self) -> bool:
        """The watch of ``supervise`` is on (it ends after its restarts, or on a stop)."""
        return self._supervisor is not None and self._supervisor.is_alive()

    def restart_if_dead(self, dead_pid: int) -> bool:
        """Start the server again on the same port and files if ``dead_pid`` (the server this
        instance used) is gone and was not stopped on purpose; True when this call did it. A
        server restarted meanwhile by another process is adopted."""
        with self._locked():
            if self._client_file is None:
                return False
            state = self._live_state()
            if state is not None:  # alive, or already restarted by another client
                self.pid, self.port = state["pid"], state["port"]
                return False
            recorded = self._read_state()
            if recorded is None or recorded.get("pid") != dead_pid:
                return False  # stopped on purpose (state cleared): leave it stopped
            requested, self.requested_port = self.requested_port, self.port or 0
            try:
                state = self._launch(keep_clients=True)
            finally:
                self.requested_port = requested
            self.pid, self.port = state["pid"], state["port"]
            self.restarts += 1
            return True

    def stop(self) -> None:
        """Leave the server; stop it when no other live process uses it. Idempotent."""
        self._end_supervision()
        if self._client_file is None:
            return
        atexit.unregister(self.stop)
        with self._locked():
            self._client_file.unlink(missing_ok=True)
            self._client_file = None
            remaining = self._live_clients()
            if remaining:
                log.info("embedded server left running for %d other client(s)", len(remaining))
            else:
                state = self._live_state()
                if state is not None:
                    log.info("stopping embedded server pid %d", state["pid"])
                    _terminate(state["pid"])
                self._clear_state()

    def shutdown(self, *, force: bool = False) -> bool:
        """Stop the server whoever uses it (``simulator db stop``). Returns False when none ran.

        Without ``force``, raises ServerInUseError when live clients other than this instance
        are registered.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._end_supervision()
        with self._locked():
            state = self._live_state()
            others = [c for c in self._live_clients() if c != self._client_file]
            if state is not None and others and not force:
                raise ServerInUseError(len(others))
            if self._client_file is not None:
                self._client_file.unlink(missing_ok=True)
                self._client_file = None
                atexit.unregister(self.stop)
            if state is not None:
                _terminate(state["pid"])
            self._clear_state()
            for f in self._client_files():
                f.unlink(missing_ok=True)
            return state is not None

    def status(self, *, check_ping: bool = True) -> ServerStatus:
        """What runs for this data directory (read-only: takes no lock, starts nothing)."""
        state = self._live_state() if self.state_file.exists() else None
        db_bytes = (
            sum(f.stat().st_size for f in self.db_dir.glob("*.db*") if f.is_file())
            if self.db_dir.exists()
            else 0
        )
        if state is None:
            return ServerStatus(running=False, data_dir=self.data_dir, db_bytes=db_bytes)
        return ServerStatus(
            running=True,
            data_dir=self.data_dir,
            pid=state["pid"],
            port=state["port"],
            started_at=state.get("started_at"),
            responding=ping(state["port"], timeout_s=2.0) if check_ping else None,
            clients=len(self._live_clients(prune=False)),
            db_bytes=db_bytes,
        )

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- internals

    def _end_supervision(self) -> None:
        self._stop_supervising.set()
        thread, self._supervisor = self._supervisor, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.start_timeout_s + 20)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive flock on server.lock, waited for at most the start timeout."""
        with open(self.data_dir / LOCK_FILE, "a+") as fh:
            deadline = time.monotonic() + self.start_timeout_s + 15
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise DatabaseUnavailableError(
                            f"Another process holds the lock of the embedded database in "
                            f"{self.data_dir} for too long. If no simulator is running, delete "
                            f"{self.data_dir / LOCK_FILE} and try again."
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    @staticmethod
    def _answers(port: int) -> bool:
        # Patient: killing a server that is merely busy would interrupt another app's batch.
        return ping(port, timeout_s=5.0) or ping(port, timeout_s=5.0)

    def _read_state(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            log.warning("unreadable %s; treating it as stale", self.state_file)
            return None
        if not isinstance(state, dict) or not isinstance(state.get("pid"), int):
            return None
        if not isinstance(state.get("port"), int):
            return None
        return state

    def _live_state(self) -> dict[str, Any] | None:
        """The recorded server if its process still runs and is our launcher on this data dir."""
        state = self._read_state()
        if state is None:
            return None
        pid = state["pid"]
        if not _same_process(pid, state.get("start_time")):
            log.info("stale embedded-server state (pid %d is gone or reused); ignoring it", pid)
            return None
        cmdline = process_cmdline(pid) or ""
        if LAUNCHER not in cmdline or str(self.db_dir) not in cmdline:
            log.info("pid %d in %s is not our server; ignoring it", pid, self.state_file)
            return None
        return state

    def _clear_state(self) -> None:
        self.state_file.unlink(missing_ok=True)
        (self.data_dir / PORT_FILE).unlink(missing_ok=True)

    def _write_state(self, state: dict[str, Any]) -> None:
        tmp = self.state_file.with_name(f"{STATE_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
        os.replace(tmp, self.state_file)

    def _launch(self, *, keep_clients: bool = False) -> dict[str, Any]:
        """Start the launcher and wait until it answers ping. Called with the lock held.
        ``keep_clients``: a restart on the same port, whose clients reconnect to it."""
        self._clear_state()
        if not keep_clients:
            # Registered clients used a server that is gone; they are not users of the new one.
            for f in self._client_files():
                f.unlink(missing_ok=True)
        port_file = self.data_dir / PORT_FILE
        self.db_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            LAUNCHER,
            "--data-dir",
            str(self.db_dir),
            "--port",
            str(self.requested_port),
            "--port-file",
            str(port_file),
            "--log-file",
            str(self.log_file),
        ]
        with open(self.log_file, "ab") as log_fh:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                cwd=str(self.data_dir),
                start_new_session=True,  # Ctrl-C in our terminal must not interrupt it mid-write
                close_fds=True,
            )
        _children[proc.pid] = proc
        start_time = process_start_time(proc.pid)
        deadline = time.monotonic() + self.start_timeout_s
        port: int | None = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                _children.pop(proc.pid, None)
                raise DatabaseUnavailableError(
                    f"The embedded database server exited at start-up (code {proc.returncode}). "
                    f"Its log ({self.log_file}) ends with:\n{self.log_tail()}"
                )
            if port is None:
                try:
                    port = int(json.loads(port_file.read_text(encoding="utf-8"))["port"])
                except (OSError, ValueError, KeyError):
                    time.sleep(0.05)
                    continue
            if ping(port, timeout_s=1.0):
                state = {
                    "pid": proc.pid,
                    "port": port,
                    "host": HOST,
                    "start_time": start_time,
                    "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "started_by": os.getpid(),
                    "db_dir": str(self.db_dir),
                }
                self._write_state(state)
                return state
            time.sleep(0.05)
        _terminate(proc.pid, timeout=2.0)
        raise DatabaseUnavailableError(
            f"The embedded database server did not answer within {self.start_timeout_s:.0f}s. "
            f"Its log ({self.log_file}) ends with:\n{self.log_tail()}"
        )

    def _client_files(self) -> list[Path]:
        if not self.clients_dir.exists():
            return []
        return sorted(self.clients_dir.glob("*.json"))

    def _register_client(self) -> None:
        self.clients_dir.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        path = self.clients_dir / f"{pid}-{uuid.uuid4().hex[:8]}.json"
        tmp = path.with_suffix(".tmp")  # atomic: a reader never sees a half-written file
        tmp.write_text(
            json.dumps({"pid": pid, "start_time": process_start_time(pid)}), encoding="utf-8"
        )
        os.replace(tmp, path)
        self._client_file = path

    def _live_clients(self, *, prune: bool = True) -> list[Path]:
        """Registered clients whose process still runs; files of dead ones are removed (under
        the lock only: ``prune=False`` for lock-free reads)."""
        live = []
        for path in self._client_files():
            try:
                info = json.loads(path.read_text(encoding="utf-8"))
                alive = _same_process(int(info["pid"]), info.get("start_time"))
            except (OSError, ValueError, KeyError, TypeError):
                alive = False
            if alive:
                live.append(path)
            elif prune:
                path.unlink(missing_ok=True)
        return live


class ServerInUseError(DatabaseUnavailableError):
    title = "Embedded server in use"

    def __init__(self, clients: int) -> None:
        super().__init__(
            f"{clients} other simulator process(es) are using the embedded server. Close them "
            "first, or stop it anyway with --force (they will lose their database connection)."
        )
        self.clients = clients
