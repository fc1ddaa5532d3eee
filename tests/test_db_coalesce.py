"""Appends from concurrent tasks are written together (one insert_many per window), each still
acknowledged before its caller goes on, with the duplicate-key semantics of a single insert."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from simulator.db.mongo import connect_store
from simulator.domain import Message


def message(conversation_id: str, seq: int, content: str = "") -> Message:
    return Message(
        conversation_id=conversation_id,
        seq=seq,
        speaker="A",
        role="r",
        content=content or f"m{seq}",
    )


async def test_concurrent_appends_share_writes_and_are_all_stored(store: Any) -> None:
    coalescer = store.messages.inserts
    writes = coalescer.writes
    results = await asyncio.gather(
        *(store.messages.append(message(f"c{i % 8}", i // 8)) for i in range(80))
    )
    assert results == [True] * 80
    assert coalescer.writes - writes < 80 / 4  # far fewer insert_many calls than messages
    assert len(await store.messages.list_many([f"c{i}" for i in range(8)])) == 80


async def test_a_duplicate_fails_alone_and_keeps_the_stored_message(store: Any) -> None:
    assert await store.messages.append(message("c1", 1, "first"))
    results = await asyncio.gather(
        store.messages.append(message("c1", 0)),
        store.messages.append(message("c1", 1, "second")),  # already stored
        store.messages.append(message("c1", 2)),
        store.messages.append(message("c1", 2, "twice in one batch")),
        store.messages.append(message("c1", 3)),
    )
    assert results == [True, False, True, False, True]
    stored = await store.messages.list("c1")
    assert [(m.seq, m.content) for m in stored] == [(0, "m0"), (1, "first"), (2, "m2"), (3, "m3")]


async def test_an_append_returns_once_another_client_can_read_it(
    store: Any, mongo_uri: str
) -> None:
    other = await connect_store(mongo_uri, store.db_name)
    try:
        for seq in range(5):
            appends = [store.messages.append(message(f"c{k}", seq)) for k in range(4)]
            assert await asyncio.gather(*appends) == [True] * 4
            for k in range(4):
                assert await other.messages.get(f"c{k}", seq) is not None
    finally:
        await other.close()


async def test_an_append_cancelled_before_its_write_is_not_written(store: Any) -> None:
    task = asyncio.create_task(store.messages.append(message("c1", 0)))
    await asyncio.sleep(0)  # the append is queued; its write has not started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await store.messages.inserts.flush()
    assert await store.messages.get("c1", 0) is None
    assert await store.messages.append(message("c1", 0)) is True


async def test_close_writes_what_is_queued(mongo_uri: str) -> None:
    name = f"t_{uuid.uuid4().hex[:16]}"
    first = await connect_store(mongo_uri, name)
    pending = [asyncio.create_task(first.messages.append(message("c1", s))) for s in range(3)]
    await asyncio.sleep(0)
    await first.close()
    assert [t.result() for t in pending] == [True] * 3
    second = await connect_store(mongo_uri, name)
    try:
        assert len(await second.messages.list("c1")) == 3
    finally:
        await second.drop_database()
        await second.close()
