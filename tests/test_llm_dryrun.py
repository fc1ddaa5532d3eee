"""The dryrun backend: deterministic, seeded, schema-valid, labelled; and Backends routing to it."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from simulator.domain import ModelRef
from simulator.domain.errors import LLMError
from simulator.llm.base import CallMeta, ChatMessage, ChatRequest, LLMEvent
from simulator.llm.dryrun import DryRunBackend, register_policy, sample_schema, unregister_policy
from simulator.llm.registry import Backends
from simulator.settings import Settings

DRY = ModelRef(provider="dryrun", model="dryrun")


def request(seed: int = 1, *, model: ModelRef = DRY, **meta: object) -> ChatRequest:
    base: dict[str, object] = {"agent": "Guard 1", "role": "Guard", "day": 1, "turn": 3}
    base.update(meta)
    return ChatRequest(
        model=model,
        messages=[
            ChatMessage("system", "You are a guard in a prison study."),
            ChatMessage("user", "The prisoners ask for more food. What do you say?"),
        ],
        meta=CallMeta(seed=seed, **base),  # type: ignore[arg-type]
    )


async def test_identical_inputs_and_seed_give_identical_output() -> None:
    a = await DryRunBackend().chat(request(7))
    b = await DryRunBackend().chat(request(7))
    assert a.text == b.text
    assert a.usage == b.usage
    assert a.text.startswith("[dryrun] Guard 1 (Guard), day 1, turn 3:")
    assert a.raw["dryrun"] is True


async def test_a_different_seed_gives_different_output() -> None:
    texts = {(await DryRunBackend().chat(request(seed))).text for seed in range(8)}
    assert len(texts) >= 6


async def test_a_different_turn_gives_different_output() -> None:
    texts = {(await DryRunBackend().chat(request(1, turn=t))).text for t in range(8)}
    assert len(texts) >= 6


async def test_usage_is_estimated_from_words() -> None:
    result = await DryRunBackend().chat(request())
    prompt = "You are a guard in a prison study. The prisoners ask for more food. What do you say?"
    prompt_words = len(prompt.split())
    assert result.usage.prompt_tokens == round(prompt_words * 1.3)
    assert result.usage.completion_tokens == round(len(result.text.split()) * 1.3)
    assert result.usage.total_tokens > result.usage.prompt_tokens


class Vote(BaseModel):
    policy: Literal["audit", "no_audit"]
    extraction: int = Field(ge=0, le=20)
    share: float = Field(gt=0, lt=1)
    targets: list[str] = Field(min_length=1, max_length=3)
    note: str | None = None
    accuse: bool


class Mood(StrEnum):
    calm = "calm"
    angry = "angry"


class Nested(BaseModel):
    vote: Vote
    weight: float
    tiny: float = Field(ge=0.0001, le=0.0004)
    mood: Mood
    history: list[Vote] = Field(max_length=2)
    counts: dict[str, int]
    level: Literal[1, 2, 3] | None = None


async def test_json_actions_are_valid_for_the_schema() -> None:
    schema = Nested.model_json_schema()
    answers = set()
    for seed in range(20):
        req = request(seed, purpose="action")
        req = ChatRequest(model=req.model, messages=req.messages, meta=req.meta, json_schema=schema)
        result = await DryRunBackend().chat(req)
        Nested.model_validate_json(result.text)  # raises when invalid
        answers.add(result.text)
    assert len(answers) > 10


def test_schema_sampling_is_seeded() -> None:
    import random

    schema = Vote.model_json_schema()
    assert sample_schema(schema, random.Random(3)) == sample_schema(schema, random.Random(3))


async def test_manager_answers_a_candidate_deterministically() -> None:
    candidates = ("Guard 1", "Prisoner 1", "Prisoner 2")
    picks = []
    for turn in range(12):
        req = request(5, purpose="manager", candidates=candidates, turn=turn)
        result = await DryRunBackend().chat(req)
        assert result.text in candidates
        again = await DryRunBackend().chat(req)
        assert again.text == result.text
        picks.append(result.text)
    assert len(set(picks)) > 1


async def test_manager_nonsense_option() -> None:
    model = ModelRef(provider="dryrun", model="dryrun", options={"manager_answer": "nonsense"})
    candidates = ("Guard 1", "Prisoner 1")
    result = await DryRunBackend().chat(
        request(model=model, purpose="manager", candidates=candidates)
    )
    assert result.text.startswith("[dryrun]")
    assert not any(c in result.text for c in candidates)


async def test_summary_is_short_and_deterministic() -> None:
    a = await DryRunBackend().chat(request(2, purpose="summary", day=2))
    b = await DryRunBackend().chat(request(2, purpose="summary", day=2))
    assert a.text == b.text
    assert a.text.startswith("[dryrun] Summary of day 2:")
    assert len(a.text) < 200


async def test_latency_option_delays_the_answer() -> None:
    """The answer comes after a timer of ``latency_ms``: a 1 ms timer started before the call
    fires first (the loop runs due timers in deadline order, however loaded the machine is),
    and without the option the answer comes first."""

    async def order_of(options: dict[str, object]) -> list[str]:
        order: list[str] = []

        async def timer() -> None:
            await asyncio.sleep(0.001)
            order.append("1 ms timer")

        async def call() -> None:
            model = ModelRef(provider="dryrun", model="dryrun", options=options)
            result = await DryRunBackend().chat(request(model=model))
            order.append(f"answer after {result.latency_ms:g} ms")

        first = asyncio.create_task(timer())  # its deadline is set first
        await asyncio.sleep(0)
        await asyncio.gather(first, call())
        return order

    assert await order_of({"latency_ms": 150}) == ["1 ms timer", "answer after 150 ms"]
    assert (await order_of({}))[0].startswith("answer after")


async def test_registered_policy_by_option_and_by_model_name() -> None:
    calls: list[ChatRequest] = []

    def always_cooperate(req: ChatRequest) -> dict[str, object]:
        calls.append(req)
        return {"action": "cooperate", "turn": req.meta.turn}

    async def shout(req: ChatRequest) -> str:
        return "HELLO"

    register_policy("cooperator", always_cooperate)
    register_policy("shouter", shout)
    try:
        by_option = ModelRef(provider="dryrun", model="dryrun", options={"policy": "cooperator"})
        result = await DryRunBackend().chat(request(model=by_option, turn=4))
        assert json.loads(result.text) == {"action": "cooperate", "turn": 4}
        assert calls and calls[0].meta.turn == 4
        by_name = ModelRef(provider="dryrun", model="shouter")
        assert (await DryRunBackend().chat(request(model=by_name))).text == "HELLO"
    finally:
        unregister_policy("cooperator")
        unregister_policy("shouter")


async def test_unknown_policy_is_a_clear_error() -> None:
    model = ModelRef(provider="dryrun", model="dryrun", options={"policy": "nope"})
    with pytest.raises(LLMError, match="policy 'nope' is not registered"):
        await Backends(Settings(_env_file=None)).ensure_available([model])


async def test_backends_route_dryrun_and_time_out_slow_calls() -> None:
    events: list[LLMEvent] = []
    backends = Backends(
        Settings(_env_file=None), on_event=events.append, timeout_s=0.25, max_attempts=2
    )
    ok = await backends.chat(request())
    assert ok.attempts == 1 and ok.text.startswith("[dryrun]")
    slow = ModelRef(provider="dryrun", model="dryrun", options={"latency_ms": 2000})
    with pytest.raises(LLMError, match=r"no answer from dryrun .* within 0\.25 s") as info:
        await backends.chat(request(model=slow))
    assert "after 2 attempts" in str(info.value)
    assert [e.kind for e in events] == ["retry", "failed"]
    assert events[0].meta is not None and events[0].meta.agent == "Guard 1"
    assert "dryrun" in await backends.list_models(DRY)
    await backends.aclose()
