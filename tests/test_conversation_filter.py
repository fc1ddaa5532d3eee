"""The one conversation filter (``simulator.domain.filters``): what each field means, the same
for the store's listing, the analysis tables and the TUI's browser; and what a filter can choose
among (``services.conversations.filter_choices``), which the browser renders."""

from __future__ import annotations

from typing import Any

from simulator.db.store import ConversationFilter as StoreFilter
from simulator.domain import ModelRef, ModelSet, Status
from simulator.domain.filters import SINGLE_RUNS, ConversationFilter
from simulator.services.conversations import filter_choices, list_order, parse_counts
from tests.test_storage_contract import cell, conversation, prison_experiment

OLLAMA = ModelRef(provider="ollama", model="Llama3.2:3b")


def stored() -> dict[str, Any]:
    exp = prison_experiment()
    return {
        "exp": exp,
        "a": conversation(
            exp, cell=cell(counts={"guard": 1, "prisoner": 1}, days=1), batch_id="b1"
        ),
        "b": conversation(
            exp,
            cell=cell(counts={"guard": 2, "prisoner": 1}, models=ModelSet(default=OLLAMA)),
            status=Status.done,
            favourite=True,
            batch_id="b1",
        ),
        "c": conversation(exp, cell=cell(factors={"goal": "Stay"}), batch_id=None),
    }


def test_one_type_for_the_store_the_tables_and_the_browser() -> None:
    assert StoreFilter is ConversationFilter


def test_what_each_field_means() -> None:
    d = stored()

    def names(**fields: Any) -> set[str]:
        flt = ConversationFilter(**fields)
        return {k for k in "abc" if flt.matches(d[k])}

    assert names() == {"a", "b", "c"} and not ConversationFilter().active
    assert names(batch_id="b1") == {"a", "b"}
    assert names(batch_id=SINGLE_RUNS) == {"c"}  # run on their own
    assert names(counts={"Guard": 2}) == {"b"}  # role names ignoring case
    assert names(model="ollama:llama3.2:3b") == {"b"}  # provider:model, ignoring case
    assert names(model="qwen2.5:7b") == {"a", "c"}  # a per-role model counts too
    assert names(model="script") == {"a", "b", "c"}  # every agent runs dryrun (its old name)
    assert names(factors={"GOAL": "stay"}) == {"c"}
    assert names(status="done") == {"b"} == names(status=Status.done)
    assert names(days=1) == {"a"}
    assert names(favourites_only=True) == {"b"}
    assert names(conversation_ids=[d["c"].id]) == {"c"}
    assert names(experiment_id="someone else's") == set()
    assert ConversationFilter(days=1).active and ConversationFilter(favourites_only=True).active


async def test_the_store_lists_by_the_same_meaning(store: Any) -> None:
    d = stored()
    await store.experiments.create(d["exp"])
    for key in "abc":
        await store.conversations.create(d[key])
    label = {d[k].id: k for k in "abc"}

    async def found(**fields: Any) -> set[str]:
        return {label[c.id] for c in await store.conversations.list(ConversationFilter(**fields))}

    assert await found(counts={"GUARD": 2}) == {"b"}
    assert await found(model="Ollama:LLAMA3.2:3b") == {"b"}
    assert await found(batch_id=SINGLE_RUNS) == {"c"}
    assert await found(factors={"goal": "stay"}, experiment_id=d["exp"].id) == {"c"}
    assert await found(batch_id="b1", status=Status.done) == {"b"}


def test_what_the_browser_can_filter_by() -> None:
    d = stored()
    convs = list_order([d["c"], d["b"], d["a"]])
    choices = filter_choices(convs)
    assert [(key, number, n) for key, number, n in choices.batches] == [
        ("b1", 1, 2),
        (SINGLE_RUNS, None, 1),
    ]
    assert set(choices.models) == {"dryrun:dryrun", "ollama:qwen2.5:7b", "ollama:Llama3.2:3b"}
    assert choices.days == [1, 2]
    assert [label for _, label in choices.counts] == ["1v1", "1v2", "2v1"]
    key = choices.counts[2][0]
    assert parse_counts(key) == {"guard": 2, "prisoner": 1}
    assert {k for k in "abc" if ConversationFilter(counts=parse_counts(key)).matches(d[k])} == {"b"}
