"""Rubrics: the shipped persuasion rubric loads; every answer type validates what it should and
refuses the rest with a readable reason; a bad rubric file lists every problem with its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simulator.annotations.judge import answer_schema, interpret, render_transcript
from simulator.annotations.rubric import load_rubric
from simulator.domain import Message, MessageKind
from simulator.domain.rubric import (
    Question,
    RubricError,
    fill,
    parse_rubric,
    third_of,
    thirds,
)

REPO = Path(__file__).resolve().parents[1]


def rubric(*questions: dict[str, Any], **fields: Any) -> Any:
    return parse_rubric(
        {"name": "t", "instructions": "Judge.", "questions": list(questions), **fields}
    )


def test_the_shipped_persuasion_rubric_codes_goal_and_third() -> None:
    r = load_rubric(REPO / "simulator/examples/rubrics/persuasion.yaml")
    assert r.name == "persuasion" and r.version == "1"
    assert [(q.id, q.answer, q.scope) for q in r.questions] == [
        ("goal_achieved", "yes_no_not_tried", "conversation"),
        ("goal_third", "third", "conversation"),
    ]
    assert r.questions[1].when == {"goal_achieved": ("yes",)}
    assert r.placeholders() == {"goal"}
    r.check_placeholders(["goal", "persona"], "Prison study")
    with pytest.raises(RubricError, match=r"\{goal\} is neither a study factor"):
        r.check_placeholders(["persona"], "Prison study")


@pytest.mark.parametrize(
    ("question", "good", "bad"),
    [
        ({"answer": "yes_no"}, [("Yes", "yes"), (False, "no")], ["maybe", 1]),
        ({"answer": "yes_no_not_tried"}, [("not tried", "not_tried")], ["perhaps"]),
        ({"answer": "third"}, [(2, 2), ("3", 3)], [0, 4, 1.5, "two"]),
        ({"answer": "turn"}, [(6, 6), (1, 1)], [7, 0]),
        ({"answer": "likert", "scale": 7}, [(7, 7)], [8, "x"]),
        ({"answer": "category", "choices": ["Calm", "Angry"]}, [("angry", "Angry")], ["sad"]),
        (
            {"answer": "number", "min": 0, "max": 1},
            [(0.25, 0.25), ("1", 1)],
            [1.5, -1, "x", True],
        ),
        ({"answer": "number", "integer": True}, [(3.0, 3)], [2.5]),
        ({"answer": "text", "max_length": 5}, [(" hi ", "hi")], ["", "toolong", 3]),
    ],
)
def test_each_answer_type_validates_and_explains(
    question: dict[str, Any], good: list[tuple[Any, Any]], bad: list[Any]
) -> None:
    q = rubric({"id": "q", "ask": "Q?", **question}).questions[0]
    for given, expected in good:
        assert q.validate(given, turns=6) == expected
    for given in bad:
        with pytest.raises(ValueError, match=r"must|missing"):
            q.validate(given, turns=6)
    assert q.schema(6)["description"] == "Q?"


def test_thirds_split_the_numbered_turns() -> None:
    assert thirds(20) == [(1, 7), (8, 14), (15, 20)]
    assert thirds(6) == [(1, 2), (3, 4), (5, 6)]
    assert [third_of(t, 20) for t in (1, 7, 8, 14, 15, 20)] == [1, 1, 2, 2, 3, 3]
    q = Question(id="t", ask="When?", answer="third")
    assert "1 = turns 1-7; 2 = turns 8-14; 3 = turns 15-20" in q.how_to_answer(20)


def test_conditions_make_a_question_not_applicable_and_propagate_failures() -> None:
    r = rubric(
        {"id": "achieved", "ask": "A?", "answer": "yes_no"},
        {"id": "when", "ask": "W?", "answer": "third", "when": {"achieved": True}},
    )
    questions = list(r.questions)
    values, errors, na = interpret(questions, {"achieved": "no", "when": 2}, 9)
    assert values == {"achieved": "no", "when": None} and not errors and na == {"when"}
    values, errors, na = interpret(questions, {"achieved": "yes", "when": 3}, 9)
    assert values == {"achieved": "yes", "when": 3} and not errors and not na
    _, errors, _ = interpret(questions, {"achieved": "yes", "when": None}, 9)
    assert errors == {"when": "when is missing (null)"}
    _, errors, _ = interpret(questions, {"achieved": "sure"}, 9)
    assert set(errors) == {"achieved", "when"}
    assert "depends on achieved" in errors["when"]
    schema = answer_schema(questions, 9, rationale=True)
    assert schema["required"] == ["achieved", "when", "rationale"]
    assert {"type": "null"} in schema["properties"]["when"]["anyOf"]


def test_a_bad_rubric_lists_every_problem_with_its_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "rubric:\n"
        "  name: 'bad name!'\n"
        "  questions:\n"
        "    - {id: Goal, ask: '', answer: maybe}\n"
        "    - {id: ok, ask: 'Q?', answer: likert, scale: 20}\n"
        "    - {id: later, ask: 'Q?', answer: third, when: {nothere: yes}}\n"
        "  colour: blue\n",
        encoding="utf-8",
    )
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    text = str(info.value)
    for fragment in (
        str(path),
        "colour: unknown field",
        "name: required",
        "instructions: required",
        "questions.0.id",
        "questions.0.ask: required",
        "questions.0.answer: must be one of",
        "questions.1.scale",
        "questions.2.when.nothere: not an earlier question",
    ):
        assert fragment in text, fragment
    with pytest.raises(RubricError, match="no such rubric file"):
        load_rubric(tmp_path / "missing.yaml")


def test_fill_replaces_factors_case_insensitively_and_keeps_unknown_braces() -> None:
    assert fill("Goal: {Goal}; {other}", {"goal": "Escape"}) == "Goal: Escape; {other}"


def test_the_judge_reads_numbered_turns_with_private_recipients_and_days() -> None:
    def msg(seq: int, **kw: Any) -> Message:
        return Message(conversation_id="c", seq=seq, **kw)

    messages = [
        msg(0, day=1, speaker="Researcher", role="researcher", kind=MessageKind.kickoff,
            content="Start."),
        msg(1, day=1, speaker="Guard 1", role="Guard", content="Stop."),
        msg(2, day=1, speaker="Prisoner 1", role="Prisoner", content="Psst.",
            recipients=["Prisoner 2"]),
        msg(3, day=1, speaker="Summarizer", role="summarizer", kind=MessageKind.summary,
            content="A day."),
        msg(4, day=2, speaker="Guard 1", role="Guard", content="Again."),
    ]  # fmt: skip
    t = render_transcript(messages, ("kickoff", "utterance"))
    assert t.text.splitlines() == [
        "--- Day 1 ---",
        "Researcher: Start.",
        "[1] Guard 1: Stop.",
        "[2] Prisoner 1 to Prisoner 2 (private): Psst.",
        "--- Day 2 ---",
        "[3] Guard 1: Again.",
    ]
    assert t.turns == 3 and t.seq_of_turn == {1: 1, 2: 2, 3: 4}
    upto = render_transcript(messages, ("kickoff", "utterance"), upto_seq=2)
    assert upto.turns == 2
