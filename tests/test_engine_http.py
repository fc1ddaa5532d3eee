"""A dialogue conversation against a real HTTP server (the fake OpenAI-compatible server)."""

from __future__ import annotations

import itertools
from typing import Any

from simulator.domain import MessageKind, ModelRef, SamplingParams, Status
from simulator.engine.conversation import prepare_conversation, run_conversation
from simulator.llm.registry import Backends
from tests.plugins.engine import build_cell, build_dialogue_experiment
from tests.servers import FakeOpenAIServer


def reply(body: dict[str, Any]) -> str:
    last = body["messages"][-1]["content"]
    if "Write the summary" in last:
        return "They talked."
    # a model that writes the other side of the dialogue too
    return f"Reply to {len(body['messages'])} messages.\nPrisoner 1: and I answer myself"


async def test_openai_compatible_server_with_a_refused_parameter(
    store: Any, llm_settings: Any
) -> None:
    with FakeOpenAIServer(reject_params=("seed",), reply=reply) as server:
        model = ModelRef(
            provider="openai",
            model="fake-model",
            base_url=server.base_url,
            params=SamplingParams(seed=7, temperature=0.2),
        )
        exp = build_dialogue_experiment()
        await store.experiments.create(exp)
        conv = await prepare_conversation(store, exp, build_cell(8, 2, model=model))
        backends = Backends(llm_settings)
        try:
            done = await run_conversation(store, backends, conv.id)
        finally:
            await backends.aclose()
        bodies = server.chat_bodies()
    assert done.status is Status.done, done.error
    messages = await store.messages.list(conv.id)
    turns = [m for m in messages if m.kind is MessageKind.utterance]
    assert all(m.flags == ["dropped:seed"] for m in turns)
    guard_turns = [m for m in turns if m.speaker == "Guard 1"]
    assert guard_turns[0].content == "Reply to 2 messages."
    assert guard_turns[0].raw.endswith("Prisoner 1: and I answer myself")
    # what went over the wire: labelled turns, temperature as configured, no seed after refusal
    accepted = [b for b in bodies if "seed" not in b]
    assert all(b["temperature"] == 0.2 for b in accepted)
    prisoner = [b for b in accepted if b["messages"][0]["content"].startswith("You are Prisoner 1")]
    assert prisoner[0]["messages"][-1]["content"].endswith("Guard 1: Reply to 2 messages.")
    day1 = [b for b in prisoner if "Day 1 of 2" in b["messages"][1]["content"]]
    assert len(day1) == 2
    for before, after in itertools.pairwise(day1):
        assert after["messages"][: len(before["messages"])] == before["messages"]
    assert done.tokens.total_tokens == sum(m.usage.total_tokens for m in messages)
