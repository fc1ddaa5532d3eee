"""The LLM judge: a model answers a researcher's rubric about a conversation or each message.

The judge reads the transcript (kickoffs and agent turns by default, turns numbered 1..N so
answers can name a turn or a third), then the rubric's questions with the answer format of each,
and answers one JSON object (the JSON schema is sent too, for backends with structured output).
An answer that does not fit is re-asked once with the problems listed; what still does not fit is
stored as a fallback: no value, ``decision = fallback`` and the reason in ``decision_cause``.
A fallback is never an answer. Each question is its own annotation (one row per question in
exports), all carrying the call's provenance: model, parameters sent, prompt, raw answer,
tokens, cost, latency and attempts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from simulator.annotations.base import (
    Item,
    Prices,
    Usage,
    cost_usd,
    entries_for,
    make_annotation,
    model_digest,
    prompt_of,
)
from simulator.domain import Conversation, Message, MessageKind, ModelRef
from simulator.domain.annotations import Annotation, AnnotatorEntry, Target
from simulator.domain.models import Decision
from simulator.domain.rubric import Question, Rubric, fill
from simulator.llm.base import CallMeta, ChatMessage, ChatRequest, ChatResult

AGENT_TURN_KINDS = (MessageKind.utterance, MessageKind.action)
REASK = (
    "Your previous answer was not valid: {errors}. Answer again with only a JSON object that "
    "matches the required schema (keys: {keys}), with no other text."
)
RATIONALE = "rationale"


@dataclass(frozen=True)
class Transcript:
    """What the judge reads, and the agent turns numbered 1..N in it."""

    text: str
    turns: int
    seq_of_turn: dict[int, int]  # turn number -> message seq
    turn_of_seq: dict[int, int]


def render_transcript(
    messages: list[Message], show: tuple[str, ...], *, upto_seq: int | None = None
) -> Transcript:
    """The transcript as the judge reads it: agent turns numbered ``[k]``, the speaker's name and
    role, private messages marked with their recipients, day separators when there are days."""
    lines: list[str] = []
    seq_of_turn: dict[int, int] = {}
    turn_of_seq: dict[int, int] = {}
    days = {m.day for m in messages}
    last_day: int | None = None
    for m in messages:
        if upto_seq is not None and m.seq > upto_seq:
            break
        if m.kind.value not in show:
            continue
        if len(days) > 1 and m.day != last_day:
            lines.append(f"--- Day {m.day} ---")
        last_day = m.day
        text = m.content.strip()
        if m.kind in AGENT_TURN_KINDS:
            turn = len(seq_of_turn) + 1
            seq_of_turn[turn] = m.seq
            turn_of_seq[m.seq] = turn
            who = m.speaker if m.speaker.startswith(m.role) else f"{m.speaker} ({m.role})"
            if m.recipients is not None:
                who += f" to {', '.join(m.recipients) or 'nobody'} (private)"
            lines.append(f"[{turn}] {who}: {text}")
        elif m.kind is MessageKind.kickoff:
            lines.append(f"{m.speaker}: {text}")
        elif m.kind is MessageKind.summary:
            lines.append(f"(Summary of day {m.day}) {text}")
        else:
            lines.append(f"({m.speaker}) {text}")
    return Transcript("\n".join(lines), len(seq_of_turn), seq_of_turn, turn_of_seq)


def answer_schema(questions: list[Question], turns: int, rationale: bool) -> dict[str, Any]:
    props = {q.id: q.schema(turns) for q in questions}
    if rationale:
        props[RATIONALE] = {"type": "string", "description": "why, in one or two sentences"}
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


def interpret(
    questions: list[Question], answer: Mapping[str, Any], turns: int
) -> tuple[dict[str, Any], dict[str, str], set[str]]:
    """(values, errors, not applicable) of one JSON answer, question by question, in order."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    not_applicable: set[str] = set()
    for q in questions:
        broken = [dep for dep in q.when if dep in errors]
        if broken:
            errors[q.id] = f"{q.id} depends on {broken[0]}, which has no valid answer"
            continue
        if q.when and not q.applies(values):
            values[q.id] = None
            not_applicable.add(q.id)
            continue
        if q.id not in answer:
            errors[q.id] = f"{q.id} is missing"
            continue
        try:
            values[q.id] = q.validate(answer[q.id], turns)
        except ValueError as exc:
            errors[q.id] = f"{q.id} {exc}"
    return values, errors, not_applicable


def _seed(conversation_id: str) -> int:
    return int.from_bytes(hashlib.sha256(conversation_id.encode()).digest()[:4], "big")


class JudgeAnnotator:
    """The LLM judge behind the ``Annotator`` protocol (see the module docstring)."""

    kind = "judge"
    batch_size = 1
    concurrency: int | None = None

    def __init__(
        self,
        rubric: Rubric,
        model: ModelRef,
        backends: Any,
        *,
        prices: Prices | None = None,
        experiment_names: Mapping[str, str] | None = None,
        kinds: tuple[str, ...] | None = None,
    ) -> None:
        self.rubric = rubric
        self.model = model
        self.backends = backends
        self.prices = prices
        self.experiment_names = dict(experiment_names or {})
        self.kinds = tuple(kinds) if kinds else rubric.kinds
        self.name = f"judge:{rubric.name}"
        self.version = f"{rubric.version}-{rubric.digest[:4]}{model_digest(model)[:4]}"

    # ------------------------------------------------------------------ the protocol

    def entries(self, experiment_id: str) -> list[AnnotatorEntry]:
        target = {"conversation": Target.conversation, "message": Target.message}
        return entries_for(
            self,
            experiment_id,
            [(q.id, target[q.scope], q.ask) for q in self.rubric.questions],
        )

    def models(self) -> list[ModelRef]:
        return [self.model]

    async def items(self, conversation: Conversation, messages: list[Message]) -> list[Item]:
        out: list[Item] = []
        whole = self.rubric.scoped("conversation")
        if whole:
            out.append(Item(conversation, questions=tuple(q.id for q in whole), payload=messages))
        per_message = self.rubric.scoped("message")
        if per_message:
            roles = {r.casefold() for r in self.rubric.roles}
            for m in messages:
                if m.kind.value not in self.kinds:
                    continue
                if roles and m.role.casefold() not in roles:
                    continue
                out.append(
                    Item(
                        conversation,
                        seq=m.seq,
                        questions=tuple(q.id for q in per_message),
                        payload=messages,
                    )
                )
        return out

    async def annotate(self, items: list[Item]) -> list[list[Annotation]]:
        return [await self._judge(item) for item in items]

    # ------------------------------------------------------------------ one item

    def request(self, item: Item) -> tuple[ChatRequest, list[Question], Transcript]:
        """The request for ``item`` (pure: what would be sent)."""
        messages: list[Message] = item.payload
        conv = item.conversation
        if item.seq is None:
            questions = self.rubric.scoped("conversation")
            transcript = render_transcript(messages, self.rubric.show)
        else:
            questions = self.rubric.scoped("message")
            shown = tuple(dict.fromkeys([*self.rubric.show, *self.kinds]))
            transcript = render_transcript(messages, shown, upto_seq=item.seq)
        values = self._values(conv, transcript.turns)
        parts = [_participants(conv)]
        if item.seq is None:
            parts.append(f"Transcript ({transcript.turns} turns, numbered):\n{transcript.text}")
        else:
            target = next(m for m in messages if m.seq == item.seq)
            turn = transcript.turn_of_seq.get(item.seq)
            label = f"turn [{turn}]" if turn is not None else "the last message above"
            parts.append(f"Transcript up to the message to judge:\n{transcript.text}")
            parts.append(f"The message to judge is {label}, by {target.speaker} ({target.role}).")
        listed = "\n".join(
            f"- {q.id}: {fill(q.ask, values)} ({q.how_to_answer(transcript.turns)})"
            for q in questions
        )
        parts.append(f"Questions:\n{listed}")
        keys = [q.id for q in questions] + ([RATIONALE] if self.rubric.rationale else [])
        extra = " (rationale: why, in one or two sentences)" if self.rubric.rationale else ""
        parts.append(
            f"Answer with one JSON object with exactly these keys: {', '.join(keys)}{extra}."
        )
        request = ChatRequest(
            model=self.model,
            messages=[
                ChatMessage("system", fill(self.rubric.instructions, values)),
                ChatMessage("user", "\n\n".join(parts)),
            ],
            meta=CallMeta(
                agent="judge",
                role="judge",
                day=0,
                turn=item.seq or 0,
                seed=_seed(conv.id),
                purpose="other",
            ),
            json_schema=answer_schema(questions, transcript.turns, self.rubric.rationale),
        )
        return request, questions, transcript

    def _values(self, conv: Conversation, turns: int) -> dict[str, str]:
        values = dict(conv.cell.factors)
        values["agents"] = ", ".join(f"{a.name} ({a.role})" for a in conv.agents)
        values["roles"] = ", ".join(dict.fromkeys(a.role for a in conv.agents))
        values["experiment"] = self.experiment_names.get(conv.experiment_id, "the experiment")
        values["turns"] = str(turns)
        return values

    async def _judge(self, item: Item) -> list[Annotation]:
        from simulator.engine.journal import parse_json_object

        request, questions, transcript = self.request(item)
        keys = ", ".join(q.id for q in questions)
        used = Usage()
        results: list[ChatResult] = []
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        not_applicable: set[str] = set()
        rationale: str | None = None
        first_problem = ""
        current = request
        for attempt in range(2):
            result = await self.backends.chat(current)
            results.append(result)
            used.add(result)
            try:
                answer = parse_json_object(result.text)
            except ValueError as exc:
                errors = {q.id: f"{exc}" for q in questions}
                values, not_applicable, rationale = {}, set(), None
            else:
                values, errors, not_applicable = interpret(questions, answer, transcript.turns)
                text = answer.get(RATIONALE)
                rationale = text.strip() if isinstance(text, str) and text.strip() else None
            if not errors or attempt == 1:
                break
            problem = "; ".join(dict.fromkeys(errors.values()))
            first_problem = problem
            current = replace(
                request,
                messages=[
                    *request.messages,
                    ChatMessage("assistant", result.text),
                    ChatMessage("user", REASK.format(errors=problem, keys=keys)),
                ],
            )
        reasked = len(results) > 1
        last = results[-1]
        common: dict[str, Any] = {
            "model": self.model,
            "sent_params": dict(last.sent_params),
            "dropped_params": list(last.dropped_params),
            "prompt": prompt_of(current.messages),
            "raw": last.text,
            "usage": used.usage,
            "cost_usd": cost_usd(self.model, used.usage, self.prices),
            "latency_ms": used.latency_ms,
            "attempts": max(1, used.attempts),
            "call_id": f"{self.name}@{self.version}:{item.key}",
        }
        out: list[Annotation] = []
        for q in questions:
            data: dict[str, Any] = {}
            if reasked:
                data["first_raw"] = results[0].text
            if rationale is not None:
                data[RATIONALE] = rationale
            cause: str | None
            if q.id in errors:
                decision, value = Decision.fallback, None
                cause = f"no valid answer after one re-ask: {errors[q.id]}"
            else:
                decision = Decision.reasked if reasked else Decision.answer
                cause = f"re-asked once: {first_problem}" if reasked else None
                value = values.get(q.id)
                if q.id in not_applicable:
                    data["applicable"] = False
                elif q.answer == "turn" and isinstance(value, int):
                    data["seq"] = transcript.seq_of_turn.get(value)
                elif q.answer == "third":
                    data["turns"] = transcript.turns
            out.append(
                make_annotation(
                    self,
                    item,
                    question=q.id,
                    value=value,
                    data=data or None,
                    decision=decision,
                    decision_cause=cause,
                    **common,
                )
            )
        return out


def _participants(conv: Conversation) -> str:
    agents = ", ".join(f"{a.name} ({a.role})" for a in conv.agents) or "none recorded"
    return f"Participants: {agents}."


__all__ = ["JudgeAnnotator", "Transcript", "answer_schema", "interpret", "render_transcript"]
