"""Dialogue conversations end to end on the embedded MongoDB and the dryrun backend."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import pytest

from simulator.domain import Memory, MessageKind, SpeakerSelection, Status
from simulator.domain.errors import LLMError
from simulator.engine.budget import day_budgets
from simulator.engine.conversation import prepare_conversation, run_conversation
from simulator.engine.events import (
    ConversationFinished,
    ConversationStarted,
    DayEnded,
    EventBus,
    MessageStored,
    SpeakerChoiceNeeded,
)
from simulator.llm.base import ChatMessage, ChatRequest
from tests.plugins.engine import build_cell, build_dialogue_experiment, dryrun


async def run_cell(store: Any, backends: Any, experiment: Any, cell: Any, **kw: Any) -> Any:
    if await store.experiments.get(experiment.id) is None:
        await store.experiments.create(experiment)
    conv = await prepare_conversation(store, experiment, cell)
    conv = await run_conversation(store, backends, conv.id, **kw)
    return conv, await store.messages.list(conv.id)


def shape(messages: list[Any]) -> list[tuple[Any, ...]]:
    """What two runs of the same cell must agree on (ids and timestamps aside)."""
    return [
        (m.seq, m.day, m.turn, m.speaker, m.role, m.kind, m.content, m.raw, m.data, m.flags)
        for m in messages
    ]


@pytest.mark.parametrize(
    ("total", "days", "guards", "prisoners"),
    [(20, 1, 1, 1), (20, 3, 1, 1), (7, 2, 1, 1), (1, 1, 1, 1), (10, 4, 2, 1), (5, 1, 1, 0)],
)
async def test_exact_budget_per_day_and_one_summary_per_day(
    store: Any, backends: Any, total: int, days: int, guards: int, prisoners: int
) -> None:
    cell = build_cell(total, days, guards=guards, prisoners=prisoners)
    if prisoners == 0:
        cell = cell.model_copy(update={"counts": {"Guard": guards}})
    conv, messages = await run_cell(store, backends, build_dialogue_experiment(), cell)
    assert conv.status is Status.done, conv.error
    assert [m.seq for m in messages] == list(range(len(messages)))
    utterances = [m for m in messages if m.kind is MessageKind.utterance]
    assert len(utterances) == total == conv.messages_done
    per_day = Counter(m.day for m in utterances)
    assert [per_day[d] for d in range(1, days + 1)] == day_budgets(total, days)
    for kind in (MessageKind.summary, MessageKind.kickoff):
        assert Counter(m.day for m in messages if m.kind is kind) == dict.fromkeys(
            range(1, days + 1), 1
        )
    # each day: kickoff first, summary last, turns numbered 1..n
    for d in range(1, days + 1):
        day = [m for m in messages if m.day == d]
        assert day[0].kind is MessageKind.kickoff and day[-1].kind is MessageKind.summary
        assert [m.turn for m in day if m.kind is MessageKind.utterance] == list(
            range(1, per_day[d] + 1)
        )
        assert f"Day {d} of {days} begins." in day[0].content
    assert conv.tokens.total_tokens == sum(m.usage.total_tokens for m in messages) > 0
    stored = await store.conversations.get(conv.id)
    assert stored.status is Status.done and stored.messages_done == total
    assert stored.finished_at is not None and stored.started_at is not None


async def test_round_robin_interleaves_and_restarts_each_day(store: Any, backends: Any) -> None:
    cell = build_cell(10, 2, guards=2, prisoners=1)
    _conv, messages = await run_cell(
        store, backends, build_dialogue_experiment(first_role="Prisoner"), cell
    )
    speakers = [(m.day, m.speaker) for m in messages if m.kind is MessageKind.utterance]
    order = ["Prisoner 1", "Guard 1", "Guard 2"]
    assert speakers == [(1, order[i % 3]) for i in range(5)] + [(2, order[i % 3]) for i in range(5)]


async def test_conversation_stores_its_configuration(store: Any, backends: Any) -> None:
    exp = build_dialogue_experiment()
    await store.experiments.create(exp)
    cell = build_cell(4, 2, guards=2, prisoners=1, seed=42)
    conv = await prepare_conversation(store, exp, cell, batch_id="b1", owner="ann", cell_index=3)
    again = await prepare_conversation(store, exp, cell, conversation_id=conv.id)
    assert again.id == conv.id
    stored = await store.conversations.get(conv.id)
    assert stored.status is Status.pending and stored.seed == 42 and stored.budget == 4
    assert [(a.name, a.role) for a in stored.agents] == [
        ("Guard 1", "Guard"),
        ("Guard 2", "Guard"),
        ("Prisoner 1", "Prisoner"),
    ]
    assert stored.agents[1].system_prompt.startswith("You are Guard 2, a guard facing 1 prisoner.")
    assert "Speak in the first person." in stored.agents[2].system_prompt
    assert stored.kickoff == "Day 1 of 2 begins. Start the experiment."
    assert stored.summarizer_prompt == "You summarise the day of 3 agents."
    assert "Guard 1 (Guard)" in stored.manager_prompt and "Keep order" not in stored.manager_prompt
    assert (stored.batch_id, stored.owner, stored.cell_index) == ("b1", "ann", 3)


async def test_same_seed_same_transcript_other_seed_other_order(store: Any, backends: Any) -> None:
    exp = build_dialogue_experiment()

    async def run(seed: int) -> list[Any]:
        cell = build_cell(
            24, 2, guards=2, prisoners=2, selection=SpeakerSelection.random, seed=seed
        )
        conv, messages = await run_cell(store, backends, exp, cell)
        assert conv.status is Status.done
        return messages

    a, b, c = await run(5), await run(5), await run(6)
    assert shape(a) == shape(b)
    order = [m.speaker for m in a if m.kind is MessageKind.utterance]
    assert order != [m.speaker for m in c if m.kind is MessageKind.utterance]
    for day in (1, 2):
        today = [m.speaker for m in a if m.kind is MessageKind.utterance and m.day == day]
        assert all(x != y for x, y in itertools.pairwise(today))
    assert len(set(order)) == 4


async def test_events_reach_subscribers(store: Any, backends: Any) -> None:
    bus = EventBus()
    seen: list[Any] = []
    bus.subscribe(seen.append)

    async def slow(event: Any) -> None:
        if isinstance(event, DayEnded):
            seen.append(("async", event.day))

    bus.subscribe(slow)
    _conv, messages = await run_cell(
        store, backends, build_dialogue_experiment(), build_cell(4, 2), bus=bus
    )
    kinds = [type(e).__name__ for e in seen if not isinstance(e, tuple)]
    assert kinds[0] == ConversationStarted.__name__ and kinds[-1] == ConversationFinished.__name__
    stored = [e.message.seq for e in seen if isinstance(e, MessageStored)]
    assert stored == [m.seq for m in messages]
    assert [e.day for e in seen if isinstance(e, DayEnded)] == [1, 2]
    assert ("async", 2) in seen


async def test_day_two_context_is_exact(store: Any, backends: Any, recording_policy: Any) -> None:
    policy = recording_policy()
    cell = build_cell(6, 2, model=policy.model)
    conv, _ = await run_cell(store, backends, build_dialogue_experiment(), cell)
    assert conv.status is Status.done
    guard, prisoner = conv.agents
    [request] = policy.for_meta(agent="Guard 1", day=2, turn=3)
    assert request.messages == [
        ChatMessage("system", guard.system_prompt),
        ChatMessage(
            "user",
            "Day 2 of 2 begins. Start the experiment.\n\nDay 1 summary:\nSummary of day 1.",
        ),
        ChatMessage("assistant", "Guard 1 speaks on day 2, turn 1."),
        ChatMessage("user", "Prisoner 1: Prisoner 1 speaks on day 2, turn 2."),
    ]
    [first] = policy.for_meta(agent="Prisoner 1", day=2, turn=2)
    assert first.messages == [
        ChatMessage("system", prisoner.system_prompt),
        ChatMessage(
            "user",
            "Day 2 of 2 begins. Start the experiment.\n\nDay 1 summary:\nSummary of day 1.\n\n"
            "Guard 1: Guard 1 speaks on day 2, turn 1.",
        ),
    ]
    [summary] = policy.for_meta(purpose="summary", day=2)
    assert summary.messages[0] == ChatMessage("system", conv.summarizer_prompt)
    assert summary.messages[1].content.startswith(
        "Transcript of day 2:\n\nGuard 1: Guard 1 speaks on day 2, turn 1.\n\n"
        "Prisoner 1: Prisoner 1 speaks on day 2, turn 2.\n\n"
        "Guard 1: Guard 1 speaks on day 2, turn 3.\n\n"
    )
    assert "summary of day 2" in summary.messages[1].content


def assert_append_only(requests: list[ChatRequest]) -> None:
    for before, after in itertools.pairwise(requests):
        assert after.messages[: len(before.messages)] == before.messages


async def test_requests_extend_each_other(store: Any, backends: Any, recording_policy: Any) -> None:
    policy = recording_policy()
    cell = build_cell(12, 2, guards=2, prisoners=1, model=policy.model)
    await run_cell(store, backends, build_dialogue_experiment(), cell)
    for agent in ("Guard 1", "Guard 2", "Prisoner 1"):
        for day in (1, 2):
            asks = policy.for_meta(agent=agent, day=day, purpose="utterance")
            assert len(asks) >= 2
            assert_append_only(asks)


async def test_full_history_memory_keeps_earlier_days(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    policy = recording_policy()
    cell = build_cell(6, 3, model=policy.model)
    exp = build_dialogue_experiment(memory=Memory.full_history)
    _conv, _ = await run_cell(store, backends, exp, cell)
    asks = policy.for_meta(agent="Guard 1", purpose="utterance")
    assert [r.meta.day for r in asks] == [1, 2, 3]
    assert_append_only(asks)
    day3 = asks[-1].messages
    assert day3[1].content == "Day 1 of 3 begins. Start the experiment."
    assert day3[2] == ChatMessage("assistant", "Guard 1 speaks on day 1, turn 1.")
    assert "Day 2 summary:\nSummary of day 2." in day3[-1].content


async def test_single_agent_talks_to_the_kickoff(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    policy = recording_policy()
    cell = build_cell(3, 1, model=policy.model).model_copy(update={"counts": {"Prisoner": 1}})
    conv, messages = await run_cell(store, backends, build_dialogue_experiment(), cell)
    assert conv.status is Status.done
    assert [m.speaker for m in messages if m.kind is MessageKind.utterance] == ["Prisoner 1"] * 3
    last = policy.for_meta(agent="Prisoner 1", turn=3)[0].messages
    assert [m.role for m in last] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert last[-1].content == "Continue."


async def test_stop_phrase_ends_after_the_days_summary(store: Any, backends: Any) -> None:
    exp = build_dialogue_experiment(stop_phrases=["TURN 3:"])
    conv, messages = await run_cell(store, backends, exp, build_cell(10, 2))
    assert conv.status is Status.done
    assert conv.messages_done == 3
    assert [m.kind for m in messages[-2:]] == [MessageKind.summary, MessageKind.system]
    assert messages[-1].data == {"stop_phrase": "TURN 3:", "speaker": "Guard 1"}
    assert {m.day for m in messages} == {1}


async def test_output_is_cleaned_and_empty_answers_reasked_then_flagged(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    def answer(request: ChatRequest) -> str:
        m = request.meta
        if m.purpose == "summary":
            return "Summary."
        reask = request.messages[-1].content.startswith("Your previous answer had no text")
        if m.agent == "Guard 1" and m.turn == 1:
            return "Guard 1: Line up.\nPrisoner 1: Never!"
        if m.agent == "Prisoner 1" and m.turn == 2:
            return "I refuse." if reask else "**Guard 1:** Quiet."
        if m.agent == "Guard 1" and m.turn == 3:
            return "Prisoner 1: help"
        return "Fine."

    policy = recording_policy(answer)
    conv, messages = await run_cell(
        store, backends, build_dialogue_experiment(), build_cell(4, model=policy.model)
    )
    assert conv.status is Status.done
    turns = {m.turn: m for m in messages if m.kind is MessageKind.utterance}
    assert (turns[1].content, turns[1].raw) == ("Line up.", "Guard 1: Line up.\nPrisoner 1: Never!")
    assert turns[1].flags == []
    assert (turns[2].content, turns[2].flags) == ("I refuse.", ["reasked"])
    assert turns[2].data == {"first_raw": "**Guard 1:** Quiet."}
    assert (turns[3].content, turns[3].flags) == ("", ["reasked", "empty"])
    assert len(policy.for_meta(agent="Guard 1", turn=3)) == 2
    assert turns[3].attempts == 2


async def test_auto_with_a_nonsense_manager_falls_back_and_records_it(
    store: Any, backends: Any
) -> None:
    cell = build_cell(
        8,
        2,
        guards=2,
        prisoners=1,
        selection=SpeakerSelection.auto,
        manager=dryrun(manager_answer="nonsense"),
    )
    conv, messages = await run_cell(store, backends, build_dialogue_experiment(), cell)
    assert conv.status is Status.done, conv.error
    assert conv.messages_done == 8
    decisions = [m for m in messages if m.kind is MessageKind.system]
    assert len(decisions) == 8  # three agents: two are eligible at every turn
    assert all(
        d.flags == ["reasked", "fallback"] and len(d.data["answers"]) == 2 for d in decisions
    )
    assert conv.fallbacks == 8 == (await store.conversations.get(conv.id)).fallbacks
    # each decision comes right before the turn it decided, and names its speaker
    for d in decisions:
        nxt = messages[d.seq + 1]
        assert nxt.kind is MessageKind.utterance and nxt.speaker == d.data["choice"]
        assert (nxt.day, nxt.turn) == (d.day, d.turn)
    for day in (1, 2):
        today = [m.speaker for m in messages if m.kind is MessageKind.utterance and m.day == day]
        assert all(x != y for x, y in itertools.pairwise(today))


async def test_auto_with_a_sensible_manager_has_no_fallbacks(store: Any, backends: Any) -> None:
    cell = build_cell(6, 1, guards=1, prisoners=2, selection=SpeakerSelection.auto)
    conv, messages = await run_cell(store, backends, build_dialogue_experiment(), cell)
    assert conv.status is Status.done and conv.fallbacks == 0
    decisions = [m for m in messages if m.kind is MessageKind.system]
    assert decisions and all(d.flags == [] for d in decisions)
    assert all(d.data["choice"] in d.data["candidates"] for d in decisions)


async def test_manual_selection_uses_the_callback(store: Any, backends: Any) -> None:
    asked: list[list[str]] = []
    script = iter(["Prisoner 1", "prisoner 1", "Guard 2", "Guard 1", "Prisoner 1"])

    async def choose(conversation: Any, candidates: list[str]) -> str:
        asked.append(candidates)
        return next(script)

    bus = EventBus()
    needed: list[SpeakerChoiceNeeded] = []
    bus.subscribe(lambda e: needed.append(e) if isinstance(e, SpeakerChoiceNeeded) else None)
    cell = build_cell(5, 1, guards=2, prisoners=1, selection=SpeakerSelection.manual)
    conv, messages = await run_cell(
        store, backends, build_dialogue_experiment(), cell, choose_speaker=choose, bus=bus
    )
    assert conv.status is Status.done
    speakers = [m.speaker for m in messages if m.kind is MessageKind.utterance]
    assert speakers == ["Prisoner 1", "Prisoner 1", "Guard 2", "Guard 1", "Prisoner 1"]
    assert asked[0] == ["Guard 1", "Guard 2", "Prisoner 1"]
    assert [e.turn for e in needed] == [1, 2, 3, 4, 5]


async def test_manual_without_a_callback_fails_cleanly(store: Any, backends: Any) -> None:
    cell = build_cell(2, 1, selection=SpeakerSelection.manual)
    conv, _messages = await run_cell(store, backends, build_dialogue_experiment(), cell)
    assert conv.status is Status.failed
    assert "Manual selection unavailable" in conv.error
    assert (await store.conversations.get(conv.id)).status is Status.failed


async def test_failed_call_keeps_messages_and_resume_never_repeats_a_stored_call(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    broken = {"on": True}

    def answer(request: ChatRequest) -> str:
        m = request.meta
        if broken["on"] and m.day == 2 and m.turn == 2:
            raise LLMError("the model server went away", retryable=False)
        return f"{m.purpose} {m.agent} {m.day} {m.turn}"

    policy = recording_policy(answer)
    exp = build_dialogue_experiment()
    cell = build_cell(
        8, 2, guards=1, prisoners=2, selection=SpeakerSelection.random, model=policy.model
    )
    conv, first = await run_cell(store, backends, exp, cell)
    assert conv.status is Status.failed and "went away" in conv.error
    assert first[-1].day == 2 and first[-1].turn == 1
    calls_before = len(policy.requests)
    broken["on"] = False
    resumed = await run_conversation(store, backends, conv.id)
    assert resumed.status is Status.done and resumed.error is None
    assert resumed.messages_done == 8 == (await store.conversations.get(conv.id)).messages_done
    after = policy.requests[calls_before:]
    stored_keys = {(m.speaker, m.day, m.turn) for m in first}
    assert all((r.meta.agent, r.meta.day, r.meta.turn) not in stored_keys for r in after)
    # identical to an uninterrupted run of the same cell
    _, clean = await run_cell(store, backends, exp, cell)
    assert shape(await store.messages.list(conv.id)) == shape(clean)
    # running a finished conversation again changes nothing
    calls = len(policy.requests)
    assert (await run_conversation(store, backends, conv.id)).status is Status.done
    assert len(policy.requests) == calls


async def test_resume_refuses_a_transcript_that_no_longer_matches(
    store: Any, backends: Any
) -> None:
    exp = build_dialogue_experiment()
    cell = build_cell(4, 1)
    conv, _ = await run_cell(store, backends, exp, cell)
    await store.messages.delete_from(conv.id, 3)
    # pretend the first speaking role changed after the run had started
    await store.experiments.set_fields(exp.id, dialogue={"first_role": "Prisoner"})
    await store.conversations.set_fields(conv.id, status=Status.failed)
    again = await run_conversation(store, backends, conv.id)
    assert again.status is Status.failed
    assert "Cannot resume" in again.error
    assert len(await store.messages.list(conv.id)) == 3


async def test_auto_resume_replays_stored_manager_decisions(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    broken = {"on": True}

    def answer(request: ChatRequest) -> str:
        m = request.meta
        if m.purpose == "manager":
            return m.candidates[-1]
        if broken["on"] and m.purpose == "utterance" and m.turn == 3:
            raise LLMError("overloaded", retryable=False)
        return f"{m.agent} {m.day} {m.turn}"

    policy = recording_policy(answer)
    cell = build_cell(
        6, 1, guards=2, prisoners=1, selection=SpeakerSelection.auto, model=policy.model
    )
    conv, first = await run_cell(store, backends, build_dialogue_experiment(), cell)
    assert conv.status is Status.failed
    assert first[-1].kind is MessageKind.system and first[-1].turn == 3  # decided, not spoken
    broken["on"] = False
    done = await run_conversation(store, backends, conv.id)
    assert done.status is Status.done and done.messages_done == 6
    assert len(policy.for_meta(purpose="manager", turn=3)) == 1
    assert len(policy.for_meta(purpose="utterance", turn=3)) == 2  # failed once, then answered
    messages = await store.messages.list(conv.id)
    decided = {m.turn: m.data["choice"] for m in messages if m.kind is MessageKind.system}
    spoke = {m.turn: m.speaker for m in messages if m.kind is MessageKind.utterance}
    assert decided == spoke


async def test_a_kind_nobody_runs_fails_the_conversation(store: Any, backends: Any) -> None:
    from simulator.scenarios.registry import KINDS, KindRegistry

    exp = build_dialogue_experiment()
    await store.experiments.create(exp)
    conv = await prepare_conversation(store, exp, build_cell(2))
    # the engine is handed a registry without the dialogue kind
    without = KindRegistry([k for k in KINDS if k.name != "dialogue"])
    ended = await run_conversation(store, backends, conv.id, kinds=without)
    assert ended.status is Status.failed and "Unknown experiment kind" in ended.error
    assert "'dialogue'" in ended.error and "known kinds: commons" in ended.error
    assert (await store.conversations.get(conv.id)).status is Status.failed
