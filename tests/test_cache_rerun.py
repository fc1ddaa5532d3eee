"""Pay for each answer once: ``simulator rerun`` of a finished batch against a local
OpenAI-compatible server that counts its calls, a seeded dryrun rerun, grids that grow, and a new
batch with the cache off (the acceptance of issue 28)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest

from simulator.cli import main
from simulator.db.mongo import connect_store
from simulator.domain import BatchSpec, CacheMode, ModelRef, ModelSet, Provider, Status
from simulator.engine.batch import BatchRunner
from simulator.llm.registry import Backends
from simulator.settings import Settings
from tests.plugins.batches import make_prison_experiment
from tests.servers import FakeOpenAIServer
from tests.servers.openai_server import CHAT

#: The fields two transcripts must agree on.
TRANSCRIPT = ("seq", "day", "turn", "speaker", "role", "kind", "content")


@pytest.fixture
def db(
    mongo_uri: str, tmp_data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Any]:
    """A fresh database the CLI uses, read back with a sync client."""
    name = f"t_cache_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", name)
    for var in ("PRICE_TABLE", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_uri)
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()


@pytest.fixture
def counting_server() -> Iterator[FakeOpenAIServer]:
    """A local OpenAI-compatible server whose every answer is new: call n answers ``reply n``."""
    counter = itertools.count(1)
    lock = threading.Lock()

    def reply(body: dict[str, Any]) -> str:
        with lock:
            n = next(counter)
        return f"reply {n}: I hear you, and I answer in my own words."

    with FakeOpenAIServer(reply=reply) as server:
        yield server


def store_experiment(mongo_uri: str, db_name: str) -> None:
    async def go() -> None:
        store = await connect_store(mongo_uri, db_name)
        try:
            await store.experiments.create(make_prison_experiment(with_goal_factor=True))
        finally:
            await store.close()

    asyncio.run(go())


def write_spec(path: Path, base_url: str, *, cache: str | None, extra: str = "") -> Path:
    cache_line = f"  cache: {cache}\n" if cache else ""
    path.write_text(
        "experiment: Prison batch test\n"
        "batch:\n"
        "  total_messages: 3\n"
        "  max_agents: {Guard: 2, Prisoner: 3}\n"  # 6 agent counts x 2 goals x 3 repeats = 36
        "  repeats: 3\n"
        "  seed: 7\n"
        f"{cache_line}{extra}"
        "  models:\n"
        f"    {{provider: openai, model: fake-model, base_url: '{base_url}',\n"
        "     params: {temperature: 0.5, top_p: 0.9, max_tokens: 64}}\n",
        encoding="utf-8",
    )
    return path


def transcripts(db: Any, batch_id: str) -> dict[int, list[tuple[Any, ...]]]:
    """Each cell's messages on TRANSCRIPT's fields, by cell index."""
    out: dict[int, list[tuple[Any, ...]]] = {}
    for conv in db.conversations.find({"batch_id": batch_id}):
        messages = db.messages.find({"conversation_id": conv["_id"]}).sort("seq", 1)
        out[conv["cell_index"]] = [tuple(m[f] for f in TRANSCRIPT) for m in messages]
    return out


def batch_ids(db: Any) -> list[str]:
    return [b["_id"] for b in db.batches.find().sort("created_at", 1)]


def test_a_rerun_makes_no_call_and_stores_the_same_transcripts(
    db: Any, mongo_uri: str, counting_server: FakeOpenAIServer, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    store_experiment(mongo_uri, db.name)
    spec = write_spec(tmp_path / "spec.yaml", counting_server.base_url, cache="reuse")
    assert main(["run", str(spec), "--yes"]) == 0
    [first] = batch_ids(db)
    assert db.conversations.count_documents({"batch_id": first}) == 36
    calls = len(counting_server.seen(CHAT))
    model_messages = db.messages.count_documents({"model": {"$ne": None}})
    assert calls == model_messages == 36 * 4  # 3 turns and a summary each: every one asked
    capsys.readouterr()

    # the rerun: a new batch from the same spec, every answer served from the cache
    assert main(["rerun", first[:10], "--yes"]) == 0
    out = capsys.readouterr().out
    assert len(counting_server.seen(CHAT)) == calls  # not one call reached the server
    assert "answers from the response cache: 144 of 144" in out
    first_, second = batch_ids(db)
    assert first_ == first
    rerun = db.batches.find_one({"_id": second})
    assert rerun["status"] == "done" and rerun["spec"]["cache"] == "reuse"
    assert transcripts(db, second) == transcripts(db, first)
    # served answers are marked, with the original call's provenance and no cost
    originals = {
        (m["content"], m["kind"]): m
        for c in db.conversations.find({"batch_id": first})
        for m in db.messages.find({"conversation_id": c["_id"], "model": {"$ne": None}})
    }
    served = [
        m
        for c in db.conversations.find({"batch_id": second})
        for m in db.messages.find({"conversation_id": c["_id"], "model": {"$ne": None}})
    ]
    assert len(served) == 144
    for m in served:
        assert m["cache"]["hit"] is True and m["cost_usd"] == 0.0 and m["latency_ms"] == 0.0
        original = originals[(m["content"], m["kind"])]
        assert m["cache"]["key"] == original["cache"]["key"]
        assert original["cache"]["hit"] is False
        assert m["cache"]["original"]["sent_params"] == original["sent_params"]
        assert m["cache"]["original"]["conversation_id"] == original["conversation_id"]
        assert m["sent_params"] == original["sent_params"]
    ledger = db.ledgers.find_one({"_id": second})
    assert sum(r["calls"] for r in ledger["rows"]) == 0
    assert sum(r["cache_hits"] for r in ledger["rows"]) == 144

    # repeats are never collapsed: each cell keeps three distinct answers to its first turn
    by_cell: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for conv in db.conversations.find({"batch_id": first}):
        cell = conv["cell"]
        key = (tuple(sorted(cell["counts"].items())), tuple(sorted(cell["factors"].items())))
        first_turn = db.messages.find_one({"conversation_id": conv["_id"], "seq": 1})
        by_cell[key].append(first_turn["content"])
    assert len(by_cell) == 12
    assert all(len(set(answers)) == 3 for answers in by_cell.values())
    assert db.responses.count_documents({}) == 144

    # a new batch with the default (off) asks the server for every message again
    plain = write_spec(tmp_path / "plain.yaml", counting_server.base_url, cache=None)
    assert main(["run", str(plain), "--yes"]) == 0
    third = batch_ids(db)[-1]
    assert db.batches.find_one({"_id": third})["spec"]["cache"] == "off"
    assert len(counting_server.seen(CHAT)) == 2 * calls
    fresh = [
        m
        for c in db.conversations.find({"batch_id": third})
        for m in db.messages.find({"conversation_id": c["_id"], "model": {"$ne": None}})
    ]
    assert len(fresh) == 144 and all(m.get("cache") is None for m in fresh)
    assert db.responses.count_documents({}) == 144  # off: nothing read, nothing written


def test_growing_a_grid_asks_only_for_the_new_cells(
    db: Any, mongo_uri: str, counting_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    store_experiment(mongo_uri, db.name)
    spec = write_spec(
        tmp_path / "one.yaml",
        counting_server.base_url,
        cache="reuse",
        extra="  factors: [{goal: escape}]\n",
    )
    assert main(["run", str(spec), "--yes"]) == 0
    before = len(counting_server.seen(CHAT))
    assert before == 18 * 4
    both = write_spec(tmp_path / "both.yaml", counting_server.base_url, cache="reuse")
    assert main(["run", str(both), "--yes"]) == 0
    # only the 18 cells of the new goal level were asked for
    assert len(counting_server.seen(CHAT)) - before == 18 * 4
    old, new = batch_ids(db)
    old_cells = {
        (c["cell"]["factors"]["goal"], c["seed"]): c
        for c in db.conversations.find({"batch_id": old})
    }
    for conv in db.conversations.find({"batch_id": new}):
        messages = list(db.messages.find({"conversation_id": conv["_id"], "model": {"$ne": None}}))
        hits = {m["cache"]["hit"] for m in messages}
        if conv["cell"]["factors"]["goal"] == "escape":
            assert hits == {True}  # an old cell: its seed is the same, its answers too
            assert (conv["cell"]["factors"]["goal"], conv["seed"]) in old_cells
        else:
            assert hits == {False}


async def test_a_seeded_dryrun_rerun_is_free_and_identical(store: Any) -> None:
    exp = await store.experiments.create(make_prison_experiment(with_goal_factor=True))
    spec = BatchSpec(
        experiment_id=exp.id,
        model_sets=[ModelSet(default=ModelRef())],
        total_messages=6,
        days=2,
        max_agents={"Guard": 2, "Prisoner": 2},
        repeats=2,
        seed=3,
        cache=CacheMode.reuse,
    )
    backends = Backends(Settings(_env_file=None))  # type: ignore[call-arg]
    runner = BatchRunner(store, backends)
    try:
        first = await runner.run((await runner.start(exp, spec)).id)
        second = await runner.run((await runner.start(exp, spec)).id)
    finally:
        await backends.aclose()
    assert first.status is Status.done and second.status is Status.done
    ledger_1, ledger_2 = await store.ledgers.get(first.id), await store.ledgers.get(second.id)
    assert ledger_1.cache_hits == 0 and ledger_1.calls > 0
    assert ledger_2.calls == 0 and ledger_2.cache_hits == ledger_1.calls

    async def cells(batch_id: str) -> dict[int, list[tuple[Any, ...]]]:
        from simulator.db.store import ConversationFilter

        out = {}
        for conv in await store.conversations.list(ConversationFilter(batch_id=batch_id)):
            messages = await store.messages.list(conv.id)
            out[conv.cell_index] = [tuple(getattr(m, f) for f in TRANSCRIPT) for m in messages]
        return out

    assert await cells(second.id) == await cells(first.id)


async def test_refresh_asks_again_and_replaces_the_stored_answers(
    store: Any, counting_server: FakeOpenAIServer
) -> None:
    exp = await store.experiments.create(make_prison_experiment())
    ref = ModelRef(provider=Provider.openai, model="fake-model", base_url=counting_server.base_url)
    spec = BatchSpec(
        experiment_id=exp.id,
        model_sets=[ModelSet(default=ref)],
        total_messages=2,
        cache=CacheMode.reuse,
    )
    backends = Backends(Settings(_env_file=None, openai_api_key=None))  # type: ignore[call-arg]
    runner = BatchRunner(store, backends)
    try:
        await runner.run((await runner.start(exp, spec)).id)
        asked = len(counting_server.seen(CHAT))
        stored = {d["_id"]: d["text"] async for d in store.responses.coll.find()}
        refresh = spec.model_copy(update={"cache": CacheMode.refresh})
        again = await runner.run((await runner.start(exp, refresh)).id)
    finally:
        await backends.aclose()
    assert len(counting_server.seen(CHAT)) == 2 * asked  # refresh never reads
    replaced = {d["_id"]: d["text"] async for d in store.responses.coll.find()}
    # the guard's first request is the same as before: its key now holds the new answer; the
    # later requests read that new answer, so they are new requests with keys of their own
    changed = [k for k in stored if replaced[k] != stored[k]]
    assert len(stored) == 3 and len(changed) == 1
    assert len(replaced) == 3 + 2
    ledger = await store.ledgers.get(again.id)
    assert ledger.calls == asked and ledger.cache_hits == 0
