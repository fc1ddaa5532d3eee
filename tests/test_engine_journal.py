"""The journal kernel: dense seq, append before return, replay, structured actions, snapshots."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from simulator.domain import Conversation, MessageKind, Status
from simulator.domain.errors import DatabaseUnavailableError
from simulator.engine.events import (
    ConversationFailed,
    ConversationFinished,
    EventBus,
    MessageStored,
)
from simulator.engine.journal import Journal, ResumeError, parse_json_object
from simulator.llm.base import CallMeta, ChatMessage, ChatRequest
from tests.plugins.engine import build_cell
from tests.plugins.waiting import DEADLINE_S, wait_until


class Harvest(BaseModel):
    amount: int = Field(ge=0, le=10)
    reason: Literal["need", "greed"] = "need"


async def new_conversation(store: Any) -> Conversation:
    return await store.conversations.create(
        Conversation(experiment_id="exp", cell=build_cell(4), seed=3)
    )


def ask(policy: Any, agent: str = "Fisher 1", turn: int = 1) -> ChatRequest:
    return ChatRequest(
        model=policy.model,
        messages=[ChatMessage("system", "You fish."), ChatMessage("user", "How much?")],
        meta=CallMeta(agent=agent, role="Fisher", day=1, turn=turn, purpose="action"),
    )


async def test_chat_record_and_replay(store: Any, backends: Any, recording_policy: Any) -> None:
    policy = recording_policy(lambda r: f"hello from {r.meta.agent}")
    conv = await new_conversation(store)
    bus = EventBus()
    events: list[Any] = []
    bus.subscribe(events.append)
    j = await Journal.open(store, conv, backends, bus)
    assert (j.next_seq, j.replaying) == (0, False)
    assert (await store.conversations.get(conv.id)).status is Status.running
    k = await j.record(kind=MessageKind.kickoff, speaker="Researcher", role="r", content="Go")
    m = await j.chat(ask(policy), speaker="Fisher 1", role="Fisher", day=1, turn=1)
    # appended before returning
    assert [x.seq for x in await store.messages.list(conv.id)] == [0, 1]
    assert (k.seq, m.seq, m.content, m.model, j.next_seq) == (
        0,
        1,
        "hello from Fisher 1",
        policy.model,
        2,
    )
    assert [e.message.seq for e in events if isinstance(e, MessageStored)] == [0, 1]
    # a second journal on the same conversation replays without calling the model
    calls = len(policy.requests)
    j2 = await Journal.open(store, conv, backends)
    assert j2.replaying and j2.peek() == k and j2.messages_done == 1
    assert (
        await j2.record(kind=MessageKind.kickoff, speaker="Researcher", role="r", content="?") == k
    )
    assert await j2.chat(ask(policy), speaker="Fisher 1", role="Fisher", day=1, turn=1) == m
    assert len(policy.requests) == calls and not j2.replaying
    m3 = await j2.chat(ask(policy, turn=2), speaker="Fisher 1", role="Fisher", day=1, turn=2)
    assert m3.seq == 2 and len(policy.requests) == calls + 1


async def test_replay_refuses_a_different_speaker(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    policy = recording_policy()
    conv = await new_conversation(store)
    j = await Journal.open(store, conv, backends)
    await j.chat(ask(policy), speaker="Fisher 1", role="Fisher", day=1, turn=1)
    j2 = await Journal.open(store, conv, backends)
    with pytest.raises(ResumeError, match="by 'Fisher 1'"):
        await j2.chat(ask(policy, "Fisher 2"), speaker="Fisher 2", role="Fisher", day=1, turn=1)


async def test_action_valid_answer(store: Any, backends: Any, recording_policy: Any) -> None:
    policy = recording_policy(lambda r: '```json\n{"amount": 4, "reason": "greed"}\n```')
    conv = await new_conversation(store)
    j = await Journal.open(store, conv, backends)
    answer, msg = await j.action(
        ask(policy),
        Harvest,
        Harvest(amount=0),
        speaker="Fisher 1",
        role="Fisher",
        day=1,
        turn=1,
        recipients=["Fisher 2"],
    )
    assert answer == Harvest(amount=4, reason="greed")
    assert msg.kind is MessageKind.action and msg.data == {"amount": 4, "reason": "greed"}
    assert msg.flags == [] and msg.attempts == 1 and msg.recipients == ["Fisher 2"]
    assert json.loads(msg.content) == msg.data
    assert policy.requests[0].json_schema == Harvest.model_json_schema()


async def test_action_reasks_with_the_error_then_succeeds(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    def answer(r: ChatRequest) -> str:
        return '{"amount": 3}' if len(r.messages) > 2 else '{"amount": 99}'

    policy = recording_policy(answer)
    conv = await new_conversation(store)
    j = await Journal.open(store, conv, backends)
    value, msg = await j.action(
        ask(policy), Harvest, {"amount": 0}, speaker="Fisher 1", role="Fisher", day=1, turn=1
    )
    assert value.amount == 3 and msg.flags == ["reasked"] and msg.attempts == 2
    reask = policy.requests[1].messages
    assert reask[-2] == ChatMessage("assistant", '{"amount": 99}')
    assert "amount" in reask[-1].content and "less than or equal to 10" in reask[-1].content


async def test_action_falls_back_to_the_default_and_records_it(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    policy = recording_policy(lambda r: "I would rather not say.")
    conv = await new_conversation(store)
    j = await Journal.open(store, conv, backends)
    value, msg = await j.action(
        ask(policy),
        Harvest,
        {"amount": 1},
        speaker="Fisher 1",
        role="Fisher",
        day=1,
        turn=1,
        max_reasks=2,
    )
    assert value == Harvest(amount=1)
    assert msg.flags == ["reasked", "fallback"] and msg.attempts == 3
    assert msg.data == {"amount": 1, "reason": "need"} and msg.raw == "I would rather not say."
    assert len(policy.requests) == 3
    final = await j.finish(Status.done)
    assert final.fallbacks == 1 and final.messages_done == 1
    stored = await store.conversations.get(conv.id)
    assert (stored.status, stored.fallbacks, stored.messages_done) == (Status.done, 1, 1)
    # replayed on resume: the stored answer comes back, no model call
    j2 = await Journal.open(store, conv, backends)
    again, same = await j2.action(
        ask(policy), Harvest, {"amount": 7}, speaker="Fisher 1", role="Fisher", day=1, turn=1
    )
    assert (again, same) == (value, msg) and len(policy.requests) == 3


async def test_dryrun_actions_are_schema_valid(store: Any, backends: Any) -> None:
    from tests.plugins.engine import dryrun

    conv = await new_conversation(store)
    j = await Journal.open(store, conv, backends)
    req = ChatRequest(model=dryrun(), messages=[ChatMessage("user", "?")], meta=CallMeta(seed=1))
    for turn in range(5):
        value, msg = await j.action(
            req, Harvest, {"amount": 0}, speaker="F", role="Fisher", day=1, turn=turn
        )
        assert 0 <= value.amount <= 10 and "fallback" not in msg.flags


async def test_snapshot_and_finish(store: Any, backends: Any) -> None:
    conv = await new_conversation(store)
    bus = EventBus()
    events: list[Any] = []
    bus.subscribe(events.append)
    j = await Journal.open(store, conv, backends, bus)
    await j.record(kind=MessageKind.system, speaker="Game", role="game", content="round 1")
    await j.snapshot(1, {"stock": 100.0})
    assert await store.states.latest(conv.id) == (1, {"stock": 100.0, "seq": 1})
    done = await j.finish(Status.failed, "model gone")
    assert (done.status, done.error) == (Status.failed, "model gone")
    assert isinstance(events[-1], ConversationFailed) and events[-1].error == "model gone"
    j2 = await Journal.open(store, conv, backends, bus)
    assert (await store.conversations.get(conv.id)).error is None
    await j2.finish(Status.done)
    assert isinstance(events[-1], ConversationFinished) and events[-1].status is Status.done


async def test_a_failing_subscriber_does_not_stop_the_run(store: Any, backends: Any) -> None:
    bus = EventBus()
    got: list[Any] = []

    def bad(event: Any) -> None:
        raise RuntimeError("display broke")

    async def bad_async(event: Any) -> None:
        raise RuntimeError("display broke too")

    bus.subscribe(bad)
    bus.subscribe(bad_async)
    unsubscribe = bus.subscribe(got.append)
    conv = await new_conversation(store)
    j = await Journal.open(store, conv, backends, bus)
    await j.record(kind=MessageKind.system, speaker="Game", role="game", content="x")
    unsubscribe()
    await j.record(kind=MessageKind.system, speaker="Game", role="game", content="y")
    assert len([e for e in got if isinstance(e, MessageStored)]) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('Sure! {"a": 1} Hope this helps.', {"a": 1}),
    ],
)
def test_parse_json_object(text: str, expected: dict[str, Any]) -> None:
    assert parse_json_object(text) == expected


@pytest.mark.parametrize("text", ["no json here", "[1, 2]", '{"a": }'])
def test_parse_json_object_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_json_object(text)


async def test_seek_skips_replay_of_a_stored_prefix(store: Any, backends: Any) -> None:
    conv = await new_conversation(store)
    j = await Journal.open(store, conv, backends)
    for i in range(3):
        await j.record(kind=MessageKind.system, speaker="Game", role="game", content=f"{i}")
    j2 = await Journal.open(store, conv, backends)
    j2.seek(2)
    assert j2.next_seq == 2 and j2.peek().content == "2" and len(j2.history) == 2
    with pytest.raises(ResumeError):
        j2.seek(4)


async def test_an_empty_summary_is_reasked_as_a_summary(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    policy = recording_policy(lambda r: "Quiet day." if len(r.messages) > 2 else "  ")
    conv = await new_conversation(store)
    j = await Journal.open(store, conv, backends)
    m = await j.chat(
        ask(policy, "Summarizer"),
        speaker="Summarizer",
        role="summarizer",
        day=1,
        turn=3,
        kind=MessageKind.summary,
    )
    assert (m.content, m.flags, m.kind) == ("Quiet day.", ["reasked"], MessageKind.summary)
    assert policy.requests[1].messages[-1].content.startswith("Your previous answer was empty.")


async def test_a_second_runner_adopts_the_message_stored_first(store: Any, backends: Any) -> None:
    conv = await new_conversation(store)
    first = await Journal.open(store, conv, backends)
    second = await Journal.open(store, conv, backends)
    mine = await first.record(kind=MessageKind.system, speaker="Game", role="game", content="A")
    theirs = await second.record(kind=MessageKind.system, speaker="Game", role="game", content="B")
    assert theirs.content == "A" and theirs.seq == mine.seq == 0 and second.next_seq == 1
    assert [m.content for m in await store.messages.list(conv.id)] == ["A"]


PROGRESS_ONLY = {"messages_done", "calls_done", "tokens", "fallbacks"}


class SlowProgress:
    """The real conversation repository, except that writes of the progress counters alone wait
    for ``release`` (or fail): a database slow or failing on one write, on demand, which a real
    server cannot be made to be."""

    def __init__(self, repo: Any, *, fail: bool = False) -> None:
        self._repo = repo
        self.fail = fail
        self.release = asyncio.Event()
        self.progress_writes = 0
        self.landed: list[str] = []  # "progress" or "totals", in the order they were written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)

    async def set_fields(self, conversation_id: str, **fields: Any) -> None:
        if set(fields) <= PROGRESS_ONLY:
            self.progress_writes += 1
            if self.fail:
                raise DatabaseUnavailableError("the progress write failed")
            await self.release.wait()
        await self._repo.set_fields(conversation_id, **fields)
        if set(fields) <= PROGRESS_ONLY or "finished_at" in fields:
            self.landed.append("progress" if set(fields) <= PROGRESS_ONLY else "totals")

    async def end(self, conversation_id: str, runner: str | None, **fields: Any) -> bool:
        released = await self._repo.end(conversation_id, runner, **fields)
        self.landed.append("totals")
        return bool(released)


class StoreWith:
    def __init__(self, store: Any, conversations: Any) -> None:
        self._store = store
        self.conversations = conversations

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_progress_counters_are_written_in_the_background(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    """A model call never waits for the progress write (it is not data: resume recounts it),
    one write is in flight at most, and the final totals are written after it."""
    policy = recording_policy()
    conv = await new_conversation(store)
    slow = SlowProgress(store.conversations)
    j = await Journal.open(StoreWith(store, slow), conv, backends)
    j.progress_interval_s = 0
    for turn in (1, 2, 3):
        request = ask(policy, turn=turn)
        chat = j.chat(request, speaker="Fisher 1", role="Fisher", day=1, turn=turn)
        await asyncio.wait_for(chat, DEADLINE_S)  # wait deadline
    assert [m.seq for m in await store.messages.list(conv.id)] == [0, 1, 2]
    assert slow.progress_writes == 1
    assert (await store.conversations.get(conv.id)).messages_done == 0
    slow.landed.clear()  # (opening the journal wrote the status)
    finishing = asyncio.create_task(j.finish(Status.done))
    # finish() takes the write in flight over and waits for it (or, wrongly, writes the totals)
    await wait_until(
        lambda: j._progress_write is None or slow.landed, what="finish() to reach the write"
    )
    slow.release.set()
    done = await asyncio.wait_for(finishing, DEADLINE_S)  # wait deadline
    assert slow.landed == ["progress", "totals"]  # the totals land last
    stored = await store.conversations.get(conv.id)
    assert (done.messages_done, stored.messages_done, stored.status) == (3, 3, Status.done)


async def test_a_failed_progress_write_does_not_stop_the_run(
    store: Any, backends: Any, recording_policy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    policy = recording_policy()
    conv = await new_conversation(store)
    failing = SlowProgress(store.conversations, fail=True)
    j = await Journal.open(StoreWith(store, failing), conv, backends)
    j.progress_interval_s = 0
    with caplog.at_level(logging.WARNING, logger="simulator.engine.journal"):
        for turn in (1, 2):
            await j.chat(
                ask(policy, turn=turn), speaker="Fisher 1", role="Fisher", day=1, turn=turn
            )
        done = await j.finish(Status.done)
    assert failing.progress_writes == 2
    assert "progress counters not written" in caplog.text
    stored = await store.conversations.get(conv.id)
    assert (done.status, stored.status, stored.messages_done) == (Status.done, Status.done, 2)
