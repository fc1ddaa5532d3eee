"""Cost ledgers: prices (dated defaults, cached input, the user's table first), a ledger rebuilt
from the stored messages after a run died, estimates that learn from earlier batches, the
remaining cost, and the ledger's line in the run monitor and its caps in the batch setup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simulator.db.store import ConversationFilter
from simulator.domain import (
    BatchSpec,
    Estimate,
    Ledger,
    LedgerRow,
    ModelRef,
    ModelSet,
    Provider,
    SamplingParams,
    Status,
    TokenUsage,
)
from simulator.engine.batch import BatchRunner
from simulator.engine.grid import estimate_cells, expand_grid
from simulator.engine.ledger import rebuild, remaining_cost
from simulator.llm.prices import DEFAULT_PRICES, DEFAULTS_AS_OF, PriceTable
from simulator.llm.registry import Backends
from simulator.settings import Settings
from tests.plugins.batches import make_prison_experiment
from tests.servers import FakeOpenAIServer


def settings() -> Settings:
    return Settings(_env_file=None, openai_api_key=None)  # type: ignore[call-arg]


def test_prices_the_users_table_first_then_dated_defaults_for_openai_itself() -> None:
    mini = ModelRef(provider=Provider.openai, model="gpt-4o-mini")
    snapshot = mini.model_copy(update={"model": "gpt-4o-mini-2024-07-18"})
    local = mini.model_copy(update={"base_url": "http://127.0.0.1:8000/v1"})
    table = PriceTable()
    price = table.price_for(mini)
    assert price is not None and price.default and price.as_of == DEFAULTS_AS_OF
    assert table.price_for(snapshot) == price
    assert table.price_for(local) is None  # a model of the same name elsewhere is not OpenAI's
    assert table.price_for(ModelRef()) is not None  # dryrun is free
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=100, cached_tokens=400)
    expected = 0.6 * 0.00015 + 0.4 * 0.000075 + 0.1 * 0.0006
    assert table.cost(mini, usage) == pytest.approx(expected)
    mine = PriceTable({"gpt-4o-mini": {"input_per_1k": 1.0, "output_per_1k": 2.0}})
    # without a cached-input price, cached tokens cost the input price; the user's table wins
    assert mine.cost(mini, usage) == pytest.approx(1.0 + 0.2)
    assert mine.cost(local, usage) == pytest.approx(1.2)
    assert set(DEFAULT_PRICES) >= {"gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "gpt-5-mini"}


def test_a_spec_prices_cached_input_and_dates() -> None:
    from simulator.domain.errors import SpecError
    from simulator.engine.spec import parse_spec

    base = {"experiment": {"example": "prison_study"}, "batch": {}}
    spec = parse_spec(
        {
            **base,
            "prices": {
                "gpt-4o-mini": {"input": 0.15, "cached_input": 0.075, "output": 0.6},
                "lab": {"input_per_1k": 0, "output_per_1k": 0, "as_of": "2026-11-30"},
            },
        }
    )
    assert spec.prices["gpt-4o-mini"]["cached_input_per_1k"] == pytest.approx(0.000075)
    assert spec.prices["lab"]["as_of"] == "2026-11-30"
    with pytest.raises(SpecError, match=r"prices\.lab\.as_of: must be a date"):
        parse_spec({**base, "prices": {"lab": {"input": 1, "output": 1, "as_of": "soon"}}})


def test_remaining_cost_is_the_calls_left_at_the_mean_cost_so_far() -> None:
    estimate = Estimate(conversations=4, llm_calls=100, tokens=10_000, cost_usd=1.0)
    assert remaining_cost(estimate, None) == 1.0
    ledger = Ledger(batch_id="b", rows=[LedgerRow(model="openai:m", role="Guard", calls=20,
                                                  cache_hits=5, cost_usd=0.3)])  # fmt: skip
    assert remaining_cost(estimate, ledger) == pytest.approx(75 * 0.3 / 20)
    ledger.rows[0].unpriced_calls = 1
    assert remaining_cost(estimate, ledger) is None


async def test_a_ledger_left_by_a_run_that_died_is_rebuilt_from_the_messages(
    store: Any,
) -> None:
    exp = await store.experiments.create(make_prison_experiment())
    with FakeOpenAIServer(cached_tokens=3) as server:
        ref = ModelRef(provider=Provider.openai, model="fake-model", base_url=server.base_url)
        spec = BatchSpec(
            experiment_id=exp.id,
            model_sets=[ModelSet(default=ref)],
            total_messages=6,
            max_agents={"Guard": 2},
            max_total_tokens=400,
        )
        prices = {"fake-model": {"input_per_1k": 1.0, "cached_input_per_1k": 0.5,
                                 "output_per_1k": 2.0}}  # fmt: skip
        backends = Backends(settings())
        runner = BatchRunner(store, backends)
        try:
            batch = await runner.run((await runner.start(exp, spec, prices=prices)).id)
            assert batch.status is Status.interrupted
            # the run died: its ledger says nothing true and names a runner
            await store.ledgers.put(Ledger(batch_id=batch.id, runner="elsewhere:1/1"))
            await runner.set_caps(batch.id, max_total_tokens=1_000_000)
            batch = await runner.resume(batch.id)
        finally:
            await backends.aclose()
    assert batch.status is Status.done
    ledger = await store.ledgers.get(batch.id)
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    messages = await store.messages.list_many([c.id for c in convs])
    expected = rebuild(batch.id, messages)
    assert ledger.runner is None
    assert ledger.calls == expected.calls == len(server.chat_bodies())
    assert ledger.tokens == expected.tokens == sum(m.usage.total_tokens for m in messages)
    assert ledger.cached_tokens == expected.cached_tokens > 0
    assert ledger.cost_usd == pytest.approx(expected.cost_usd)
    assert ledger.cost_usd == pytest.approx(sum(m.cost_usd or 0 for m in messages))


async def test_the_estimate_learns_answer_lengths_from_earlier_batches(store: Any) -> None:
    """Replies of 60 words, where the closed form assumes 150 tokens: the first estimate is far
    off, the next batch's estimate (from the first batch's ledger) is within 10 %."""
    exp = await store.experiments.create(make_prison_experiment())
    words = " ".join(["word"] * 60)
    with FakeOpenAIServer(reply=lambda body: words) as server:
        ref = ModelRef(
            provider=Provider.openai,
            model="fake-model",
            base_url=server.base_url,
            params=SamplingParams(max_tokens=None),
        )
        spec = BatchSpec(
            experiment_id=exp.id,
            model_sets=[ModelSet(default=ref)],
            total_messages=10,
            days=2,
            max_agents={"Guard": 2},
        )
        backends = Backends(settings())
        runner = BatchRunner(store, backends)
        try:
            first = await runner.run((await runner.start(exp, spec)).id)
            second = await runner.run((await runner.start(exp, spec)).id)
        finally:
            await backends.aclose()
    assert first.estimate is not None and first.estimate.measured_calls == 0
    assert second.estimate is not None and second.estimate.measured_calls > 0
    ledger = await store.ledgers.get(second.id)
    actual = ledger.tokens
    static = estimate_cells(exp, expand_grid(exp, spec))
    assert abs(static.tokens - actual) / actual > 0.25  # the assumed lengths miss
    assert abs(second.estimate.tokens - actual) / actual < 0.10


def test_the_monitor_shows_the_ledger_and_the_setup_takes_caps() -> None:
    from simulator.domain import Batch
    from simulator.services.batches import plan_batch
    from simulator.tui.runs import BatchRun
    from simulator.tui.screens.monitor import summary_text

    exp = make_prison_experiment()
    spec = BatchSpec(experiment_id=exp.id, max_cost_usd=2.5, max_total_tokens=90_000)
    reason = "the budget cap max_cost_usd 2.5 would be passed by the next call"
    batch = Batch(experiment_id=exp.id, spec=spec, status=Status.interrupted, stop_reason=reason)
    run = BatchRun(batch, exp.name, ["Guard", "Prisoner"])
    assert summary_text(run).count("\n") == 1  # no ledger yet: the two lines of before
    run.ledger = Ledger(batch_id=batch.id, rows=[
        LedgerRow(model="openai:m", role="Guard", calls=40, cache_hits=2, prompt_tokens=8_000,
                  completion_tokens=2_000, cached_tokens=6_000, cost_usd=2.41)])  # fmt: skip
    text = summary_text(run)
    third = text.splitlines()[-1]
    assert "cost $2.4100" in third and "calls 40" in third and "prompt cached 75%" in third
    assert "cap $2.5" in third and "tokens 10,000/90,000" in third
    assert "budget cap max_cost_usd 2.5" in text.splitlines()[0]  # first line
    # a dryrun batch without caps or cache says nothing more
    plain = BatchRun(Batch(experiment_id=exp.id, spec=BatchSpec(experiment_id=exp.id)), "x", [])
    plain.ledger = Ledger(batch_id="b", rows=[LedgerRow(model="dryrun:dryrun", role="Guard",
                                                        calls=4, prompt_tokens=100)])  # fmt: skip
    assert summary_text(plain).count("\n") == 1

    plan = plan_batch(exp, {"max_cost_usd": "$1.50", "max_total_tokens": "20_000"})
    assert plan.ok and plan.spec is not None
    assert plan.spec.max_cost_usd == 1.5 and plan.spec.max_total_tokens == 20_000
    bad = plan_batch(exp, {"max_cost_usd": "lots", "max_total_tokens": "0"})
    assert bad.problems["max_cost_usd"] == "must be a number from 0 to 1,000,000, not 'lots'"
    assert bad.problems["max_total_tokens"].startswith("must be a whole number from 1 to")
    lab = ModelRef(provider=Provider.openai, model="lab", base_url="http://gpu:8000/v1")
    unpriced = plan_batch(exp.model_copy(update={"models": [lab]}), {"max_cost_usd": "1"})
    assert "no price for openai:lab" in unpriced.problems["max_cost_usd"]


def test_the_run_summary_and_batches_show_the_ledger_by_model_and_role(
    mongo_uri: str,
    tmp_data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What a batch spent, by model and role: the rows add up to the calls the server saw and
    each role's calls are that role's stored messages (the summarizer's summaries included)."""
    import uuid

    import pymongo

    from simulator.cli import main
    from tests.servers import FakeOpenAIServer

    name = f"t_ledger_cli_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", name)
    for var in ("PRICE_TABLE", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    example = Path(__file__).resolve().parent.parent / "simulator" / "examples"
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_uri)
    try:
        with FakeOpenAIServer() as server:
            spec = tmp_path / "spec.yaml"
            spec.write_text(
                f"experiment: {{file: '{example / 'prison_study.yaml'}'}}\n"
                "batch:\n"
                f"  models: [{{default: {{provider: openai, model: fake-model, "
                f"base_url: '{server.base_url}'}}}}]\n"
                "  total_messages: 4\n"
                "  days: 2\n"
                "  max_agents: {guard: 2}\n"
                "  factors: [{goal: Escape, persona: No persona}]\n",
                encoding="utf-8",
            )
            capsys.readouterr()
            assert main(["run", str(spec), "--yes"]) == 0
            out = capsys.readouterr().out
            seen = len(server.chat_bodies())
        db = client[name]
        batch = db.batches.find_one({})
        messages = list(db.messages.find({}))
        by_role: dict[str, int] = {}
        for m in messages:
            if m["kind"] in ("utterance", "summary"):  # the starting message is no call
                role = "summarizer" if m["kind"] == "summary" else m["role"]
                by_role[role] = by_role.get(role, 0) + 1

        def rows(text: str) -> dict[str, int]:
            found = {}
            for line in text.splitlines():
                cells = [c.strip() for c in line.split("│")]
                if len(cells) > 3 and cells[1] == "openai:fake-model":
                    found[cells[2]] = int(cells[3].replace(",", ""))
            return found

        assert rows(out) == by_role and sum(by_role.values()) == seen
        assert set(by_role) == {"Guard", "Prisoner", "summarizer"}
        assert main(["batches", "--ledger", batch["_id"][:8]]) == 0
        listed = capsys.readouterr().out
        assert f"Ledger of batch {batch['_id']}" in listed and rows(listed) == by_role
        assert f"Model calls: {seen:,}." in listed
        assert main(["batches", "--ledger", "nosuchbatch"]) == 2
    finally:
        client.drop_database(name)
        client.close()
