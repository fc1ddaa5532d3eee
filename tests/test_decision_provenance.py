"""Every stored answer says where it came from (``Message.decision``: answer, reasked, fallback,
with its cause), and model answers are read tolerantly (raw newlines in strings, code fences
anywhere, leading prose, trailing text); the raw answer is always kept."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, Field

from simulator.domain import Conversation, Decision
from simulator.engine.journal import Journal, decision_of, parse_json_object
from simulator.llm.base import CallMeta, ChatMessage, ChatRequest


class Move(BaseModel):
    move: str = Field(pattern="^(cooperate|defect)$")
    reason: str = ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a weak model's answer: a raw newline inside a string (json.loads refuses it)
        ('{"move": "defect", "reason": "first line\nsecond line"}', "first line\nsecond line"),
        ('{"move": "defect", "reason": "a\ttab"}', "a\ttab"),
        # a fence after leading prose, with trailing text
        ('Here you go:\n```json\n{"move": "defect", "reason": "x"}\n```\nThanks!', "x"),
        # prose with braces before the object, and text after it
        ('I weighed {risk} first. {"move": "defect", "reason": "y"} That is final.', "y"),
        # a trailing comma
        ('{"move": "defect", "reason": "z",}', "z"),
        # a comma and a brace inside a string are not touched
        ('{"move": "defect", "reason": "a, } b",}', "a, } b"),
    ],
)
def test_tolerant_parsing(text: str, expected: str) -> None:
    assert parse_json_object(text) == {"move": "defect", "reason": expected}


def test_parsing_still_rejects_what_holds_no_object() -> None:
    for text in ("no json here", "[1, 2]", '{"move": '):
        with pytest.raises(ValueError):
            parse_json_object(text)


async def _journal(store: Any, backends: Any) -> Journal:
    from tests.plugins.engine import build_cell

    conv = await store.conversations.create(
        Conversation(experiment_id="exp", cell=build_cell(2), seed=1)
    )
    return await Journal.open(store, conv, backends)


def _ask(policy: Any, turn: int) -> ChatRequest:
    return ChatRequest(
        model=policy.model,
        messages=[ChatMessage("user", "move?")],
        meta=CallMeta(agent="A", turn=turn, purpose="action"),
    )


async def test_each_answer_stores_its_provenance_and_cause(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    answers = {
        1: ['{"move": "defect", "reason": "line\nbreak"}'],  # valid (tolerantly) at once
        2: ["maybe", '{"move": "cooperate"}'],  # valid after one re-ask
        3: ["maybe", "perhaps", '{"move": "sideways"}'],  # never valid
    }
    seen: dict[int, int] = {}

    def answer(request: ChatRequest) -> str:
        turn = request.meta.turn
        seen[turn] = seen.get(turn, 0) + 1
        return answers[turn][seen[turn] - 1]

    policy = recording_policy(answer)
    journal = await _journal(store, backends)
    got = {}
    for turn in (1, 2, 3):
        value, msg = await journal.action(
            _ask(policy, turn),
            Move,
            {"move": "cooperate", "reason": "default"},
            speaker="A",
            role="Player",
            day=1,
            turn=turn,
        )
        got[turn] = (value, msg)
    (v1, m1), (v2, m2), (_, m3) = got[1], got[2], got[3]
    assert (m1.decision, m1.decision_cause) == (Decision.answer, None)
    assert v1.reason == "line\nbreak" and m1.raw == answers[1][0]  # the raw answer is kept
    assert m2.decision is Decision.reasked and "attempt 1" in (m2.decision_cause or "")
    assert v2.move == "cooperate" and m2.raw == answers[2][1]
    assert m3.decision is Decision.fallback and m3.raw == answers[3][2]
    assert m3.decision_cause is not None and m3.decision_cause.count("attempt") == 3
    assert m3.data == {"move": "cooperate", "reason": "default"}
    assert "fallback" in m3.flags  # the flag stays for older readers
    # stored and read back with the same provenance; replayed identically
    stored = await store.messages.list(journal.conversation.id)
    assert [decision_of(m) for m in stored] == [
        Decision.answer,
        Decision.reasked,
        Decision.fallback,
    ]
    assert stored[2].decision_cause == m3.decision_cause
    # the conversation's fallback counter follows the field
    assert journal.fallbacks == 1
    # an event is no decision
    event = await journal.record(kind="system", speaker="game", role="game", content="x")
    assert event.decision is None and decision_of(event) is None
    assert json.loads(m1.content) == {"move": "defect", "reason": "line\nbreak"}


async def test_an_answer_may_be_stored_as_the_text_it_says(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    policy = recording_policy(lambda r: '{"move": "defect", "reason": "I had to."}')
    journal = await _journal(store, backends)
    _, msg = await journal.action(
        _ask(policy, 1),
        Move,
        {"move": "cooperate"},
        speaker="A",
        role="Player",
        day=1,
        turn=1,
        recipients=[],
        content=lambda answer: answer.reason,
    )
    assert (msg.content, msg.recipients) == ("I had to.", [])
    assert msg.data == {"move": "defect", "reason": "I had to."}
