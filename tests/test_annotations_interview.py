"""Interviews after a run: the agent receives exactly its context plus the question (checked
against what a local OpenAI-compatible server received during the run and at the interview),
the conversation's stored messages and document stay unchanged, ``--day`` rebuilds an earlier
day's context, and game agents are asked with the context of their last decision."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.annotations.base import AnnotationError, item_ids
from simulator.annotations.interview import InterviewAnnotator, replay_context, with_question
from simulator.annotations.runner import AnnotationRunner
from simulator.domain import Memory, ModelRef, Provider, SamplingParams
from simulator.domain.models import Decision
from simulator.engine.conversation import run_conversation
from simulator.llm.base import ChatMessage
from simulator.llm.registry import Backends
from simulator.settings import Settings
from tests.plugins.annotations import Recorder, run_dialogue_study
from tests.servers import FakeModerationServer

QUESTION = "Looking back, what did you want from the others today?"


def numbered_reply(body: dict[str, Any]) -> str:
    return f"Reply to {len(body['messages'])} messages."


async def docs_of(store: Any, conversation_id: str) -> list[dict[str, Any]]:
    found = await store.db["messages"].find({"conversation_id": conversation_id}).to_list(None)
    return sorted(found, key=lambda d: d["seq"])


async def test_a_dialogue_agent_gets_its_context_plus_the_question_and_nothing_changes(
    store: Any, llm_settings: Settings
) -> None:
    with FakeModerationServer(reply=numbered_reply, models=("fake-model",)) as server:
        model = ModelRef(
            provider=Provider.openai,
            model="fake-model",
            base_url=server.base_url,
            params=SamplingParams(temperature=0.3, top_p=None, max_tokens=100, seed=None),
        )
        backends = Backends(llm_settings, max_attempts=1)
        try:
            study = await run_dialogue_study(store, model=model, backends=backends)
            conv = study.conversations[0]
            run_bodies = list(server.chat_bodies())
            messages_before = await docs_of(store, conv.id)
            conversation_before = await store.db["conversations"].find_one({"_id": conv.id})
            interview = InterviewAnnotator(store, backends, QUESTION)
            runner = AnnotationRunner(store, backends)
            report = await runner.run(interview, [conv])
        finally:
            await backends.aclose()
        sent = server.chat_bodies()[len(run_bodies) :]
    assert report.complete and report.written == 2
    assert await docs_of(store, conv.id) == messages_before  # the conversation is untouched
    assert await store.db["conversations"].find_one({"_id": conv.id}) == conversation_before

    stored = await store.messages.list(conv.id)
    utterances = [m for m in stored if m.kind.value == "utterance"]
    assert [m.speaker for m in utterances] == ["Guard 1", "Prisoner 1"] * 3

    def last_request_to(agent: str) -> list[dict[str, str]]:
        """What the server received for the agent's last turn during the run."""
        mine = [
            b["messages"]
            for b in run_bodies
            if b["messages"][0]["content"]
            == next(a.system_prompt for a in conv.agents if a.name == agent)
        ]
        return mine[-1]

    by_agent = {b["messages"][0]["content"]: b for b in sent}
    prisoner = next(a for a in conv.agents if a.name == "Prisoner 1")
    guard = next(a for a in conv.agents if a.name == "Guard 1")
    # the prisoner spoke last: its last request, its answer, then the question
    assert by_agent[prisoner.system_prompt]["messages"] == [
        *last_request_to("Prisoner 1"),
        {"role": "assistant", "content": utterances[-1].content},
        {"role": "user", "content": QUESTION},
    ]
    # the guard heard the prisoner after its own last turn: that turn, then the question
    assert by_agent[guard.system_prompt]["messages"] == [
        *last_request_to("Guard 1"),
        {"role": "assistant", "content": utterances[-2].content},
        {"role": "user", "content": f"Prisoner 1: {utterances[-1].content}\n\n{QUESTION}"},
    ]
    assert by_agent[guard.system_prompt]["temperature"] == 0.3  # the agent's own model
    answers = await store.annotations.get_many(
        [i for item in await interview.items(conv, stored) for i in item_ids(interview, item)]
    )
    assert {a.agent for a in answers} == {"Guard 1", "Prisoner 1"}
    for a in answers:
        assert a.annotator == "interview" and a.question == QUESTION and a.seq is None
        assert a.value == f"Reply to {len(a.prompt)} messages." and a.decision is Decision.answer
        assert a.prompt == by_agent[a.prompt[0]["content"]]["messages"]  # as sent
        assert a.data == {"day": 1} and a.annotator_version == "end"


async def test_an_earlier_day_gives_that_days_context_only(store: Any) -> None:
    study = await run_dialogue_study(store, total_messages=6, days=2)
    conv = study.conversations[0]
    stored = await store.messages.list(conv.id)
    backends = Recorder(Backends(max_attempts=1))
    day1 = InterviewAnnotator(store, backends, QUESTION, agents=["prisoner 1"], day=1)
    (item,) = await day1.items(conv, stored)
    request, context = await day1.request(item)
    text = "\n".join(m.content for m in request.messages)
    assert context.day == 1
    for m in stored:
        if m.kind.value == "utterance":
            assert (m.content in text) is (m.day == 1), m
    end = InterviewAnnotator(store, backends, QUESTION, agents=["Prisoner 1"])
    request, context = await end.request(item)
    assert context.day == 2  # the published memory: day 2's messages and kickoff (summary 1)
    text = "\n".join(m.content for m in request.messages)
    assert "Day 1 summary:" in text
    assert not any(m.content in text for m in stored if m.day == 1 and m.kind.value == "utterance")
    assert day1.version != end.version  # different contexts, kept apart
    with pytest.raises(AnnotationError, match="has no day 5"):
        await InterviewAnnotator(store, backends, QUESTION, day=5).request(item)


async def test_full_history_memory_shows_every_day(store: Any) -> None:
    from simulator.domain import DialogueOptions

    study = await run_dialogue_study(
        store, days=2, dialogue=DialogueOptions(memory=Memory.full_history)
    )
    conv = study.conversations[0]
    stored = await store.messages.list(conv.id)
    interview = InterviewAnnotator(store, Backends(), QUESTION, agents=["Guard 1"])
    (item,) = await interview.items(conv, stored)
    request, _ = await interview.request(item)
    text = "\n".join(m.content for m in request.messages)
    assert all(m.content in text for m in stored if m.kind.value == "utterance")


def test_the_question_follows_pending_text_in_the_same_message() -> None:
    ctx = [ChatMessage("system", "S"), ChatMessage("user", "Guard 1: hi")]
    assert with_question(ctx, "Q?")[-1] == ChatMessage("user", "Guard 1: hi\n\nQ?")
    ctx = [ChatMessage("system", "S"), ChatMessage("assistant", "A")]
    assert with_question(ctx, "Q?")[-1] == ChatMessage("user", "Q?")


async def test_a_commons_member_is_asked_with_the_context_of_its_last_decision(
    store: Any,
) -> None:
    from simulator.scenarios.commons.params import CommonsParams
    from simulator.scenarios.commons.setup import (
        commons_cell,
        commons_experiment,
        scripted_model,
        start_run,
    )

    run = Recorder(Backends(max_attempts=1))
    conv = await start_run(
        store, commons_experiment(CommonsParams(rounds=2)), commons_cell(3, seed=3)
    )
    conv = await run_conversation(store, run, conv.id)
    assert conv.status.value == "done", conv.error
    stored = await store.messages.list(conv.id)
    member = "Member 2"
    decisions = [r for r in run.requests if r.meta.agent == member and r.meta.purpose == "action"]
    answers = [m for m in stored if m.speaker == member and m.kind.value == "action"]
    ask = Recorder(Backends(max_attempts=1))
    interview = InterviewAnnotator(
        store, ask, "Why did you take what you took?", agents=[member], model=ModelRef()
    )
    report = await AnnotationRunner(store, ask).run(interview, [conv])
    assert report.complete and report.written == 1
    (sent,) = ask.requests
    assert sent.messages == [
        *decisions[-1].messages,
        ChatMessage("assistant", answers[-1].content),
        ChatMessage("user", "Why did you take what you took?"),
    ]
    assert sent.model == ModelRef()
    assert await store.messages.list(conv.id) == stored
    # by round 1: the last decision of round 1
    context = await replay_context(store, conv, conv.agents[1], stored, day=1)
    round1 = [r for r, m in zip(decisions, answers, strict=True) if m.day == 1]
    assert context.messages[:-1] == round1[-1].messages and context.day == 1
    assert context.model == round1[-1].model == scripted_model()


async def test_a_reputation_agent_is_asked_with_the_context_of_its_last_decision(
    store: Any,
) -> None:
    from tests.plugins.reputation import store_reputation

    _, conv = await store_reputation(store, game="pd", steps=2)
    run = Recorder(Backends(max_attempts=1))
    conv = await run_conversation(store, run, conv.id)
    assert conv.status.value == "done", conv.error
    stored = await store.messages.list(conv.id)
    agent = conv.agents[0]
    decisions = [r for r in run.requests if r.meta.agent == agent.name]
    answers = [m for m in stored if m.speaker == agent.name and m.kind.value == "action"]
    assert len(decisions) == len(answers) > 0
    context = await replay_context(store, conv, agent, stored)
    assert context.messages == [
        *decisions[-1].messages,
        ChatMessage("assistant", answers[-1].content),
    ]
    assert context.model == decisions[-1].model
