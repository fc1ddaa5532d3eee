"""Prompt-cache reuse: each conversation's stable prefix sent unchanged and first, a
``prompt_cache_key`` per conversation, Ollama's ``keep_alive``, and the cached prompt tokens a
server reports recorded on every message and summed by the ledger."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from simulator.db.store import ConversationFilter
from simulator.domain import (
    BatchSpec,
    CacheMode,
    ModelRef,
    ModelSet,
    Provider,
    SamplingParams,
    Status,
)
from simulator.engine.batch import BatchRunner
from simulator.llm.base import ChatMessage, ChatRequest
from simulator.llm.openai import OpenAIBackend
from simulator.llm.registry import Backends
from simulator.settings import Settings
from tests.plugins.batches import make_prison_experiment
from tests.servers import FakeOllamaServer, FakeOpenAIServer
from tests.servers.prefix_cache_server import PrefixCacheServer

PARAMS = SamplingParams(temperature=0.4, top_p=None, max_tokens=48)


def settings() -> Settings:
    return Settings(_env_file=None, openai_api_key=None, ollama_host=None)  # type: ignore[call-arg]


def ask(ref: ModelRef, key: str | None = "conversation-1") -> ChatRequest:
    return ChatRequest(
        model=ref, messages=[ChatMessage("user", "Hello there")], prompt_cache_key=key
    )


async def test_prompt_cache_key_goes_to_openai_and_to_servers_that_are_told_to_take_it() -> None:
    # OpenAI's own API takes it; another server only when the model's option says so
    assert OpenAIBackend.sends_prompt_cache_key(ModelRef(provider=Provider.openai, model="gpt"))
    with FakeOpenAIServer() as server:
        plain = ModelRef(provider=Provider.openai, model="m", base_url=server.base_url)
        told = plain.model_copy(update={"options": {"prompt_cache_key": True}})
        backends = Backends(settings())
        first = await backends.chat(ask(plain))
        second = await backends.chat(ask(told))
        await backends.aclose()
        without, with_key = server.chat_bodies()
    assert "prompt_cache_key" not in without and "prompt_cache_key" not in first.sent_params
    assert with_key["prompt_cache_key"] == "conversation-1"
    assert second.sent_params["prompt_cache_key"] == "conversation-1"


async def test_a_server_that_refuses_prompt_cache_key_gets_calls_without_it() -> None:
    with FakeOpenAIServer(reject_params=("prompt_cache_key",)) as server:
        ref = ModelRef(
            provider=Provider.openai,
            model="m",
            base_url=server.base_url,
            options={"prompt_cache_key": True},
        )
        backends = Backends(settings())
        first = await backends.chat(ask(ref))
        later = await backends.chat(ask(ref))
        await backends.aclose()
        bodies = server.chat_bodies()
    assert [("prompt_cache_key" in b) for b in bodies] == [True, False, False]
    assert first.dropped_params == later.dropped_params == ["prompt_cache_key"]
    assert "prompt_cache_key" not in later.sent_params


async def test_a_batch_sends_stable_prefixes_and_records_the_cached_tokens(store: Any) -> None:
    exp = await store.experiments.create(make_prison_experiment())
    with PrefixCacheServer() as server:
        ref = ModelRef(
            provider=Provider.openai,
            model="fake-model",
            base_url=server.base_url,
            params=PARAMS,
            options={"prompt_cache_key": True},
        )
        spec = BatchSpec(
            experiment_id=exp.id,
            model_sets=[ModelSet(default=ref)],
            total_messages=8,
            days=2,
            repeats=2,
        )
        backends = Backends(settings())
        runner = BatchRunner(store, backends)
        try:
            batch = await runner.run((await runner.start(exp, spec)).id)
        finally:
            await backends.aclose()
        bodies = server.chat_bodies()
    assert batch.status is Status.done
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    ids = {c.id for c in convs}
    # every request names its conversation, and nothing inside the prompts does
    assert {b["prompt_cache_key"] for b in bodies} == ids
    iso_time = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
    for body in bodies:
        for m in body["messages"]:
            assert not any(i in m["content"] for i in ids | {batch.id})
            assert not iso_time.search(m["content"])
    # an agent's requests of a day each begin with its whole previous request of that day
    by_agent: dict[tuple[str, str, str], list[list[dict[str, str]]]] = {}
    for body in bodies:
        system = body["messages"][0]["content"]
        if system.startswith("Summarize"):
            continue
        day = "day 2" if "Day 1 summary" in body["messages"][1]["content"] else "day 1"
        by_agent.setdefault((body["prompt_cache_key"], system, day), []).append(body["messages"])
    assert len(by_agent) == 2 * 2 * 2  # 2 conversations x a guard and a prisoner x 2 days
    for requests in by_agent.values():
        for before, after in itertools.pairwise(requests):
            assert after[: len(before)] == before
    # the server's cached tokens are on each message's usage and in the ledger
    messages = await store.messages.list_many(sorted(ids))
    answered = [m for m in messages if m.model is not None]
    assert sum(m.usage.cached_tokens for m in answered) > 0
    assert all(m.usage.cached_tokens <= m.usage.prompt_tokens for m in answered)
    ledger = await store.ledgers.get(batch.id)
    assert ledger.cached_tokens == sum(m.usage.cached_tokens for m in answered)
    assert ledger.cached_share is not None and 0.3 < ledger.cached_share < 1


async def test_ollama_gets_keep_alive_and_its_model_digest_keys_the_cache(store: Any) -> None:
    exp = await store.experiments.create(make_prison_experiment())
    with FakeOllamaServer() as server:
        ref = ModelRef(
            provider=Provider.ollama,
            model="llama3.2:1b",
            base_url=server.url,
            params=PARAMS,
            options={"keep_alive": "30m"},
        )
        spec = BatchSpec(
            experiment_id=exp.id,
            model_sets=[ModelSet(default=ref)],
            total_messages=2,
            cache=CacheMode.reuse,
        )
        backends = Backends(settings())
        runner = BatchRunner(store, backends)
        try:
            batch = await runner.run((await runner.start(exp, spec)).id)
        finally:
            await backends.aclose()
        bodies = server.chat_bodies()
        digest = (await _tags(server))["llama3.2:1b"]
    assert batch.status is Status.done
    assert bodies and all(b["keep_alive"] == "30m" for b in bodies)
    answers = [d async for d in store.responses.coll.find()]
    assert len(answers) == 3 and {a["model_digest"] for a in answers} == {digest}
    assert all(a["sent_params"]["keep_alive"] == "30m" for a in answers)
    assert all("keep_alive" not in a["params"] for a in answers)  # not a sampling parameter


async def _tags(server: FakeOllamaServer) -> dict[str, str]:
    import httpx

    async with httpx.AsyncClient() as client:
        listing = (await client.get(f"{server.url}/api/tags")).json()
    return {m["name"]: m["digest"] for m in listing["models"]}


@pytest.mark.parametrize("value", ["soon", True, [1]])
def test_a_bad_keep_alive_is_refused_with_its_name(value: Any) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="keep_alive must be a duration"):
        ModelRef(provider=Provider.ollama, model="m", options={"keep_alive": value})
