"""Budget caps: a batch stops cleanly at ``max_total_tokens`` / ``max_cost_usd`` (interrupted,
with the reason), resumes once the cap is raised, and ends with exact budgets."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest

from simulator.cli import main
from simulator.db.store import ConversationFilter
from simulator.domain import BatchSpec, ModelRef, ModelSet, Provider, SamplingParams, Status
from simulator.domain.errors import SpecError
from simulator.engine.batch import BatchRunner
from simulator.llm.registry import Backends
from simulator.settings import Settings
from tests.plugins.batches import make_prison_experiment
from tests.servers import FakeOpenAIServer

EXAMPLE = Path(__file__).resolve().parent.parent / "simulator" / "examples" / "prison_study.yaml"


@pytest.fixture
def db(
    mongo_uri: str, tmp_data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Any]:
    name = f"t_caps_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", name)
    for var in ("PRICE_TABLE", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_uri)
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()


def exact_budgets(db: Any, batch_id: str, total: int, days: int) -> None:
    """Every conversation done, with exactly ``total`` agent messages, a summary per day, and a
    dense seq without duplicates."""
    convs = list(db.conversations.find({"batch_id": batch_id}))
    assert convs and {c["status"] for c in convs} == {"done"}
    for conv in convs:
        messages = list(db.messages.find({"conversation_id": conv["_id"]}).sort("seq", 1))
        assert [m["seq"] for m in messages] == list(range(len(messages)))
        kinds = [m["kind"] for m in messages]
        assert kinds.count("utterance") == total == conv["messages_done"]
        assert kinds.count("summary") == days


def stored_tokens(db: Any, batch_id: str) -> int:
    ids = [c["_id"] for c in db.conversations.find({"batch_id": batch_id})]
    return sum(
        m["usage"]["prompt_tokens"] + m["usage"]["completion_tokens"]
        for m in db.messages.find({"conversation_id": {"$in": ids}})
    )


def test_a_token_cap_stops_the_batch_and_a_raised_cap_resumes_it_to_exact_budgets(
    db: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "capped.yaml"
    spec.write_text(
        f"experiment: {{file: '{EXAMPLE}'}}\n"
        "batch:\n"
        "  total_messages: 8\n"
        "  days: 2\n"
        "  max_agents: {guard: 2}\n"
        "  factors: [{goal: Escape, persona: No persona}]\n"
        "  concurrency: 2\n"
        "  max_total_tokens: 3000\n",
        encoding="utf-8",
    )
    assert main(["run", str(spec), "--yes"]) == 1
    out = capsys.readouterr().out
    [batch] = list(db.batches.find())
    assert batch["status"] == "interrupted"
    assert "the budget cap max_total_tokens 3,000 would be passed" in batch["stop_reason"]
    assert f"simulator resume {batch['_id']} --max-total-tokens" in batch["stop_reason"]
    assert "budget cap max_total_tokens 3,000" in out
    ledger = db.ledgers.find_one({"_id": batch["_id"]})
    used = sum(r["prompt_tokens"] + r["completion_tokens"] for r in ledger["rows"])
    assert 0 < used <= 3000 and ledger["runner"] is None
    assert used == stored_tokens(db, batch["_id"])  # the ledger is what the messages say
    convs = list(db.conversations.find({"batch_id": batch["_id"]}))
    assert any(c["status"] != "done" for c in convs)
    assert all(c["status"] in ("done", "interrupted", "pending") for c in convs)
    stopped = [c for c in convs if c["status"] == "interrupted"]
    assert stopped and all("max_total_tokens" in c["stop_reason"] for c in stopped)

    # resuming without raising the cap stops again: at most the calls that still fit under it
    # (with two conversations at once, the first run held room for two calls), never past it
    assert main(["resume", batch["_id"]]) == 1
    assert used <= stored_tokens(db, batch["_id"]) <= 3000
    assert db.batches.find_one()["status"] == "interrupted"
    assert main(["resume", batch["_id"]]) == 1  # and again: nothing left fits
    again = stored_tokens(db, batch["_id"])
    assert main(["resume", batch["_id"]]) == 1
    assert stored_tokens(db, batch["_id"]) == again <= 3000

    # raised: the batch ends, every conversation with its exact budget
    capsys.readouterr()
    assert main(["resume", batch["_id"][:10], "--max-total-tokens", "1000000"]) == 0
    out = capsys.readouterr().out
    assert "Budget caps: max_total_tokens 1,000,000." in out
    done = db.batches.find_one()
    assert done["status"] == "done" and done["spec"]["max_total_tokens"] == 1_000_000
    exact_budgets(db, batch["_id"], total=8, days=2)
    ledger = db.ledgers.find_one({"_id": batch["_id"]})
    assert sum(r["prompt_tokens"] + r["completion_tokens"] for r in ledger["rows"]) == (
        stored_tokens(db, batch["_id"])
    )


def test_bad_cap_options_are_refused_before_anything_runs(
    db: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resume", "abcd", "--max-cost-usd", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--max-cost-usd must be a number from 0 to 1,000,000, not -1.0" in err
    assert "Traceback" not in err


async def test_a_cost_cap_stops_at_the_cap_and_resumes_when_raised(store: Any) -> None:
    exp = await store.experiments.create(make_prison_experiment())
    params = SamplingParams(temperature=0.2, max_tokens=32)
    with FakeOpenAIServer() as server:
        ref = ModelRef(
            provider=Provider.openai, model="fake-model", base_url=server.base_url, params=params
        )
        spec = BatchSpec(
            experiment_id=exp.id,
            model_sets=[ModelSet(default=ref)],
            total_messages=6,
            days=1,
            max_agents={"Guard": 2, "Prisoner": 2},
            concurrency=2,
            max_cost_usd=0.05,
        )
        prices = {"fake-model": {"input_per_1k": 0.2, "output_per_1k": 0.4}}
        backends = Backends(Settings(_env_file=None, openai_api_key=None))  # type: ignore[call-arg]
        runner = BatchRunner(store, backends)
        try:
            # a cost cap needs a price for every model: refused before anything is stored
            with pytest.raises(SpecError, match="no price for openai:fake-model"):
                await runner.start(exp, spec)
            assert await store.batches.list() == []
            batch = await runner.run((await runner.start(exp, spec, prices=prices)).id)
            assert batch.status is Status.interrupted
            assert batch.stop_reason is not None and "max_cost_usd 0.05" in batch.stop_reason
            ledger = await store.ledgers.get(batch.id)
            assert 0 < ledger.cost_usd <= 0.05
            calls_at_cap = len(server.chat_bodies())
            assert calls_at_cap == ledger.calls
            await runner.set_caps(batch.id, max_cost_usd=10.0)
            batch = await runner.resume(batch.id)
        finally:
            await backends.aclose()
    assert batch.status is Status.done
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    assert len(convs) == 4 and all(c.messages_done == 6 for c in convs)
    ledger = await store.ledgers.get(batch.id)
    assert ledger.calls == len(server.chat_bodies()) and ledger.cost_usd > 0.05
    messages = await store.messages.list_many([c.id for c in convs])
    costs = [m.cost_usd for m in messages if m.model is not None]
    assert all(c is not None and c > 0 for c in costs)
    assert sum(c for c in costs if c is not None) == pytest.approx(ledger.cost_usd)
