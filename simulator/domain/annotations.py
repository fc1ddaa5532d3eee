"""Annotations of transcripts: judges' answers, scorers' scores, interview answers.

An annotation is keyed by (conversation, what it is about, annotator, annotator version, question):
what it is about is one message (``seq``), the whole conversation, or one agent (interviews, the
commons deception judge). Its ``_id`` is computed from that key (``annotation_id``), so writing an
annotation twice is harmless and a re-run finds what is missing with one ``_id $in`` query.

Every annotator also has one catalogue entry per experiment (``AnnotatorEntry``): which questions
it answers about which targets. The ids of a conversation's annotations are computed from the
catalogue and the conversation's messages and agents, so reading them is an ``_id $in`` lookup
too (DESIGN.md "Storage": plain-field filters scan the whole collection on the embedded server).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from simulator.domain.models import Decision, Model, ModelRef, TokenUsage, utcnow


class Target(StrEnum):
    """What an annotation is about."""

    message = "message"
    conversation = "conversation"
    agent = "agent"


def key_digest(annotator: str, version: str, question: str | None, agent: str | None = None) -> str:
    """A short, stable digest of an annotation key's parts (20 hex characters)."""
    text = json.dumps([annotator, version, question, agent], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def annotation_id(
    conversation_id: str,
    *,
    seq: int | None,
    agent: str | None,
    annotator: str,
    version: str,
    question: str | None,
) -> str:
    """``<conversation>:<seq:06d>|conversation|agent:<digest>``: the same key, the same id."""
    if seq is not None:
        where = f"{seq:06d}"
    elif agent is not None:
        where = "agent"
    else:
        where = "conversation"
    return f"{conversation_id}:{where}:{key_digest(annotator, version, question, agent)}"


class Annotation(Model):
    """One answer (or one set of scores) about a message, a conversation or an agent.

    ``value`` is the answer as the annotator typed it ("yes", 2, free text, True ...); it is None
    for a fallback, which is never an answer (``decision`` says which). ``scores`` holds a
    scorer's numbers (every moderation category, a classifier's labels). Provenance: the model
    (provider, model, parameters), the parameters sent, the prompt as sent, the raw answer,
    tokens, cost, latency and attempts of the call. A call that answers several questions of a
    rubric is stored in each question's annotation, with the same ``call_id``: sum tokens and
    cost over distinct ``call_id``.
    """

    conversation_id: str
    seq: int | None = Field(default=None, ge=0)
    agent: str | None = None
    annotator: str
    annotator_version: str
    question: str | None = None
    kind: str = ""  # judge, moderation, python, interview, deception
    value: Any = None
    scores: dict[str, float] = Field(default_factory=dict)
    data: dict[str, Any] | None = None
    decision: Decision = Decision.answer
    decision_cause: str | None = None
    model: ModelRef | None = None
    sent_params: dict[str, Any] = Field(default_factory=dict)
    dropped_params: list[str] = Field(default_factory=list)
    prompt: list[dict[str, str]] | None = None
    raw: str | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost_usd: float | None = None
    latency_ms: float = 0.0
    attempts: int = 1
    call_id: str | None = None
    experiment_id: str | None = None
    batch_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def target(self) -> Target:
        if self.seq is not None:
            return Target.message
        return Target.agent if self.agent is not None else Target.conversation

    @property
    def id(self) -> str:
        return annotation_id(
            self.conversation_id,
            seq=self.seq,
            agent=self.agent,
            annotator=self.annotator,
            version=self.annotator_version,
            question=self.question,
        )


class AnnotatorEntry(Model):
    """The catalogue: an annotator answers ``question`` about ``target`` in an experiment."""

    experiment_id: str
    annotator: str
    annotator_version: str
    question: str | None = None
    target: Target = Target.message
    kind: str = ""
    label: str = ""  # a few words for people (the rubric's question text, the model)
    position: int = 0  # the question's place in its annotator's list (display order)
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def id(self) -> str:
        digest = key_digest(self.annotator, self.annotator_version, self.question, self.target)
        return f"{self.experiment_id}:{digest}"

    def annotation_id(
        self, conversation_id: str, seq: int | None = None, agent: str | None = None
    ) -> str:
        return annotation_id(
            conversation_id,
            seq=seq if self.target is Target.message else None,
            agent=agent if self.target is Target.agent else None,
            annotator=self.annotator,
            version=self.annotator_version,
            question=self.question,
        )


__all__ = ["Annotation", "AnnotatorEntry", "Target", "annotation_id", "key_digest"]


def digest(*parts: Any, length: int = 8) -> str:
    """A short stable digest of JSON-able parts (versions that change with their inputs)."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
