"""The storage contract: one suite, run against every MongoDB we support.

Parameterised by URI: the embedded nx-27017 server always, and ``TEST_MONGODB_URI`` (a real MongoDB
or Atlas) when that variable is set; otherwise those cases are skipped with the reason printed in
pytest's summary. Each test gets a fresh database.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from simulator.db.mongo import SCHEMA_VERSION, MongoStore, connect_store
from simulator.db.store import NOW, ConversationFilter, ExperimentFilter
from simulator.domain import (
    Agent,
    Batch,
    BatchSpec,
    Conversation,
    DialogueOptions,
    Experiment,
    ExperimentKind,
    GridCell,
    Memory,
    Message,
    MessageKind,
    ModelRef,
    ModelSet,
    Role,
    SamplingParams,
    Section,
    SectionKind,
    Status,
    StudyFactor,
    TokenUsage,
    utcnow,
)
from simulator.domain.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    NotFoundError,
    StaleVersionError,
)

EXTERNAL_URI = os.environ.get("TEST_MONGODB_URI")
NO_EXTERNAL = (
    "TEST_MONGODB_URI is not set: the storage contract ran on the embedded server only "
    "(set it to a real MongoDB, e.g. mongodb://localhost:27017/, to run it there too)"
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "contract_uri" in metafunc.fixturenames:
        targets = ["embedded"] + (["TEST_MONGODB_URI"] if EXTERNAL_URI else [])
        metafunc.parametrize("contract_uri", targets, indirect=True, scope="session")


@pytest.fixture(scope="session")
def contract_uri(request: pytest.FixtureRequest) -> str:
    if request.param == "embedded":
        return request.getfixturevalue("embedded_mongo_uri")
    assert EXTERNAL_URI
    return EXTERNAL_URI


async def test_contract_also_runs_on_a_real_mongodb() -> None:
    """Reports (once) whether the suite ran on a real MongoDB too."""
    if not EXTERNAL_URI:
        pytest.skip(NO_EXTERNAL)
    store = await connect_store(EXTERNAL_URI, f"t_{uuid.uuid4().hex[:16]}")
    try:
        info = await store.client.server_info()
        assert info["version"]
    finally:
        await store.drop_database()
        await store.close()


@pytest.fixture
async def db(contract_uri: str) -> AsyncIterator[MongoStore]:
    s = await connect_store(contract_uri, f"t_{uuid.uuid4().hex[:16]}")
    try:
        yield s
    finally:
        try:
            await s.drop_database()
        finally:
            await s.close()


# --------------------------------------------------------------------------- builders


def prison_experiment(**overrides: object) -> Experiment:
    """An experiment using every nested structure: roles with private sections, shared and
    summarizer sections, a factor with variants, several models with parameters."""
    data: dict[str, object] = {
        "name": "Prison study",
        "starting_message": "Day <day>: the guards enter. <agents|guard> meet <agents|prisoner>.",
        "roles": [
            Role(
                name="guard",
                gender="female",
                sections=[
                    Section(
                        title="Goal", content="Keep order.", kind=SectionKind.private, position=2
                    ),
                    Section(
                        title="Persona",
                        kind=SectionKind.private,
                        position=3,
                        factor="goal",
                        variants={"Escape": "You suspect an escape.", "Yard Time": ""},
                    ),
                ],
            ),
            Role(
                name="prisoner",
                sections=[
                    Section(
                        title="Goal", content="Get <goal>.", kind=SectionKind.private, position=2
                    )
                ],
            ),
        ],
        "shared_sections": [
            Section(title="Setting", content="A prison.\nLines:\n- one\n- two", position=1),
            Section(title="Rules", content="Be brief. Unicode: é ✓ 漢字", position=4),
        ],
        "summarizer_sections": [
            Section(
                title="Task", content="Summarise day <day> of <days>.", kind=SectionKind.summarizer
            )
        ],
        "models": [
            ModelRef(),
            ModelRef(
                provider="ollama",
                model="llama3.2:3b",
                base_url="http://gpu-box:11434",
                params=SamplingParams(temperature=0.2, top_p=None, top_k=10, seed=42),
                options={"keep_alive": "5m", "stop": ["###"]},
            ),
            ModelRef(provider="openai", model="gpt-4o-mini", params=SamplingParams(max_tokens=256)),
        ],
        "factors": [StudyFactor(name="goal", levels=["Escape", "Yard Time"])],
        "dialogue": DialogueOptions(
            memory=Memory.full_history, stop_phrases=["<END>"], first_role="prisoner"
        ),
        "game": {"regrowth": 0.25, "nested": {"levels": [1, 2, 3]}},
        "note": "pilot run",
        "owner": "alice",
    }
    data.update(overrides)
    return Experiment.model_validate(data)


def cell(**overrides: object) -> GridCell:
    data: dict[str, object] = {
        "counts": {"guard": 1, "prisoner": 2},
        "days": 2,
        "total_messages": 10,
        "models": ModelSet(
            default=ModelRef(),
            per_role={"guard": ModelRef(provider="ollama", model="qwen2.5:7b")},
        ),
        "factors": {"goal": "Escape"},
    }
    data.update(overrides)
    return GridCell.model_validate(data)


def conversation(experiment: Experiment, **overrides: object) -> Conversation:
    data: dict[str, object] = {
        "experiment_id": experiment.id,
        "owner": experiment.owner,
        "cell": cell(),
        "agents": [
            Agent(name="Guard 1", role="guard", model=ModelRef(), system_prompt="You are..."),
            Agent(name="Prisoner 1", role="prisoner", model=ModelRef()),
        ],
    }
    data.update(overrides)
    return Conversation.model_validate(data)


def message(conversation_id: str, seq: int, **overrides: object) -> Message:
    data: dict[str, object] = {
        "conversation_id": conversation_id,
        "seq": seq,
        "speaker": "Guard 1",
        "role": "guard",
        "content": f"message {seq}",
    }
    data.update(overrides)
    return Message.model_validate(data)


# --------------------------------------------------------------------------- experiments


async def test_experiment_round_trips_unchanged(db: MongoStore) -> None:
    exp = prison_experiment()
    assert await db.experiments.create(exp) == exp

    stored = await db.experiments.get(exp.id)

    assert stored is not None
    assert stored.model_dump() == exp.model_dump()
    # Dates come back as timezone-aware UTC (never naive), so comparisons and display agree.
    assert stored.created_at.utcoffset() == timedelta(0)
    assert stored.created_at.tzinfo is not None
    assert [s.title for s in stored.roles[0].sections] == ["Goal", "Persona"]


async def test_create_is_idempotent_and_get_unknown_is_none(db: MongoStore) -> None:
    exp = prison_experiment()
    await db.experiments.create(exp)
    again = await db.experiments.create(exp.model_copy(update={"note": "retried"}))

    assert again.note == "pilot run"  # the stored one, not a second copy
    assert len(await db.experiments.list()) == 1
    assert await db.experiments.get("no-such-id") is None


async def test_update_bumps_version_and_refuses_a_stale_one(db: MongoStore) -> None:
    exp = await db.experiments.create(prison_experiment())
    mine = exp.model_copy(update={"starting_message": "Mine."})
    theirs = exp.model_copy(update={"starting_message": "Theirs."})

    saved = await db.experiments.update(theirs)
    assert saved.version == 2
    with pytest.raises(StaleVersionError) as err:
        await db.experiments.update(mine)

    assert "stored version 2" in str(err.value)
    assert "reload" in str(err.value)
    stored = await db.experiments.get(exp.id)
    assert stored is not None
    assert (stored.version, stored.starting_message) == (2, "Theirs.")
    assert stored.model_dump() == saved.model_dump()


async def test_update_of_a_deleted_experiment_is_not_found(db: MongoStore) -> None:
    exp = await db.experiments.create(prison_experiment())
    await db.experiments.delete(exp.id)

    with pytest.raises(NotFoundError):
        await db.experiments.update(exp)


async def test_set_fields_does_not_bump_version(db: MongoStore) -> None:
    exp = await db.experiments.create(prison_experiment())

    await db.experiments.set_fields(exp.id, favourite=True, note="interesting")

    stored = await db.experiments.get(exp.id)
    assert stored is not None
    assert (stored.favourite, stored.note, stored.version) == (True, "interesting", 1)
    with pytest.raises(ValueError, match="no settable field"):
        await db.experiments.set_fields(exp.id, favorite=True)
    with pytest.raises(NotFoundError):
        await db.experiments.set_fields("missing", favourite=True)


async def test_duplicate_copies_content_but_not_conversations(db: MongoStore) -> None:
    src = await db.experiments.create(prison_experiment(favourite=True))
    await db.conversations.create(conversation(src))

    copy = await db.experiments.duplicate(src.id, owner="bob")

    assert copy.id != src.id
    assert (copy.owner, copy.version, copy.parent_id) == ("bob", 1, src.id)
    assert copy.name == "Prison study (copy)"
    assert copy.favourite is False
    assert copy.created_at >= src.created_at
    content = {
        "roles",
        "shared_sections",
        "summarizer_sections",
        "models",
        "factors",
        "starting_message",
        "dialogue",
        "game",
        "kind",
        "note",
    }
    assert copy.model_dump(include=content) == src.model_dump(include=content)
    stored = await db.experiments.get(copy.id)
    assert stored is not None and stored.model_dump() == copy.model_dump()
    assert await db.experiments.count_conversations([src.id, copy.id]) == {src.id: 1, copy.id: 0}
    assert await db.conversations.list(ConversationFilter(experiment_id=copy.id)) == []
    # The source is untouched.
    original = await db.experiments.get(src.id)
    assert original is not None and original.model_dump() == src.model_dump()


async def test_duplicate_with_a_name_and_of_a_missing_experiment(db: MongoStore) -> None:
    src = await db.experiments.create(prison_experiment())

    named = await db.experiments.duplicate(src.id, owner="carol", name="Variant B")

    assert named.name == "Variant B"
    with pytest.raises(NotFoundError):
        await db.experiments.duplicate("missing", owner="carol")


async def test_delete_cascades_to_batches_conversations_messages_states(db: MongoStore) -> None:
    doomed = await db.experiments.create(prison_experiment())
    kept = await db.experiments.create(prison_experiment(name="Kept"))
    ids: dict[str, list[str]] = {}
    for exp in (doomed, kept):
        batch = await db.batches.create(
            Batch(experiment_id=exp.id, spec=BatchSpec(experiment_id=exp.id))
        )
        convs = [conversation(exp, batch_id=batch.id, cell_index=i) for i in range(2)]
        for conv in convs:
            await db.conversations.create(conv)
            for seq in range(3):
                assert await db.messages.append(message(conv.id, seq))
            await db.states.put(conv.id, 0, {"fish": 100})
        ids[exp.id] = [c.id for c in convs]

    await db.experiments.delete(doomed.id)

    assert await db.experiments.get(doomed.id) is None
    assert await db.batches.list(experiment_id=doomed.id) == []
    assert await db.conversations.list(ConversationFilter(experiment_id=doomed.id)) == []
    for conv_id in ids[doomed.id]:
        assert await db.messages.list(conv_id) == []
        assert await db.states.latest(conv_id) is None
    # The other experiment keeps everything.
    assert len(await db.batches.list(experiment_id=kept.id)) == 1
    assert len(await db.messages.list_many(ids[kept.id])) == 6
    assert await db.states.latest(ids[kept.id][0]) == (0, {"fish": 100})


async def test_list_filters_text_owner_favourites_kind(db: MongoStore) -> None:
    a = await db.experiments.create(prison_experiment(name="Prison (pilot)", owner="alice"))
    b = await db.experiments.create(
        prison_experiment(name="Lake", owner="bob", note="A PRISON-like lake", favourite=True)
    )
    c = await db.experiments.create(
        Experiment(name="Lake commons", kind=ExperimentKind.commons, owner="alice")
    )

    async def names(**kw: object) -> set[str]:
        return {e.name for e in await db.experiments.list(ExperimentFilter(**kw))}  # type: ignore[arg-type]

    assert await names() == {a.name, b.name, c.name}
    assert await names(text="prison") == {a.name, b.name}  # name or note, any case
    assert await names(text="(pilot)") == {a.name}  # regex characters are literal
    assert await names(text=".*") == set()
    assert await names(owner="alice") == {a.name, c.name}
    assert await names(favourites_only=True) == {b.name}
    assert await names(kind="commons") == {c.name}
    assert await names(kind=ExperimentKind.dialogue, owner="alice") == {a.name}
    assert await names(text="lake", owner="alice") == {c.name}


async def test_list_orders_most_recently_updated_first(db: MongoStore) -> None:
    old = prison_experiment(name="Old", updated_at=utcnow() - timedelta(days=1))
    await db.experiments.create(old)
    new = await db.experiments.create(prison_experiment(name="New"))

    assert [e.name for e in await db.experiments.list()] == ["New", "Old"]
    await db.experiments.update(old)
    assert [e.name for e in await db.experiments.list()] == ["Old", "New"]
    assert new.version == 1


# --------------------------------------------------------------------------- conversations


async def test_conversation_round_trip_and_idempotent_create(db: MongoStore) -> None:
    exp = await db.experiments.create(prison_experiment())
    # A role name with a dot and a space: it is a key of stored dicts (counts, per_role).
    conv = conversation(
        exp,
        cell=cell(
            counts={"Dr. Who": 1, "prisoner": 2},
            models=ModelSet(per_role={"Dr. Who": ModelRef(model="x")}),
        ),
        tokens=TokenUsage(prompt_tokens=10, completion_tokens=5),
        started_at=utcnow(),
    )

    await db.conversations.create(conv)
    again = await db.conversations.create(conv.model_copy(update={"status": Status.done}))

    stored = await db.conversations.get(conv.id)
    assert stored is not None and stored.model_dump() == conv.model_dump()
    assert again.status is Status.pending
    assert len(await db.conversations.list()) == 1


async def test_conversation_filters(db: MongoStore) -> None:
    exp = await db.experiments.create(prison_experiment())
    other = await db.experiments.create(prison_experiment(name="Other"))
    ollama = ModelSet(default=ModelRef(provider="ollama", model="llama3.2:3b"))
    convs = {
        "1v1": conversation(exp, cell=cell(counts={"guard": 1, "prisoner": 1}, days=1)),
        "1v2": conversation(
            exp,
            cell=cell(counts={"guard": 1, "prisoner": 2}, days=2),
            status=Status.done,
            favourite=True,
        ),
        "2v1": conversation(
            exp,
            cell=cell(counts={"guard": 2, "prisoner": 1}, days=2, models=ollama),
            status=Status.failed,
            batch_id="b1",
        ),
        "dot": conversation(exp, cell=cell(counts={"Dr. Who": 3}, days=1)),
        "other": conversation(other, cell=cell(counts={"guard": 1, "prisoner": 1}, days=1)),
    }
    for c in convs.values():
        await db.conversations.create(c)
    label = {c.id: k for k, c in convs.items()}

    async def found(**kw: object) -> set[str]:
        flt = ConversationFilter(**kw)  # type: ignore[arg-type]
        return {label[c.id] for c in await db.conversations.list(flt)}

    assert await found(experiment_id=exp.id) == {"1v1", "1v2", "2v1", "dot"}
    assert await found(experiment_id=exp.id, counts={"guard": 1}) == {"1v1", "1v2"}
    assert await found(counts={"guard": 1, "prisoner": 1}) == {"1v1", "other"}
    assert await found(counts={"Dr. Who": 3}) == {"dot"}
    assert await found(experiment_id=exp.id, days=2) == {"1v2", "2v1"}
    assert await found(status=Status.done) == {"1v2"}
    assert await found(status=Status.failed, days=2) == {"2v1"}
    assert await found(batch_id="b1") == {"2v1"}
    assert await found(model="llama3.2:3b") == {"2v1"}
    assert await found(favourites_only=True) == {"1v2"}
    assert await found(experiment_id=other.id, status=Status.done) == set()


async def test_conversation_set_fields_and_delete(db: MongoStore) -> None:
    exp = await db.experiments.create(prison_experiment())
    conv = await db.conversations.create(conversation(exp))
    keep = await db.conversations.create(conversation(exp))
    for c in (conv, keep):
        await db.messages.append(message(c.id, 0))
        await db.states.put(c.id, 0, {"x": 1})
    finished = utcnow()

    await db.conversations.set_fields(
        conv.id,
        status=Status.done,
        finished_at=finished,
        messages_done=10,
        tokens=TokenUsage(prompt_tokens=3, completion_tokens=4),
    )
    stored = await db.conversations.get(conv.id)
    assert stored is not None
    assert (stored.status, stored.messages_done) == (Status.done, 10)
    assert stored.finished_at == finished and stored.finished_at.tzinfo is not None
    assert stored.tokens.total_tokens == 7
    raw = await db.db["conversations"].find_one({"_id": conv.id})
    assert (
        raw is not None and raw["finished_at"] == finished
    )  # a date in the database, not a string

    await db.conversations.delete(conv.id)
    assert await db.conversations.get(conv.id) is None
    assert await db.messages.list(conv.id) == []
    assert await db.states.list(conv.id) == []
    assert len(await db.messages.list(keep.id)) == 1
    assert await db.experiments.count_conversations([exp.id]) == {exp.id: 1}


async def test_now_is_the_server_clock_stored_as_a_date_in_one_update(db: MongoStore) -> None:
    exp = await db.experiments.create(prison_experiment())
    conv = await db.conversations.create(conversation(exp))
    before = utcnow() - timedelta(seconds=5)

    assert await db.conversations.start(conv.id, status=Status.running) is True
    started = await db.conversations.get(conv.id)
    assert started is not None and started.status is Status.running
    assert started.started_at is not None and started.started_at >= before
    # started once: a second start keeps the first time and says so
    assert await db.conversations.start(conv.id, error=None) is False
    again = await db.conversations.get(conv.id)
    assert again is not None and again.started_at == started.started_at

    await db.conversations.set_fields(conv.id, status=Status.done, finished_at=NOW)
    raw = await db.db["conversations"].find_one({"_id": conv.id})
    assert raw is not None
    assert isinstance(raw["finished_at"], datetime) and isinstance(raw["started_at"], datetime)
    assert raw["finished_at"] >= raw["started_at"]


async def test_concurrent_field_updates_are_not_lost(db: MongoStore) -> None:
    exp = await db.experiments.create(prison_experiment())
    conv = await db.conversations.create(conversation(exp))
    stamps = [utcnow() + timedelta(seconds=i) for i in range(5)]

    await asyncio.gather(
        *(
            db.conversations.set_fields(conv.id, started_at=t, messages_done=i)
            for i, t in enumerate(stamps)
        ),
        db.conversations.set_fields(conv.id, favourite=True),
        db.conversations.set_fields(conv.id, error="boom"),
    )

    stored = await db.conversations.get(conv.id)
    assert stored is not None
    assert (stored.favourite, stored.error) == (True, "boom")
    assert (stored.started_at, stored.messages_done) in list(zip(stamps, range(5), strict=True))


# --------------------------------------------------------------------------- messages


async def test_messages_come_back_in_seq_order(db: MongoStore) -> None:
    order = [3, 0, 11, 1, 10, 2, 9, 4, 8, 5, 7, 6]  # 10 and 11 sort before 2 as strings
    for seq in order:
        assert await db.messages.append(message("c1", seq))
    for seq in reversed(range(3)):
        await db.messages.append(message("c0", seq))

    got = await db.messages.list("c1")

    assert [m.seq for m in got] == list(range(12))
    assert [m.content for m in got] == [f"message {i}" for i in range(12)]
    many = await db.messages.list_many(["c1", "c0"])
    assert [(m.conversation_id, m.seq) for m in many] == (
        [("c0", i) for i in range(3)] + [("c1", i) for i in range(12)]
    )


async def test_duplicate_append_is_refused_and_keeps_the_first(db: MongoStore) -> None:
    first = message("c1", 0, content="first")
    assert await db.messages.append(first) is True

    retried = await db.messages.append(message("c1", 0, content="second", speaker="Other"))

    assert retried is False
    got = await db.messages.list("c1")
    assert len(got) == 1
    assert got[0].content == "first"
    assert await db.db["messages"].count_documents({"conversation_id": "c1"}) == 1


async def test_concurrent_appends_of_the_same_seq_store_one(db: MongoStore) -> None:
    results = await asyncio.gather(
        *(db.messages.append(message("c1", 5, content=f"try {i}")) for i in range(8))
    )

    assert sorted(results) == [False] * 7 + [True]
    assert len(await db.messages.list("c1")) == 1


async def test_message_round_trips_every_field(db: MongoStore) -> None:
    msg = message(
        "c1",
        4,
        day=2,
        turn=3,
        kind=MessageKind.action,
        recipients=["Prisoner 1", "Prisoner 2"],
        content="cleaned",
        raw="<think>x</think>cleaned",
        data={"vote": 0.3, "targets": [{"name": "A", "amount": 2}]},
        model=ModelRef(
            provider="openai", model="gpt-4o-mini", params=SamplingParams(temperature=0.0, seed=7)
        ),
        usage=TokenUsage(prompt_tokens=120, completion_tokens=33),
        latency_ms=812.5,
        attempts=2,
        flags=["truncated"],
    )
    await db.messages.append(msg)

    [stored] = await db.messages.list("c1")

    assert stored.model_dump() == msg.model_dump()
    assert stored.id == "c1:000004"
    assert stored.created_at.tzinfo is not None


async def test_delete_from_removes_the_tail_only(db: MongoStore) -> None:
    for seq in range(6):
        await db.messages.append(message("c1", seq))
    await db.messages.append(message("c2", 4))

    assert await db.messages.delete_from("c1", 4) == 2

    assert [m.seq for m in await db.messages.list("c1")] == [0, 1, 2, 3]
    assert len(await db.messages.list("c2")) == 1
    assert await db.messages.append(message("c1", 4)) is True  # a fork may write it again


# --------------------------------------------------------------------------- batches, states


async def test_batches_round_trip_list_and_set_fields(db: MongoStore) -> None:
    spec = BatchSpec(
        experiment_id="e1",
        model_sets=[ModelSet(), ModelSet(default=ModelRef(provider="ollama", model="m"))],
        max_agents={"guard": 2},
        repeats=3,
    )
    b1 = await db.batches.create(
        Batch(experiment_id="e1", spec=spec, owner="alice", cells_total=12)
    )
    b2 = await db.batches.create(
        Batch(experiment_id="e1", spec=spec, created_at=utcnow() + timedelta(seconds=1))
    )
    await db.batches.create(
        Batch(experiment_id="e2", spec=spec.model_copy(update={"experiment_id": "e2"}))
    )

    stored = await db.batches.get(b1.id)
    assert stored is not None and stored.model_dump() == b1.model_dump()
    assert [b.id for b in await db.batches.list(experiment_id="e1")] == [b2.id, b1.id]

    await db.batches.set_fields(b1.id, status=Status.done, finished_at=utcnow())
    assert [b.id for b in await db.batches.list("e1", unfinished_only=True)] == [b2.id]
    assert len(await db.batches.list()) == 3
    assert await db.batches.create(b1) is not None  # a retried create is harmless
    assert len(await db.batches.list()) == 3


async def test_states_snapshots(db: MongoStore) -> None:
    assert await db.states.latest("c1") is None
    rich = {"agents": [{"name": "A", "catch": [1, 2]}, {"name": "B", "catch": []}], "fish": 90.5}
    await db.states.put("c1", 1, {"fish": 100})
    await db.states.put("c1", 3, rich)
    await db.states.put("c1", 2, {"fish": 95})
    await db.states.put("c1", 2, {"fish": 96})  # a retried step overwrites

    assert await db.states.latest("c1") == (3, rich)
    assert await db.states.list("c1") == [(1, {"fish": 100}), (2, {"fish": 96}), (3, rich)]


# --------------------------------------------------------------------------- schema, connection


async def test_schema_version_is_recorded_and_a_newer_one_is_refused(
    db: MongoStore, contract_uri: str
) -> None:
    assert await db.schema_version() == SCHEMA_VERSION
    await db.db["meta"].update_one({"_id": "schema"}, {"$set": {"version": SCHEMA_VERSION + 1}})

    with pytest.raises(ConfigurationError, match="newer version of the simulator"):
        await connect_store(contract_uri, db.db_name)


async def test_indexes_exist(db: MongoStore) -> None:
    info = await db.db["messages"].index_information()
    unique = [v for v in info.values() if v.get("unique")]
    assert any([k for k, _ in v["key"]] == ["conversation_id", "seq"] for v in unique)
    states = await db.db["states"].index_information()
    assert any(
        v.get("unique") and [k for k, _ in v["key"]] == ["conversation_id", "step"]
        for v in states.values()
    )


async def test_unreachable_server_fails_fast_naming_the_host_not_the_password() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"mongodb://alice:s3cr%40t-pw@127.0.0.1:{port}/?authSource=admin"

    with pytest.raises(DatabaseUnavailableError) as err:
        await connect_store(uri, "x", timeout_ms=300)

    text = f"{err.value} {err.value.title}"
    assert f"127.0.0.1:{port}" in text
    assert "s3cr" not in text and "alice:" not in text
    assert err.value.__cause__ is None  # no chained pymongo error carrying the URI


async def test_malformed_uri_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as err:
        await connect_store("mongodb://bob:pw@host:notaport/", "x", timeout_ms=300)
    assert ":pw@" not in str(err.value)
