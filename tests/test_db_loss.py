"""The database dies in the middle of a batch (SIGKILL of an embedded server the test starts):
the run stops scheduling at the first failure, ends with the resume command, and a resume on
the restarted server finishes the batch with nothing lost and nothing duplicated.

The time the run takes to give up is measured by benchmarks/db_loss.py, not here.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pymongo
import pytest

from simulator.cli import main
from simulator.db.embedded import EmbeddedServer
from simulator.db.mongo import connect_store
from simulator.domain import BatchSpec, ModelRef, ModelSet, Provider, Status
from simulator.engine.batch import BatchRunner, StoreLostError
from simulator.engine.events import (
    ConversationFinished,
    ConversationStarted,
    EventBus,
    MessageStored,
    StoreLost,
)
from simulator.llm.registry import Backends
from tests.plugins.batches import make_prison_experiment

REPO = Path(__file__).resolve().parent.parent
TOTAL_MESSAGES = 6


def check_nothing_lost_or_duplicated(db: Any, batch_id: str, cells: int) -> None:
    """Every conversation of the batch is done with exactly its budget of agent messages, the
    sequence numbers of each are dense from 0, and no message is stored twice."""
    convs = list(db.conversations.find({"batch_id": batch_id}))
    assert len(convs) == cells
    assert {c["status"] for c in convs} == {"done"}
    for conv in convs:
        seqs = [m["seq"] for m in db.messages.find({"conversation_id": conv["_id"]})]
        assert sorted(seqs) == list(range(len(seqs))), conv["_id"]  # dense, no duplicates
        utterances = db.messages.count_documents(
            {"conversation_id": conv["_id"], "kind": "utterance"}
        )
        assert utterances == TOTAL_MESSAGES, conv["_id"]
    ids = Counter(m["_id"] for m in db.messages.find({}, {"_id": 1}))
    assert not [i for i, n in ids.items() if n > 1]


def loss_spec(
    experiment_id: str, *, repeats: int, concurrency: int, latency_ms: int = 20
) -> BatchSpec:
    """A batch of ``repeats`` prison-study conversations of TOTAL_MESSAGES on the dryrun
    backend at ``latency_ms`` a call."""
    model = ModelRef(provider=Provider.dryrun, model="dryrun", options={"latency_ms": latency_ms})
    return BatchSpec(
        experiment_id=experiment_id,
        model_sets=[ModelSet(default=model)],
        total_messages=TOTAL_MESSAGES,
        repeats=repeats,
        concurrency=concurrency,
    )


@pytest.fixture
def own_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """An embedded server of this test alone (in tmp_path), stopped afterwards whatever
    happened to it."""
    servers: list[EmbeddedServer] = []

    def start() -> EmbeddedServer:
        server = EmbeddedServer(tmp_path / "mongo")
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


async def test_killed_server_stops_scheduling_at_the_first_failure_and_resume_finishes(
    own_server: Any,
) -> None:
    server = own_server()
    store = await connect_store(server.uri, "loss")
    experiment = await store.experiments.create(make_prison_experiment())
    spec = loss_spec(experiment.id, repeats=12, concurrency=3)
    log: list[Any] = []
    stored = 0

    def record(event: Any) -> None:
        nonlocal stored
        log.append(event)
        if isinstance(event, MessageStored):
            stored += 1
            if stored == 25:  # the kill is chosen by stored progress, mid-batch
                os.kill(server.pid, signal.SIGKILL)

    bus = EventBus()
    bus.subscribe(record)
    runner = BatchRunner(store, Backends(), bus)
    batch = await runner.start(experiment, spec)
    try:
        with pytest.raises(StoreLostError) as info:
            await runner.run(batch.id)
    finally:
        await store.close()
    assert f"simulator resume {batch.id}" in str(info.value)
    assert "Topology" not in str(info.value)

    lost = [i for i, e in enumerate(log) if isinstance(e, StoreLost)]
    assert len(lost) == 1, "the loss is reported once"
    started_after = [e for e in log[lost[0] :] if isinstance(e, ConversationStarted)]
    assert started_after == [], "no conversation starts after the first store failure"
    started = {e.conversation_id for e in log if isinstance(e, ConversationStarted)}
    assert 1 <= len(started) < 12, "the kill came mid-batch"

    # The server comes back (the same files); a resume finishes exactly.
    restarted = own_server()
    store = await connect_store(restarted.uri, "loss")
    try:
        before = await store.batches.get(batch.id)
        assert before is not None and before.status in (Status.running, Status.interrupted)
        ended = await BatchRunner(store, Backends()).resume(batch.id)
        assert ended.status is Status.done, ended.error
    finally:
        await store.close()
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(restarted.uri)
    try:
        check_nothing_lost_or_duplicated(client["loss"], batch.id, cells=12)
    finally:
        client.close()


async def test_a_lease_that_cannot_reach_the_database_stops_the_run(own_server: Any) -> None:
    """The database dies between two conversations: the next one's lease fails, and that
    failure stops the run (StoreLost once) instead of escaping its task unseen while the
    conversations queued behind it try, one after the other, to lease in turn."""
    server = own_server()
    store = await connect_store(server.uri, "lease_loss", timeout_ms=2000)
    experiment = await store.experiments.create(make_prison_experiment())
    # one at a time: the kill lands before the second one's lease
    spec = loss_spec(experiment.id, repeats=4, concurrency=1, latency_ms=0)
    log: list[Any] = []

    def record(event: Any) -> None:
        log.append(event)
        if isinstance(event, ConversationFinished) and server.pid is not None:
            os.kill(server.pid, signal.SIGKILL)

    unseen: list[dict[str, Any]] = []  # tasks that ended in an error nobody retrieved
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: unseen.append(context))
    bus = EventBus()
    bus.subscribe(record)
    runner = BatchRunner(store, Backends(), bus)
    batch = await runner.start(experiment, spec)
    try:
        with pytest.raises(StoreLostError):
            await runner.run(batch.id)
    finally:
        await store.close()
        gc.collect()  # a task's unretrieved error is reported when the task is collected
        loop.set_exception_handler(None)
    assert unseen == []
    assert sum(isinstance(e, StoreLost) for e in log) == 1
    started = [e for e in log if isinstance(e, ConversationStarted)]
    assert len(started) == 1, "nothing starts after the first conversation's end"


def test_cli_run_exits_1_with_the_resume_hint_when_the_server_dies(
    own_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = own_server()
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "experiment: {example: prison_study}\n"
        "batch:\n"
        "  models: [{default: {provider: dryrun, model: dryrun, options: {latency_ms: 20}}}]\n"
        f"  total_messages: {TOTAL_MESSAGES}\n"
        "  repeats: 3\n"
        "  concurrency: 3\n",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "MONGODB_URI": server.uri,
        "MONGODB_DB": "cli_loss",
        "PYTHONPATH": str(REPO),
        "SIMULATOR_LOG_DIR": str(tmp_path / "logs"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "run", str(spec), "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(server.uri)
    try:
        deadline = time.monotonic() + 120  # hang guard
        while client["cli_loss"].messages.count_documents({}) < 40:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.05)
    finally:
        client.close()
    os.kill(server.pid, signal.SIGKILL)
    try:
        out, err = proc.communicate(timeout=120)  # hang guard
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "Topology" not in err
    assert "error: Database lost: The database stopped answering" in err
    (batch_line,) = [line for line in out.splitlines() if line.startswith("Batch ")]
    batch_id = batch_line.split()[1]
    assert f"continue with: simulator resume {batch_id}" in err
    assert len(err.strip().splitlines()) == 1, err  # one readable message

    restarted = own_server()
    monkeypatch.setenv("MONGODB_URI", restarted.uri)
    monkeypatch.setenv("MONGODB_DB", "cli_loss")
    monkeypatch.setenv("SIMULATOR_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.chdir(tmp_path)
    assert main(["resume", batch_id]) == 0
    client = pymongo.MongoClient(restarted.uri)
    try:
        db = client["cli_loss"]
        assert db.batches.find_one({"_id": batch_id})["status"] == "done"
        check_nothing_lost_or_duplicated(db, batch_id, cells=30)
    finally:
        client.close()


# --------------------------------------------------------------------------- supervision


def wait_for(condition: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s  # hang guard
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def alive(pid: int | None) -> bool:
    from simulator.db.embedded import _pid_alive

    return pid is not None and _pid_alive(pid)


async def test_the_app_restarts_its_embedded_server_once_and_a_batch_finishes_exactly(
    tmp_path: Path,
) -> None:
    from simulator.db.mongo import close_store, open_store
    from simulator.settings import Settings

    settings = Settings(_env_file=None, simulator_data_dir=tmp_path, mongodb_db="supervised")
    store, server = await open_store(settings)
    assert server is not None
    try:
        experiment = await store.experiments.create(make_prison_experiment())
        spec = loss_spec(experiment.id, repeats=8, concurrency=2)
        first_pid, port = server.pid, server.port
        stored = 0

        def kill_mid_batch(event: Any) -> None:
            nonlocal stored
            if isinstance(event, MessageStored):
                stored += 1
                if stored == 15:
                    os.kill(first_pid, signal.SIGKILL)

        bus = EventBus()
        bus.subscribe(kill_mid_batch)
        runner = BatchRunner(store, Backends(), bus)
        batch = await runner.start(experiment, spec)
        try:
            ended = await runner.run(batch.id)
        except StoreLostError:  # the restart came too late for the driver's retry: resume
            await asyncio.to_thread(wait_for, lambda: alive(server.pid), "the restart")
            ended = await BatchRunner(store, Backends()).resume(batch.id)
        assert ended.status is Status.done, ended.error
        assert server.restarts == 1 and server.pid != first_pid and server.port == port
        assert await store.experiments.get(experiment.id) is not None  # the data is intact

        # Restarted once only: a second death is left to the run's own handling.
        second_pid = server.pid
        os.kill(second_pid, signal.SIGKILL)
        await asyncio.to_thread(wait_for, lambda: not server.supervising, "the watch to end")
        assert server.restarts == 1 and not alive(second_pid)
    finally:
        await close_store(store, server)

    # the batch, read back from a fresh start on the same files
    again = EmbeddedServer(tmp_path / "mongo")
    uri = again.start()
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(uri)
    try:
        check_nothing_lost_or_duplicated(client["supervised"], batch.id, cells=8)
    finally:
        client.close()
        again.stop()


def test_a_server_stopped_on_purpose_is_not_restarted(tmp_path: Path) -> None:
    user = EmbeddedServer(tmp_path / "mongo")
    user.start()
    user.supervise(interval_s=0.05)
    try:
        pid = user.pid
        EmbeddedServer(tmp_path / "mongo").shutdown(force=True)  # simulator db stop --force
        wait_for(lambda: not user.supervising, "the watch to end")
        assert user.restarts == 0 and not alive(pid)
    finally:
        user.stop()


def test_a_run_stuck_after_the_database_was_lost_still_exits_with_the_resume_hint(
    tmp_path: Path,
) -> None:
    """The command line's safety net: once a run reported its database lost, the process ends
    with the usual one-line message and exit code 1 even if something still waits (here: the
    main thread sleeps forever), and every thread's stack is in the log."""
    log_file = tmp_path / "run.log"
    script = (
        "import logging, sys, time\n"
        f"logging.basicConfig(filename={str(log_file)!r}, level=logging.INFO)\n"
        "import simulator.commands.run as run\n"
        "from simulator.engine.events import StoreLost\n"
        "run.STUCK_AFTER_LOSS_S = 0.2\n"
        "run._exit_if_stuck_after_loss('b1', StoreLost('b1', 'connection refused\\nmore'))\n"
        "run._exit_if_stuck_after_loss('b1', StoreLost('other', 'not this batch'))\n"
        "time.sleep(600)  # a hang\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,  # hang guard
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: Database lost: The database stopped answering while batch b1 ran "
        "(connection refused). No conversation was started after that; the ones running were "
        "stopped, and every message stored before is kept. Once the database answers again, "
        "continue with: simulator resume b1"
    ]
    logged = log_file.read_text(encoding="utf-8")
    assert "did not end within 0.2 s after the database was lost" in logged
    assert "time.sleep" in logged or 'File "<string>"' in logged  # the stuck main thread


def test_the_safety_net_is_taken_down_when_the_command_ends() -> None:
    import simulator.commands.run as run
    from simulator.engine.events import StoreLost

    run._exit_if_stuck_after_loss("b1", StoreLost("b1", "gone"))
    (timer,) = run._watchdogs
    run._stop_watchdogs()
    timer.join(timeout=60)  # hang guard
    assert not timer.is_alive() and run._watchdogs == []
