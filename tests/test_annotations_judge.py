"""The LLM judge: answers stored per question with their provenance; a re-ask when the first
answer does not fit; a fallback (no value, never an answer) when the second does not either;
per-message questions; the JSON schema and exact parameters at a local OpenAI-compatible server;
cost from the price table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simulator.annotations.base import item_ids
from simulator.annotations.judge import JudgeAnnotator
from simulator.annotations.rubric import load_rubric
from simulator.annotations.runner import AnnotationRunner
from simulator.annotations.service import AnnotationService, AnnotatorSpec
from simulator.domain import ModelRef, Provider, SamplingParams
from simulator.domain.filters import ConversationFilter
from simulator.domain.models import Decision
from simulator.domain.rubric import parse_rubric
from simulator.llm.registry import Backends
from simulator.settings import Settings
from tests.plugins.annotations import RUBRIC, DialogueStudy
from tests.servers import FakeModerationServer, Fault

REPO = Path(__file__).resolve().parents[1]


def dryrun(policy: str) -> ModelRef:
    return ModelRef(provider=Provider.dryrun, model=policy)


async def judge(
    store: Any, study: DialogueStudy, model: ModelRef, backends: Any, **kw: Any
) -> tuple[JudgeAnnotator, Any]:
    annotator = JudgeAnnotator(load_rubric(REPO / RUBRIC), model, backends, **kw)
    report = await AnnotationRunner(store, backends).run(annotator, study.conversations)
    return annotator, report


async def stored(store: Any, annotator: Any, study: DialogueStudy) -> list[Any]:
    plan = await AnnotationRunner(store).plan(annotator, study.conversations)
    ids = [i for it in plan.items for i in item_ids(annotator, it)]
    return await store.annotations.get_many(ids)


async def test_the_persuasion_rubric_on_dryrun_stores_one_answer_per_question(
    store: Any, dialogue_study: DialogueStudy, backends: Backends
) -> None:
    annotator, report = await judge(store, dialogue_study, dryrun("judge"), backends)
    assert report.complete and report.todo == 2 and report.written == 4
    assert report.decisions[Decision.answer] == 4
    answers = await stored(store, annotator, dialogue_study)
    assert {(a.question, a.decision) for a in answers} == {
        ("goal_achieved", Decision.answer),
        ("goal_third", Decision.answer),
    }
    for a in answers:
        assert a.annotator == "judge:persuasion" and a.kind == "judge" and a.seq is None
        assert a.model == dryrun("judge") and a.prompt and a.raw and a.usage.prompt_tokens > 0
        assert a.cost_usd == 0.0 and a.attempts == 1
        assert a.experiment_id == dialogue_study.experiment.id
        assert a.batch_id == dialogue_study.batch_id
    by_conv = {}
    for a in answers:
        by_conv.setdefault(a.conversation_id, {})[a.question] = a
    for conv in dialogue_study.conversations:
        achieved, third = by_conv[conv.id]["goal_achieved"], by_conv[conv.id]["goal_third"]
        assert achieved.value in ("yes", "no", "not_tried")
        assert third.call_id == achieved.call_id  # one call answered both questions
        if achieved.value == "yes":
            assert third.value in (1, 2, 3)
        else:  # not applicable: no value, an answer all the same
            assert third.value is None and third.data == {"applicable": False}
        # the judge read this conversation's goal and its numbered transcript
        user = achieved.prompt[1]["content"]
        assert f"({conv.cell.factors['goal']})" in user
        assert "Transcript (6 turns, numbered):" in user and "[6] " in user
    # the same run again: nothing is asked, nothing written
    again = await AnnotationRunner(store, backends).run(annotator, dialogue_study.conversations)
    assert again.todo == 0 and again.written == 0 and again.stored_before == 2


async def test_an_invalid_answer_is_reasked_once_then_stored_as_a_fallback(
    store: Any, dialogue_study: DialogueStudy, backends: Backends
) -> None:
    reasked, report = await judge(store, dialogue_study, dryrun("judge.reasked"), backends)
    assert report.decisions[Decision.reasked] == 4
    for a in await stored(store, reasked, dialogue_study):
        assert a.decision is Decision.reasked
        assert a.decision_cause and a.decision_cause.startswith("re-asked once:")
        assert a.data and "not answer in JSON" in a.data["first_raw"]
        assert [m["role"] for m in a.prompt] == ["system", "user", "assistant", "user"]
        assert a.value is not None or a.question == "goal_third"
    broken, report = await judge(store, dialogue_study, dryrun("judge.invalid"), backends)
    assert report.decisions == {
        Decision.answer: 0,
        Decision.reasked: 0,
        Decision.fallback: 4,
    }
    for a in await stored(store, broken, dialogue_study):
        assert a.decision is Decision.fallback and a.value is None  # never an answer
        assert a.decision_cause.startswith("no valid answer after one re-ask")
        assert "no JSON object" in a.decision_cause
    assert broken.version != reasked.version  # another model: another version, kept apart


async def test_message_questions_are_asked_about_each_chosen_message(
    store: Any, dialogue_study: DialogueStudy, backends: Backends
) -> None:
    rubric = parse_rubric(
        {
            "name": "tone",
            "instructions": "Rate the tone of one message.",
            "messages": {"roles": ["Prisoner"]},
            "questions": [
                {"id": "hostility", "ask": "How hostile?", "answer": "likert", "scale": 5,
                 "scope": "message"},
                {"id": "turn_back", "ask": "Which earlier turn does it answer?",
                 "answer": "turn", "scope": "message"},
            ],
        }
    )  # fmt: skip
    annotator = JudgeAnnotator(rubric, dryrun("judge"), backends)
    conv = dialogue_study.conversations[0]
    report = await AnnotationRunner(store, backends).run(annotator, [conv])
    messages = await store.messages.list(conv.id)
    prisoner = [m for m in messages if m.role == "Prisoner" and m.kind.value == "utterance"]
    assert report.todo == len(prisoner) == 3 and report.written == 6
    answers = await store.annotations.get_many(
        [i for m in prisoner for i in item_ids(annotator, _item(conv, m.seq, annotator))]
    )
    assert {a.seq for a in answers} == {m.seq for m in prisoner}
    for a in answers:
        user = a.prompt[1]["content"]
        assert "The message to judge is turn [" in user
        if a.question == "hostility":
            assert 1 <= a.value <= 5
        else:  # a turn of the transcript up to the message, with the seq it names
            assert a.data["seq"] in {m.seq for m in messages}


def _item(conv: Any, seq: int, annotator: Any) -> Any:
    from simulator.annotations.base import Item

    return Item(conv, seq=seq, questions=tuple(q.id for q in annotator.rubric.scoped("message")))


async def test_at_an_openai_compatible_server_the_schema_and_parameters_are_sent_and_stored(
    store: Any, dialogue_study: DialogueStudy, llm_settings: Settings
) -> None:
    with FakeModerationServer() as server:
        server.script("/v1/chat/completions", Fault(status=500))  # retried, then answered
        model = ModelRef(
            provider=Provider.openai,
            model="fake-judge",
            base_url=server.base_url,
            params=SamplingParams(temperature=0.0, top_p=None, max_tokens=200, seed=7),
        )
        backends = Backends(llm_settings, backoff_s=0.0, max_backoff_s=0.0)
        prices = {"openai:fake-judge": {"input_per_1k": 0.5, "output_per_1k": 2.0}}
        try:
            annotator, report = await judge(store, dialogue_study, model, backends, prices=prices)
        finally:
            await backends.aclose()
        bodies = server.chat_bodies()
    assert report.complete and report.written == 4
    assert len(bodies) == 3  # a 500, then one call per conversation
    body = bodies[-1]
    assert body["temperature"] == 0.0 and body["max_tokens"] == 200 and body["seed"] == 7
    assert "top_p" not in body
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["goal_achieved", "goal_third"]
    assert schema["properties"]["goal_achieved"]["enum"] == ["yes", "no", "not_tried"]
    answers = await stored(store, annotator, dialogue_study)
    sent_prompts = [b["messages"] for b in bodies[1:]]
    for a in answers:
        assert a.prompt in sent_prompts  # exactly what went on the wire
        assert a.sent_params["temperature"] == 0.0 and "response_format" in a.sent_params
        assert json.loads(a.raw)["goal_achieved"] in ("yes", "no", "not_tried")
        expected = a.usage.prompt_tokens / 1000 * 0.5 + a.usage.completion_tokens / 1000 * 2.0
        assert a.cost_usd == pytest.approx(expected)
    assert report.cost_usd == pytest.approx(sum({a.call_id: a.cost_usd for a in answers}.values()))


async def test_the_service_refuses_a_placeholder_the_experiment_lacks_before_storing(
    store: Any, dialogue_study: DialogueStudy, backends: Backends, tmp_path: Path
) -> None:
    from simulator.domain.rubric import RubricError

    path = tmp_path / "r.yaml"
    path.write_text(
        "rubric:\n  name: r\n  instructions: Judge {persona}.\n"
        "  questions: [{id: q, ask: 'Q?', answer: yes_no}]\n",
        encoding="utf-8",
    )
    service = AnnotationService(store, backends)
    with pytest.raises(RubricError, match=r"\{persona\} is neither a study factor"):
        await service.prepare(
            AnnotatorSpec("judge", rubric=path, model="dryrun:judge"), ConversationFilter()
        )
    assert await store.db["annotations"].count_documents({}) == 0
    assert await store.db["annotators"].count_documents({}) == 0
