"""load_messages / load_conversations: columns, dtypes, order and every filter."""

from __future__ import annotations

import pandas as pd
import pytest

from simulator.analysis.loading import (
    MESSAGE_COLUMNS,
    column_key,
    load_all,
    load_conversations,
    load_messages,
    messages_frame,
    parse_assignments,
)
from simulator.domain.errors import NotFoundError
from simulator.domain.filters import ConversationFilter
from tests.plugins.analysis import AnalysisData


async def test_messages_frame_columns_order_and_values(store, analysis_data: AnalysisData) -> None:
    d = analysis_data
    df = await load_messages(store)
    assert len(df) == 14
    # (conversation_id, seq) order although the messages were stored in reverse
    keys = list(zip(df["conversation_id"], df["seq"], strict=True))
    assert keys == sorted(keys)
    assert list(df.columns[: len(MESSAGE_COLUMNS)]) == list(MESSAGE_COLUMNS)
    for col in ("count_guard", "count_prisoner", "count_trader", "count_gossip", "factor_goal"):
        assert col in df.columns
    for col in ("days", "repeat", "seed", "total_messages", "cell_model"):
        assert col in df.columns

    a = df[df["conversation_id"] == d.a.id].reset_index(drop=True)
    assert list(a["seq"]) == list(range(9))
    row = a.iloc[7]
    assert row["speaker"] == "Prisoner 2"
    assert not row["public"] and row["recipients"] == "Prisoner 1"
    assert row["day"] == 2 and row["turn"] == 3
    assert row["count_guard"] == 1 and row["count_prisoner"] == 2
    assert row["factor_goal"] == "Escape"
    assert row["days"] == 2 and row["seed"] == 1000
    assert row["provider"] == "dryrun" and row["model"] == "dryrun"
    # dryrun sends nothing to a model: its parameter columns are missing, not the configuration
    assert pd.isna(row["temperature"]) and pd.isna(row["top_k"])
    assert row["prompt_tokens"] == 170 and row["total_tokens"] == 173
    assert row["experiment_name"] == "Prison study"
    assert row["batch_id"] == d.batch.id
    assert a.iloc[5]["fallback"] and a.iloc[5]["message_flags"] == "fallback"
    assert a.iloc[3]["attempts"] == 2
    assert a.iloc[1]["words"] == 5 and a.iloc[1]["chars"] == len("Stay in your cell now.")
    # the kickoff has no model: nulls, not strings "None"
    assert pd.isna(a.iloc[0]["model"]) and pd.isna(a.iloc[0]["temperature"])
    assert a.iloc[0]["public"]
    assert str(a["created_at"].dtype) == "datetime64[ns, UTC]"

    # a conversation of an experiment without these roles/factors has nulls there
    c = df[df["conversation_id"] == d.c.id]
    assert c["count_guard"].isna().all() and c["factor_goal"].isna().all()
    assert (c["count_trader"] == 1).all()


async def test_dtypes_are_stable_whatever_the_selection(store, analysis_data: AnalysisData) -> None:
    full = await load_messages(store, experiment_id=analysis_data.experiment.id)
    few = await load_messages(store, conversation_ids=[analysis_data.b.id])
    assert dict(full.dtypes) == dict(few.dtypes)
    none = await load_messages(store, experiment_id=analysis_data.experiment.id, kinds=["action"])
    assert none.empty
    for col, dtype in MESSAGE_COLUMNS.items():
        assert str(none[col].dtype) == str(full[col].dtype) == dtype


async def test_conversations_frame(store, analysis_data: AnalysisData) -> None:
    d = analysis_data
    df = await load_conversations(store, experiment_id="prison study")  # by name, any case
    assert list(df["conversation_id"]) == [d.a.id, d.b.id]
    a = df.iloc[0]
    assert a["status"] == "done" and a["duration_s"] == 90.0
    assert a["messages_stored"] == 9 and a["messages_done"] == 6
    assert a["agents"] == "Guard 1, Prisoner 1, Prisoner 2" and a["n_agents"] == 3
    assert a["total_tokens"] == 1319 and a["fallbacks"] == 1
    assert a["count_prisoner"] == 2 and a["factor_goal"] == "Escape"
    b = df.iloc[1]
    assert b["status"] == "failed" and b["error"] == "model unavailable"
    assert pd.isna(b["duration_s"]) and b["cell_model"] == "llama3.1:8b"
    assert "count_trader" not in df.columns


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, {"a", "b", "c"}),
        ({"batch_id": "BATCH"}, {"a", "b"}),
        ({"batch_id": "-"}, {"c"}),  # the conversations run on their own
        ({"experiment_id": "Other"}, {"c"}),
        ({"model": "llama3.1:8b"}, {"b"}),
        ({"model": "ollama:llama3.1:8b"}, {"b"}),
        ({"model": "dryrun"}, {"a", "c"}),
        ({"model": "script"}, {"a", "c"}),  # the dryrun model's old name
        ({"days": 2}, {"a"}),
        ({"counts": {"guard": 1, "prisoner": 2}}, {"a"}),
        ({"counts": {"Prisoner": 1}}, {"b"}),
        ({"counts": {"guard": 1}}, {"a", "b"}),
        ({"status": "failed"}, {"b"}),
        ({"status": "done"}, {"a", "c"}),
        ({"factors": {"goal": "escape"}}, {"a"}),
        ({"conversation_ids": ["C"]}, {"c"}),
    ],
)
async def test_filters(store, analysis_data: AnalysisData, filters, expected) -> None:
    d = analysis_data
    names = {d.a.id: "a", d.b.id: "b", d.c.id: "c"}
    filters = dict(filters)
    if filters.get("batch_id") == "BATCH":
        filters["batch_id"] = d.batch.id
    if filters.get("conversation_ids") == ["C"]:
        filters["conversation_ids"] = [d.c.id]
    convs = await load_conversations(store, **filters)
    assert {names[c] for c in convs["conversation_id"]} == expected
    msgs = await load_messages(store, ConversationFilter(**filters))
    assert {names[c] for c in msgs["conversation_id"]} == expected


async def test_kinds_filter_and_load_all(store, analysis_data: AnalysisData) -> None:
    convs, msgs = await load_all(store, batch_id=analysis_data.batch.id, kinds=["summary"])
    assert len(convs) == 2
    assert list(msgs["kind"]) == ["summary", "summary"]
    assert list(msgs["content"]) == ["Day one summary.", "Day two summary here."]


async def test_unknown_experiment_or_batch_is_a_clear_error(store, analysis_data) -> None:
    with pytest.raises(NotFoundError, match="No experiment 'Nope'"):
        await load_messages(store, experiment_id="Nope")
    with pytest.raises(NotFoundError, match="There is no batch"):
        await load_conversations(store, batch_id="0" * 32)


def test_messages_frame_from_domain_objects_drops_unknown_conversations() -> None:
    from simulator.domain import Status
    from tests.plugins.analysis import DRYRUN, conversation, msg, prison_experiment

    exp = prison_experiment()
    conv = conversation(
        exp,
        {"Guard": 1, "Prisoner": 1},
        days=1,
        factors={"goal": "Escape"},
        model=DRYRUN,
        batch_id=None,
        cell_index=0,
        status=Status.running,
    )
    stray = conversation(
        exp,
        {"Guard": 1, "Prisoner": 1},
        days=1,
        factors={},
        model=DRYRUN,
        batch_id=None,
        cell_index=1,
        status=Status.running,
    )
    df = messages_frame(
        [
            msg(conv, 1, "Guard 1", "Guard", "b"),
            msg(stray, 0, "x", "Guard", "zz"),
            msg(conv, 0, "Guard 1", "Guard", "a"),
        ],
        [conv],
        {exp.id: exp},
    )
    assert list(df["content"]) == ["a", "b"]
    assert list(df["factor_goal"]) == ["Escape", "Escape"]


def test_names_and_assignments() -> None:
    assert column_key("Head Guard") == "head_guard"
    assert column_key("  Risk-taking level ") == "risk_taking_level"
    assert parse_assignments("guard=1, prisoner=2", what="--counts") == {
        "guard": "1",
        "prisoner": "2",
    }
    assert parse_assignments(["goal=Escape", "persona=A, B=c"], what="--counts") == {
        "goal": "Escape",
        "persona": "A",
        "B": "c",
    }
    # a factor level may hold commas and '='
    assert parse_assignments(["persona=Calm, kind", "rule=a=b"], what="--factor", split=False) == {
        "persona": "Calm, kind",
        "rule": "a=b",
    }
    with pytest.raises(ValueError, match="expected NAME=VALUE, got 'guard'"):
        parse_assignments("guard", what="--counts")


def test_parameters_a_server_refused_are_shown_as_not_sent() -> None:
    from simulator.domain import ModelRef, SamplingParams, Status
    from tests.plugins.analysis import conversation, msg, prison_experiment

    exp = prison_experiment()
    ref = ModelRef(provider="openai", model="gpt-x", params=SamplingParams(seed=5))
    conv = conversation(
        exp,
        {"Guard": 1, "Prisoner": 1},
        days=1,
        factors={},
        model=ref,
        batch_id=None,
        cell_index=0,
        status=Status.done,
    )
    refused = msg(
        conv, 0, "Guard 1", "Guard", "hi", flags=["dropped:seed", "dropped:top_p"], model=ref
    )
    plain = msg(conv, 1, "Prisoner 1", "Prisoner", "yo", model=ref)
    df = messages_frame([refused, plain], [conv])
    assert df["dropped_params"].tolist()[0] == "seed, top_p"
    assert pd.isna(df["dropped_params"].tolist()[1])  # empty text is a missing value
    assert pd.isna(df.loc[0, "model_seed"]) and pd.isna(df.loc[0, "top_p"])
    assert df.loc[0, "temperature"] == pytest.approx(0.7)
    assert df.loc[1, "model_seed"] == 5 and df.loc[1, "top_p"] == pytest.approx(0.9)


async def test_cost_cache_retries_and_a_runs_warnings_are_columns(store) -> None:
    """What a call cost, whether the response cache served it, the prompt tokens a server served
    from its prompt cache and the failed attempts before it are message columns; why a run
    stopped early and what it noticed about its models are conversation columns."""
    from simulator.domain import MessageKind, TokenUsage
    from simulator.domain.models import CacheRecord, Retry, Status
    from tests.plugins.analysis import DRYRUN, conversation, msg, prison_experiment

    exp = await store.experiments.create(prison_experiment())
    conv = conversation(
        exp,
        {"Guard": 1, "Prisoner": 1},
        days=1,
        factors={"goal": "Escape"},
        model=DRYRUN,
        batch_id=None,
        cell_index=0,
        status=Status.failed,
        stop_reason="budget cap reached",
        warnings=["system_prompt_dropped:gemma", "other"],
    )
    await store.conversations.create(conv)
    called = msg(conv, 1, "Guard 1", "Guard", "Stay.", turn=1, attempts=3).model_copy(
        update={
            "usage": TokenUsage(prompt_tokens=100, completion_tokens=5, cached_tokens=64),
            "retries": [Retry(attempt=1, reason="429: slow down"), Retry(attempt=2, reason="5xx")],
            "cost_usd": 0.0125,
            "cache": CacheRecord(hit=False, key="k1"),
        }
    )
    served = msg(conv, 2, "Prisoner 1", "Prisoner", "No.", turn=2).model_copy(
        update={"cost_usd": 0.0, "cache": CacheRecord(hit=True, key="k2", hits=1)}
    )
    plain = msg(conv, 0, "Moderator", "moderator", "Start.", kind=MessageKind.kickoff)
    for m in (plain, called, served):
        assert await store.messages.append(m)

    df = (await load_messages(store, conversation_ids=[conv.id])).set_index("seq")
    assert df.loc[1, "cost_usd"] == pytest.approx(0.0125) and df.loc[2, "cost_usd"] == 0.0
    assert df.loc[1, "cached_tokens"] == 64 and df.loc[2, "cached_tokens"] == 0
    assert df.loc[1, "retries"] == 2 and df.loc[2, "retries"] == 0
    assert not df.loc[1, "cache_hit"] and df.loc[2, "cache_hit"]
    # the kickoff: no call, no price, the cache had no part in it
    assert pd.isna(df.loc[0, "cost_usd"]) and pd.isna(df.loc[0, "cache_hit"])
    for col in ("cost_usd", "cached_tokens", "retries", "cache_hit"):
        assert str(df[col].dtype) == MESSAGE_COLUMNS[col]

    convs = await load_conversations(store, conversation_ids=[conv.id])
    row = convs.iloc[0]
    assert row["stop_reason"] == "budget cap reached"
    assert row["warnings"] == "system_prompt_dropped:gemma, other"
