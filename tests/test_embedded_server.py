"""The embedded server manager against the real nx-27017 server: start/stop, stale state, sharing
between instances and processes, durability under SIGKILL, and the ``simulator db`` commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from simulator.cli import main as cli_main
from simulator.db.embedded import (
    EmbeddedServer,
    ServerInUseError,
    ping,
    process_start_time,
)
from simulator.db.mongo import close_store, open_store
from simulator.domain import Experiment, Role
from simulator.domain.errors import DatabaseUnavailableError
from simulator.settings import Settings
from tests.plugins.waiting import wait_until_sync

ROOT = Path(__file__).resolve().parent.parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def _env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["SIMULATOR_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    for var in ("MONGODB_URI", "DB_CLUSTER_URL", "DB_USER", "DB_PASSWORD"):
        env.pop(var, None)
    return env


@pytest.fixture
def server_dir(tmp_path: Path) -> Iterator[Path]:
    """A data directory whose server (if any test left one) is stopped afterwards."""
    path = tmp_path / "mongo"
    yield path
    EmbeddedServer(path).shutdown(force=True)


def _write_state(server_dir: Path, **state: object) -> None:
    server_dir.mkdir(parents=True, exist_ok=True)
    (server_dir / "server.json").write_text(json.dumps(state))


# --------------------------------------------------------------------------- start / stop


def test_start_stop_and_data_survive_a_restart(server_dir: Path) -> None:
    server = EmbeddedServer(server_dir)
    uri = server.start()
    pid = server.pid
    assert pid is not None and server.started_here
    st = server.status()
    assert (st.running, st.responding, st.pid, st.uri) == (True, True, pid, uri)
    assert json.loads((server_dir / "server.json").read_text())["pid"] == pid
    with MongoClient(uri) as client:
        client.t.notes.insert_one({"_id": "n1", "text": "kept"})

    server.stop()

    assert not _alive(pid)  # stop() returns after the process is gone
    assert not server.status().running
    assert not (server_dir / "server.json").exists()
    assert not ping(int(uri.rsplit(":", 1)[1].strip("/")), timeout_s=0.3)
    again = EmbeddedServer(server_dir)
    with again, MongoClient(again.uri) as client:
        assert client.t.notes.find_one({"_id": "n1"}) == {"_id": "n1", "text": "kept"}
    assert again.status().db_bytes > 0


def test_start_failure_explains_with_the_log_tail(server_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = EmbeddedServer(server_dir, port=port, start_timeout_s=10)

        with pytest.raises(DatabaseUnavailableError) as err:
            server.start()

    assert "exited at start-up" in str(err.value)
    assert "cannot start" in str(err.value)  # from the server's log
    assert not server.status().running


@pytest.mark.parametrize("kind", ["dead pid", "live pid of another program", "garbage"])
def test_stale_state_does_not_block_the_next_start(server_dir: Path, kind: str) -> None:
    if kind == "dead pid":
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        _write_state(server_dir, pid=gone.pid, port=1, start_time=None)
    elif kind == "live pid of another program":
        # Our parent (the shell or runner) is alive and its start time matches: only the command
        # line tells that it is not our server.
        parent = os.getppid()
        _write_state(server_dir, pid=parent, port=1, start_time=process_start_time(parent))
    else:
        server_dir.mkdir(parents=True)
        (server_dir / "server.json").write_text("{not json")

    server = EmbeddedServer(server_dir)
    with server:
        assert server.started_here
        assert server.pid != os.getppid()
        with MongoClient(server.uri) as client:
            assert client.admin.command("ping")["ok"] == 1
    assert os.getppid() != 1 and _alive(os.getppid())  # the other program was left alone


def test_reused_pid_is_not_mistaken_for_the_server(server_dir: Path) -> None:
    """A state file naming a live process whose start time differs (pid reuse) is stale."""
    me = os.getpid()
    _write_state(server_dir, pid=me, port=1, start_time="not-my-start-time")

    with EmbeddedServer(server_dir) as server:
        assert server.started_here and server.pid != me


# --------------------------------------------------------------------------- sharing


def test_two_instances_share_one_server_and_the_last_stops_it(server_dir: Path) -> None:
    first, second = EmbeddedServer(server_dir), EmbeddedServer(server_dir)
    uri = first.start()

    assert second.start() == uri
    assert (first.started_here, second.started_here) == (True, False)
    assert first.status().clients == 2
    with MongoClient(uri) as client:
        client.t.x.insert_one({"_id": 1})

    first.stop()  # the starter leaves first: the server stays for the other
    assert ping(second.port or 0)
    with MongoClient(second.uri) as client:
        assert client.t.x.count_documents({}) == 1

    second.stop()
    assert not _alive(first.pid or 0)
    assert not second.status().running


_JOIN = textwrap.dedent(
    """
    import sys
    from simulator.db.embedded import EmbeddedServer
    s = EmbeddedServer(sys.argv[1])
    print(s.start(), s.started_here, flush=True)
    sys.stdin.readline()  # hold the server until told (or killed)
    s.stop()
    """
)


def _joiner(server_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _JOIN, str(server_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=_env(server_dir.parent),
    )


def test_processes_starting_together_share_one_server(server_dir: Path) -> None:
    procs = [_joiner(server_dir) for _ in range(3)]
    try:
        lines = [p.stdout.readline().split() for p in procs if p.stdout]
        uris = {uri for uri, _ in lines}
        starters = [started for _, started in lines]
        assert len(uris) == 1, lines
        assert sorted(starters) == ["False", "False", "True"]
        assert EmbeddedServer(server_dir).status().clients == 3
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_a_client_killed_without_stopping_does_not_keep_the_server(server_dir: Path) -> None:
    app = _joiner(server_dir)
    assert app.stdout is not None
    uri, started = app.stdout.readline().split()
    assert started == "True"
    me = EmbeddedServer(server_dir)
    assert me.start() == uri and not me.started_here
    server_pid = me.pid or 0

    app.kill()  # SIGKILL: its client file stays behind
    app.wait()
    assert _alive(server_pid)  # the server outlives the app that started it (own session)

    me.stop()  # the dead client is pruned; nobody else uses the server

    assert not _alive(server_pid)


def test_db_stop_refuses_while_others_use_it_unless_forced(
    server_dir: Path,
    tmp_data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_data_dir)  # no project .env
    user = EmbeddedServer(tmp_data_dir / "mongo")
    user.start()

    assert cli_main(["db", "stop"]) == 2
    assert "--force" in capsys.readouterr().err
    assert user.status().running
    with pytest.raises(ServerInUseError):
        EmbeddedServer(tmp_data_dir / "mongo").shutdown()

    assert cli_main(["db", "stop", "--force"]) == 0
    assert "Stopped the embedded server" in capsys.readouterr().out
    assert not _alive(user.pid or 0)
    user.stop()  # harmless afterwards


# --------------------------------------------------------------------------- app wiring


async def test_open_store_uses_the_embedded_server_unless_a_uri_is_configured(
    tmp_data_dir: Path, mongo_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("MONGODB_URI", "DB_CLUSTER_URL", "DB_USER", "DB_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(_env_file=None, mongodb_db="app")
    store, server = await open_store(settings)
    try:
        assert server is not None and server.data_dir == tmp_data_dir / "mongo"
        exp = await store.experiments.create(Experiment(name="E", roles=[Role(name="r")]))
    finally:
        await close_store(store, server)
    assert not server.status().running  # the app was its only user

    store, server = await open_store(settings)  # started again: the data is still there
    try:
        assert await store.experiments.get(exp.id) is not None
    finally:
        await close_store(store, server)

    configured = Settings(_env_file=None, mongodb_uri=mongo_uri, mongodb_db="app_configured")
    store, server = await open_store(configured)
    try:
        assert server is None
        assert store.db_name == "app_configured"
        assert await store.experiments.list() == []
    finally:
        await store.drop_database()
        await close_store(store, server)


# --------------------------------------------------------------------------- durability


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from simulator.db.mongo import connect_store
    from simulator.domain import Message

    async def main(uri):
        store = await connect_store(uri, "durability", timeout_ms=2000)
        seq = 0
        try:
            while True:
                msg = Message(conversation_id="c1", seq=seq, speaker="A", role="r",
                              content="x" * 200)
                if await store.messages.append(msg):
                    print(seq, flush=True)  # acknowledged by the server
                seq += 1
        except Exception as exc:
            print("stopped:", type(exc).__name__, file=sys.stderr)

    asyncio.run(main(sys.argv[1]))
    """
)


def test_every_acknowledged_write_survives_sigkill(server_dir: Path) -> None:
    server = EmbeddedServer(server_dir)
    uri = server.start()
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, uri],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env=_env(server_dir.parent),
    )
    assert writer.stdout is not None
    acknowledged: list[int] = []
    while len(acknowledged) < 150:
        line = writer.stdout.readline()
        assert line, "the writer stopped early"
        acknowledged.append(int(line))
    os.kill(server.pid or 0, signal.SIGKILL)  # mid-stream: the writer is still writing
    rest = writer.stdout.read()  # everything it printed until it gave up
    writer.wait(timeout=60)
    acknowledged += [int(x) for x in rest.split() if x.isdigit()]
    assert "stopped:" in rest  # the writer saw the server die mid-write

    restarted = EmbeddedServer(server_dir)  # the state file now names a dead pid
    with restarted, MongoClient(restarted.uri) as client:
        assert restarted.started_here
        stored = {d["seq"] for d in client.durability.messages.find({}, {"seq": 1})}

    print(f"acknowledged {len(acknowledged)} writes before SIGKILL; {len(stored)} stored")
    assert acknowledged == list(range(len(acknowledged)))
    assert set(acknowledged) <= stored
    server.stop()


def test_many_clients_at_once_are_each_answered_and_a_stop_with_them_connected_is_clean(
    server_dir: Path,
) -> None:
    """The server gives each connection its own thread: clients writing and reading at once
    all get their answers, and SIGTERM with connections still open stops it in order (its
    log says so; nothing had to be killed) with every acknowledged write kept."""
    server = EmbeddedServer(server_dir)
    uri = server.start()
    clients = [MongoClient(uri, maxPoolSize=4) for _ in range(12)]
    errors: list[BaseException] = []

    def work(k: int, client: MongoClient) -> None:  # type: ignore[type-arg]
        try:
            notes = client.t.notes
            for i in range(40):
                notes.insert_one({"_id": f"{k}-{i}", "k": k, "i": i})
                notes.update_one({"_id": f"{k}-{i}"}, {"$set": {"seen": f"by {k}"}})
                assert notes.find_one({"_id": f"{k}-{i}"}, {"seen": 1})["seen"] == f"by {k}"
            notes.insert_many([{"_id": f"{k}-many-{j}", "k": k} for j in range(25)])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k, c)) for k, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert clients[0].t.notes.count_documents({}) == 12 * (40 + 25)

    pid = server.pid
    server.stop()  # the twelve clients are still connected

    log = server.log_file.read_text(encoding="utf-8")
    assert f"embedded server pid {pid} stopped" in log
    assert "ignored SIGTERM" not in log
    for client in clients:
        client.close()
    again = EmbeddedServer(server_dir)
    with again, MongoClient(again.uri) as client:
        assert client.t.notes.count_documents({"seen": {"$exists": True}}) == 12 * 40
        assert client.t.notes.count_documents({}) == 12 * (40 + 25)


def test_a_cursor_dropped_with_its_connection_fails_its_getmore_instead_of_ending_short(
    server_dir: Path,
) -> None:
    """nx-27017 drops the rest of a query's results when the connection that ran it closes,
    while a driver sends the getMore on any connection of its pool. The launcher answers such
    a getMore with CursorNotFound, as MongoDB does: the reader gets every document or an
    error, never a silently shorter list (it got an empty last batch)."""
    server = EmbeddedServer(server_dir)
    uri = server.start()
    try:
        with MongoClient(uri) as reader:
            reader.t.docs.insert_many([{"_id": i} for i in range(100)])
            status = reader.admin.command("serverStatus")["connections"]["current"]
            opener: MongoClient[dict[str, object]] = MongoClient(uri, maxPoolSize=1)
            first = opener.t.command("find", "docs", batchSize=1)["cursor"]
            cursor_id, got = first["id"], list(first["firstBatch"])
            assert cursor_id != 0
            opener.close()  # the connection that holds the cursor goes away

            def closed() -> bool:
                now = reader.admin.command("serverStatus")["connections"]["current"]
                return bool(now < status + 1)

            wait_until_sync(closed, what="the opener's connections to close")
            with pytest.raises(OperationFailure) as lost:
                while cursor_id:  # the reader's own connection asks for the rest
                    more = reader.t.command("getMore", cursor_id, collection="docs")["cursor"]
                    cursor_id = more["id"]
                    got += more["nextBatch"]
                raise AssertionError(f"ended after {len(got)} of 100 documents without an error")
            assert lost.value.code == 43, lost.value.details  # CursorNotFound
            assert len(got) < 100
    finally:
        server.stop()


def test_a_stop_waits_for_the_commands_under_way_and_refuses_new_ones() -> None:
    """The server's stop closes the databases only once the commands running in client
    threads have ended (a close under a running write would fail it); a command arriving
    after the stop began gets an error answer. A handler that blocks on demand stands in for
    a long write, which a real one cannot be made to be at a chosen moment."""
    from simulator.db.server_main import _Draining

    entered, release = threading.Event(), threading.Event()

    class Blocking:
        closed = False

        def handle_command(self, msg: object) -> str:
            if msg == "find":  # the long one
                entered.set()
                release.wait(30)
            return f"answered {msg}"

    draining = _Draining(Blocking())
    answers: list[str] = []
    client = threading.Thread(target=lambda: answers.append(draining.handle_command("find")))
    client.start()
    assert entered.wait(30)
    left: list[int] = []
    stopper = threading.Thread(target=lambda: left.append(draining.drain(30)))
    stopper.start()
    with pytest.raises(RuntimeError, match="stopping"):  # refused once the stop has begun
        while True:
            draining.handle_command("late")  # answered until the stop has begun
    assert stopper.is_alive() and not left  # the stop waits for the running command
    release.set()
    stopper.join(30)
    client.join(30)
    assert (left, answers) == ([0], ["answered find"])
    assert draining.closed is False  # other attributes are the handler's


# --------------------------------------------------------------------------- commands


def test_db_serve_prints_a_uri_a_plain_client_can_use(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "db", "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,  # no project .env
        env=_env(data),
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        uri = next(w for w in first.split() if w.startswith("mongodb://"))
        with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
            assert client.admin.command("ping")["ok"] == 1
            client.lab.notes.insert_one({"_id": "a", "text": "hello"})
            assert client.lab.notes.find_one({"_id": "a"})["text"] == "hello"
        pid = EmbeddedServer(data / "mongo").status().pid
        assert pid is not None
        # Own session: a Ctrl-C sent to the terminal's foreground group never reaches the server.
        assert os.getsid(pid) != os.getsid(proc.pid)

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out = proc.stdout.read()  # until the command exits
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        EmbeddedServer(data / "mongo").shutdown(force=True)

    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert pid is not None and not _alive(pid)
    assert str(data / "mongo") in first + out


def test_db_status_names_the_data_directory_and_redacts_the_uri(
    tmp_data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_data_dir)  # no project .env
    for var in ("MONGODB_URI", "DB_CLUSTER_URL", "DB_USER", "DB_PASSWORD"):
        monkeypatch.delenv(var, raising=False)

    assert cli_main(["db", "status"]) == 0
    out = capsys.readouterr().out
    assert "not running" in out
    assert str(tmp_data_dir / "mongo") in out
    assert "the embedded server, database 'simulator'" in out

    with EmbeddedServer(tmp_data_dir / "mongo") as server:
        monkeypatch.setenv("MONGODB_URI", "mongodb://ada:pa55word@db.example.org:27017/")
        assert cli_main(["db", "status"]) == 0
        out = capsys.readouterr().out
    assert f"running (pid {server.pid}" in out
    assert server.uri is not None and server.uri in out
    assert str(tmp_data_dir / "mongo") in out
    assert "mongodb://ada:***@db.example.org:27017/" in out
    assert "pa55word" not in out
