"""A batch process killed with SIGKILL part-way, then resumed: all cells done, nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from simulator.db.store import ConversationFilter
from simulator.domain import Experiment, Status
from simulator.engine.batch import BatchRunner, conversation_id_for
from simulator.llm.registry import Backends
from tests.test_batch import _assert_complete_and_exact

REPO = Path(__file__).resolve().parent.parent


async def _wait_for(predicate, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_batch_killed_part_way_resumes_with_every_cell_done_and_nothing_duplicated(
    store, mongo_uri: str, prison_experiment: Experiment
) -> None:
    exp = await store.experiments.create(prison_experiment)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.batch_worker",
        mongo_uri,
        store.db.name,
        exp.id,
        "30",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    messages = store.db["messages"]
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=60)).decode()
        if not line.startswith("batch "):
            raise AssertionError(f"worker failed: {(await proc.stderr.read()).decode()}")
        batch_id = line.split()[1]

        async def some_stored() -> bool:
            return await messages.count_documents({}) >= 40

        await _wait_for(some_stored, 60, "the worker to store 40 messages")
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), timeout=10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    convs = await store.conversations.list(ConversationFilter(batch_id=batch_id))
    assert len(convs) == 36
    statuses = {c.status for c in convs}
    assert Status.running in statuses, statuses  # killed mid-conversation
    assert sum(c.status is Status.done for c in convs) < 36
    stored_before = await messages.count_documents({})
    batch = await store.batches.get(batch_id)
    assert batch is not None and batch.status is Status.running

    runner = BatchRunner(store, Backends(), poll_s=0.05)
    ended = await runner.resume(batch_id)
    assert ended.status is Status.done

    convs = await store.conversations.list(ConversationFilter(batch_id=batch_id))
    assert len(convs) == 36
    assert {c.id for c in convs} == {conversation_id_for(batch_id, i) for i in range(36)}
    await _assert_complete_and_exact(store, batch_id)
    # no message stored twice: as many documents as distinct (conversation, seq) pairs
    docs = await messages.find({}, {"conversation_id": 1, "seq": 1}).to_list(None)
    keys = [(d["conversation_id"], d["seq"]) for d in docs]
    assert len(keys) == len(set(keys)) > stored_before
    assert await store.db["conversations"].count_documents({"batch_id": batch_id}) == 36
