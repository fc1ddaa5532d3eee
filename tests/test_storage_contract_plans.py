"""The storage contract of the hot paths: every query they send is served by an index, on the
embedded server (SQLite's plan of the exact SQL it runs) and on a real MongoDB (``explain``,
when ``TEST_MONGODB_URI`` is set; otherwise those cases are skipped with the reason printed).

Hot paths: a transcript, a conversation's messages at resume (and none at all for a new one),
the stored message that wins a duplicate append, bulk reads of many conversations' messages,
batch and experiment listings, game snapshots, short-id resolution, and a whole batch run.
See tests/query_plans.py for how the plans are read.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo.errors import BulkWriteError

from simulator.db.mongo import connect_store
from simulator.db.store import ConversationFilter, message_count_hint
from simulator.domain import BatchSpec, CacheMode, Conversation, GridCell, Message, ModelSet, Status
from simulator.engine.batch import BatchRunner
from simulator.engine.journal import Journal
from simulator.llm.registry import Backends
from tests.plugins.batches import make_prison_experiment
from tests.query_plans import (
    EmbeddedProbe,
    InProcessEmbeddedServer,
    Query,
    mongo_probe,
    violations,
)

EXTERNAL_URI = os.environ.get("TEST_MONGODB_URI")
NO_EXTERNAL = (
    "TEST_MONGODB_URI is not set: the query plans were checked on the embedded server only "
    "(set it to a real MongoDB, e.g. mongodb://localhost:27017/, to check them there too)"
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "probe" in metafunc.fixturenames:
        targets = ["embedded"] + (["TEST_MONGODB_URI"] if EXTERNAL_URI else [])
        metafunc.parametrize("probe", targets, indirect=True)


def test_plans_also_checked_on_a_real_mongodb() -> None:
    """Reports (once) whether the plans were checked on a real MongoDB too."""
    if not EXTERNAL_URI:
        pytest.skip(NO_EXTERNAL)


@pytest.fixture(scope="session")
def inprocess_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = InProcessEmbeddedServer(tmp_path_factory.mktemp("plans-db"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def probe(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    if request.param == "embedded":
        server = request.getfixturevalue("inprocess_server")
        found: Any = EmbeddedProbe(server, await connect_store(server.uri, name))
    else:
        assert EXTERNAL_URI
        found = await mongo_probe(EXTERNAL_URI, name)
    try:
        yield found
    finally:
        try:
            await found.store.drop_database()
        finally:
            await found.store.close()


def on(queries: list[Query], collection: str) -> list[Query]:
    return [q for q in queries if q.collection == collection]


def message(conversation_id: str, seq: int) -> Message:
    return Message(
        conversation_id=conversation_id, seq=seq, speaker="A", role="r", content=f"m{seq}"
    )


def conversation(experiment_id: str = "e1", **fields: Any) -> Conversation:
    return Conversation(
        experiment_id=experiment_id,
        cell=GridCell(counts={"Guard": 1, "Prisoner": 1}, days=1, total_messages=4,
                      models=ModelSet()),
        **fields,
    )  # fmt: skip


async def seeded(store: Any, conversations: int = 4, messages: int = 12) -> list[Conversation]:
    """Conversations (the first ones of batch ``b1``) with messages and snapshots: enough
    rows that a scan cannot hide among them."""
    out = []
    for i in range(conversations):
        conv = await store.conversations.create(
            conversation(batch_id="b1" if i < conversations - 1 else "b2", cell_index=i,
                         messages_done=messages - 2, started_at=None)
        )  # fmt: skip
        for seq in range(messages):
            await store.messages.append(message(conv.id, seq))
        for step in range(3):
            await store.states.put(conv.id, step, {"step": step})
        out.append(conv)
    return out


# --------------------------------------------------------------------------- the probe itself


async def test_the_probe_sees_a_scan(probe: Any) -> None:
    """A filter on a field no index covers is flagged: the checks below can fail."""
    convs = await seeded(probe.store, conversations=2)
    probe.start()
    await probe.store.db["messages"].find({"speaker": "A"}).to_list(None)
    await probe.store.messages.list(convs[0].id)
    queries = await probe.stop()
    assert len(violations(queries)) == 1
    assert "speaker" in violations(queries)[0]


# --------------------------------------------------------------------------- hot paths


async def test_a_transcript_is_one_range_of_the_id_index(probe: Any) -> None:
    convs = await seeded(probe.store)
    probe.start()
    got = await probe.store.messages.list(convs[1].id)
    queries = await probe.stop()
    assert [m.seq for m in got] == list(range(12))
    assert {m.conversation_id for m in got} == {convs[1].id}
    assert len(on(queries, "messages")) == 1
    assert violations(queries) == []


async def test_resume_reads_the_conversation_by_its_id_range(probe: Any, backends: Any) -> None:
    convs = await seeded(probe.store)
    await probe.store.conversations.set_fields(convs[2].id, status=Status.failed)
    stored = await probe.store.conversations.get(convs[2].id)
    await probe.store.conversations.start(convs[2].id)  # it ran before
    stored = await probe.store.conversations.get(convs[2].id)
    probe.start()
    journal = await Journal.open(probe.store, stored, backends)
    queries = await probe.stop()
    assert journal.replaying and journal.stored_at_open == 12
    assert len(on(queries, "messages")) == 1
    assert violations(queries) == []


async def test_a_new_conversation_reads_no_messages(probe: Any, backends: Any) -> None:
    await seeded(probe.store)
    conv = await probe.store.conversations.create(conversation())
    probe.start()
    journal = await Journal.open(probe.store, conv, backends)
    queries = await probe.stop()
    assert journal.stored_at_open == 0 and not journal.replaying
    assert on(queries, "messages") == []  # not even an indexed read
    assert on(queries, "conversations")  # the start: one update by _id
    assert violations(queries) == []
    started = await probe.store.conversations.get(conv.id)
    assert started is not None and started.status is Status.running
    assert started.started_at is not None and started.started_at.tzinfo is not None


async def test_a_fork_is_read_although_it_never_started(probe: Any, backends: Any) -> None:
    """A fork is created with its parent's messages: its journal must replay them."""
    [parent] = await seeded(probe.store, conversations=1)
    fork = await probe.store.conversations.create(conversation(parent_id=parent.id))
    for seq in range(3):
        await probe.store.messages.append(message(fork.id, seq))
    probe.start()
    journal = await Journal.open(probe.store, fork, backends)
    queries = await probe.stop()
    assert journal.stored_at_open == 3
    assert violations(queries) == []


async def test_the_stored_message_of_a_duplicate_is_read_by_id(probe: Any) -> None:
    convs = await seeded(probe.store)
    probe.start()
    assert await probe.store.messages.append(message(convs[0].id, 5)) is False
    stored = await probe.store.messages.get(convs[0].id, 5)
    assert await probe.store.messages.get(convs[0].id, 99) is None
    queries = await probe.stop()
    assert stored is not None and stored.seq == 5
    assert violations(queries) == []


async def test_bulk_reads_go_by_computed_ids_and_ranges(probe: Any) -> None:
    convs = await seeded(probe.store)
    ids = [c.id for c in convs]
    want = [(c, s) for c in sorted(ids) for s in range(12)]
    probe.start()
    exact = await probe.store.messages.list_many(ids, {c: 12 for c in ids})
    guessed = await probe.store.messages.list_many(
        ids, {c.id: message_count_hint(c) for c in convs}
    )
    short = await probe.store.messages.list_many(ids, {c: 5 for c in ids})
    unknown = await probe.store.messages.list_many(ids)
    counts = await probe.store.messages.count_many(ids, {c: 3 for c in ids})
    queries = await probe.stop()
    for got in (exact, guessed, short, unknown):
        assert [(m.conversation_id, m.seq) for m in got] == want
    assert counts == dict.fromkeys(ids, 12)
    assert violations(queries) == []


async def test_listings_use_the_batch_and_experiment_indexes(probe: Any) -> None:
    convs = await seeded(probe.store)
    probe.start()
    batch = await probe.store.conversations.list(ConversationFilter(batch_id="b1"), brief=True)
    pages = [
        [c.id for c in page]
        async for page in probe.store.conversations.pages(
            ConversationFilter(experiment_id="e1"), brief=True, size=2
        )
    ]
    done = await probe.store.conversations.list(ConversationFilter(status=Status.pending))
    some = await probe.store.conversations.get_many([convs[3].id, convs[0].id], brief=True)
    queries = await probe.stop()
    assert [c.id for c in batch] == [c.id for c in convs[:3]]
    assert pages == [[convs[0].id, convs[1].id], [convs[2].id, convs[3].id]]
    assert len(done) == 4
    assert [c.id for c in some] == [convs[3].id, convs[0].id]
    assert violations(queries) == []


async def test_game_snapshots_are_a_range_of_the_id_index(probe: Any) -> None:
    convs = await seeded(probe.store)
    probe.start()
    latest = await probe.store.states.latest(convs[1].id)
    every = await probe.store.states.list(convs[1].id)
    none = await probe.store.states.latest("0" * 32)
    queries = await probe.stop()
    assert latest == (2, {"step": 2}) and [s for s, _ in every] == [0, 1, 2] and none is None
    assert len(on(queries, "states")) == 3
    assert violations(queries) == []


async def test_short_ids_resolve_by_a_range_of_the_id_index(probe: Any) -> None:
    convs = await seeded(probe.store)
    probe.start()
    found = await probe.store.conversations.ids_with_prefix(convs[0].id[:6])
    queries = await probe.stop()
    assert convs[0].id in found
    assert violations(queries) == []


async def test_a_whole_batch_run_is_served_by_indexes(probe: Any) -> None:
    """Everything a batch does, from its start to its end and a resume, on a database that
    already holds other conversations."""
    await seeded(probe.store)
    exp = await probe.store.experiments.create(make_prison_experiment())
    spec = BatchSpec(experiment_id=exp.id, total_messages=4, repeats=3, concurrency=3)
    backends = Backends()
    try:
        runner = BatchRunner(probe.store, backends)
        probe.start()
        batch = await runner.start(exp, spec, owner="tester")
        ended = await runner.run(batch.id)
        await runner.resume(batch.id)
        queries = await probe.stop()
    finally:
        await backends.aclose()
    assert ended.status is Status.done
    assert on(queries, "messages") == []  # new conversations read no messages
    assert violations(queries) == []


async def test_lease_renewals_and_ends_go_by_the_id_index(probe: Any) -> None:
    """A worker renews its leases in one update of an ``_id`` list (and reads which it kept
    only when some were taken over); a conversation's end releases its lease by ``_id``."""
    convs = await seeded(probe.store)
    ids = [c.id for c in convs]
    for conv in convs:
        await probe.store.conversations.take_lease(
            conv.id, "box:1/1", 10**13, seen_runner=None, seen_until=None
        )
    await probe.store.conversations.take_lease(
        ids[0], "box:2/1", 10**13 + 1, seen_runner="box:1/1", seen_until=10**13
    )
    probe.start()
    lost = await probe.store.conversations.renew_leases(ids, "box:1/1", 10**13 + 5)
    released = await probe.store.conversations.end(ids[1], "box:1/1", status=Status.done)
    queries = await probe.stop()
    assert (lost, released) == ([ids[0]], True)
    assert len(on(queries, "conversations")) >= 3  # the renewal, its read of the kept, the end
    assert violations(queries) == []


async def test_the_response_cache_and_ledgers_are_read_by_id(probe: Any) -> None:
    """A batch with the response cache on (looked up and written by key), a second batch that
    learns its estimate from the first one's ledger, and a resume that rebuilds a ledger left
    by a run that died: every query served by an index."""
    await seeded(probe.store)
    exp = await probe.store.experiments.create(make_prison_experiment())
    spec = BatchSpec(
        experiment_id=exp.id, total_messages=4, repeats=3, concurrency=3, cache=CacheMode.reuse
    )
    backends = Backends()
    try:
        runner = BatchRunner(probe.store, backends)
        probe.start()
        first = await runner.start(exp, spec, owner="tester")
        await runner.run(first.id)
        # the same answers again: served from the cache
        again = await runner.run((await runner.start(exp, spec, owner="tester")).id)
        ledger = await probe.store.ledgers.get(first.id)
        assert ledger is not None
        await probe.store.ledgers.put(ledger.model_copy(update={"runner": "gone:1/1"}))
        await probe.store.batches.set_fields(first.id, status=Status.interrupted)
        resumed = await runner.resume(first.id)
        queries = await probe.stop()
    finally:
        await backends.aclose()
    assert again.status is Status.done and resumed.status is Status.done
    assert on(queries, "responses") and on(queries, "ledgers")
    rebuilt = await probe.store.ledgers.get(first.id)
    assert rebuilt is not None and rebuilt.runner is None
    assert sum(r.calls for r in rebuilt.rows) == sum(r.calls for r in ledger.rows) > 0
    assert violations(queries) == []


async def test_an_export_reads_by_indexes(probe: Any, tmp_path: Any) -> None:
    from simulator.analysis import exports, loading

    convs = await seeded(probe.store)
    await probe.store.experiments.create(make_prison_experiment(id="e1"))
    probe.start()
    for what in ("messages", "conversations", "metrics"):
        await exports.export(
            probe.store,
            ConversationFilter(experiment_id="e1"),
            fmt="csv",
            what=what,
            output=tmp_path,
        )
    selection = await loading.select(probe.store, ConversationFilter(experiment_id="e1"))
    queries = await probe.stop()
    assert selection.ids == [c.id for c in convs]
    assert on(queries, "messages")
    assert violations(queries) == []


# --------------------------------------------------------------------------- the server's writes


async def test_an_insert_of_many_documents_is_one_transaction_on_the_embedded_server(
    inprocess_server: Any,
) -> None:
    """nx-27017 writes an ``insert_many``'s documents one by one, each its own transaction
    (every stored message committing its pages on its own); the simulator's launcher makes the
    command one transaction. A duplicate still fails alone, and an ordered insert keeps what it
    stored before its first error (MongoDB's answers)."""
    store = await connect_store(inprocess_server.uri, f"t_{uuid.uuid4().hex[:16]}")
    probe = EmbeddedProbe(inprocess_server, store)
    coll = store.db["messages"]
    try:
        await coll.insert_one({"_id": "c:000002", "conversation_id": "c", "seq": 2})
        probe.start()
        docs = [{"_id": f"c:{seq:06d}", "conversation_id": "c", "seq": seq} for seq in range(5)]
        with pytest.raises(BulkWriteError) as unordered:
            await coll.insert_many(docs, ordered=False)
        await probe.stop()
        sql = [s.strip().split(None, 1)[0].upper() for s in probe.statements if s.strip()]
        inserts = [i for i, head in enumerate(sql) if head == "INSERT"]
        assert len(inserts) == 5  # the duplicate's INSERT too: SQLite refused that one alone
        begins = [i for i, head in enumerate(sql) if head == "BEGIN"]
        commits = [i for i, head in enumerate(sql) if head == "COMMIT"]
        assert len(begins) == 1 and len(commits) == 1, sql
        assert begins[0] < inserts[0] and inserts[-1] < commits[0], sql
        assert [e["index"] for e in unordered.value.details["writeErrors"]] == [2]
        stored = sorted([d["_id"] async for d in coll.find({"conversation_id": "c"})])
        assert stored == [f"c:{seq:06d}" for seq in range(5)]

        more = [{"_id": f"d:{seq:06d}", "conversation_id": "d", "seq": seq} for seq in range(4)]
        await coll.insert_one(dict(more[2]))
        with pytest.raises(BulkWriteError) as ordered:
            await coll.insert_many(more, ordered=True)
        assert ordered.value.details["nInserted"] == 2
        stored = sorted([d["_id"] async for d in coll.find({"conversation_id": "d"})])
        assert stored == ["d:000000", "d:000001", "d:000002"]  # the two before, and the first
    finally:
        await store.drop_database()
        await store.close()


async def test_each_database_of_the_embedded_server_has_a_page_cache_of_its_own_size(
    inprocess_server: Any,
) -> None:
    """SQLite's default page cache (2 MB) holds a few thousand messages; the launcher gives
    each database ``CACHE_KIB``, so a batch's working set stays in memory as its tables grow."""
    from simulator.db.server_main import CACHE_KIB

    name = f"t_{uuid.uuid4().hex[:16]}"
    store = await connect_store(inprocess_server.uri, name)
    try:
        await store.db["messages"].insert_one({"_id": "c:000000", "conversation_id": "c"})
        sqlite = inprocess_server.handler.get_database(name).db
        assert sqlite.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB
        assert CACHE_KIB >= 32 * 1024  # far above SQLite's default of 2,000 KiB
    finally:
        await store.drop_database()
        await store.close()
