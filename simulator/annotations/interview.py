"""Interviews: ask an agent of a finished conversation a question, in character, after the run.

The agent receives exactly the context it would have had, plus the question, and nothing is
written to the conversation: the answer is an annotation (annotator ``interview``, the question in
its key, the agent as its target).

Which context: a kind may declare one (``Kind.interview``; dialogues do: the agent's context at
the end of the run, or of a given day, built by the very function that built its turns).
Otherwise, for the games, the conversation is replayed read-only through its kind's runner and
journal (every answer comes from the stored messages; no model is called, nothing is written),
and the agent's last decision request (by the given round or step) is taken as it was sent,
followed by the agent's answer to it and the question.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from simulator.annotations.base import (
    AnnotationError,
    Item,
    Prices,
    Usage,
    cost_usd,
    entries_for,
    make_annotation,
    model_digest,
    prompt_of,
)
from simulator.domain import Agent, Conversation, Message, ModelRef
from simulator.domain.annotations import Annotation, AnnotatorEntry, Target
from simulator.domain.models import Decision
from simulator.llm.base import CallMeta, ChatMessage, ChatRequest

if TYPE_CHECKING:
    from simulator.db.store import Store

EMPTY_REASK = "Your answer was empty. Please answer the question."


@dataclass(frozen=True)
class InterviewContext:
    """What the agent reads before the question, and with which model it answered then."""

    messages: list[ChatMessage]  # the context, ending with the agent's own answer or others' text
    model: ModelRef
    day: int  # the day (round, step) whose end the context reflects


ContextFn = Callable[
    [Any, Conversation, Agent, list[Message], int | None], Awaitable[InterviewContext]
]


def with_question(context: list[ChatMessage], question: str) -> list[ChatMessage]:
    """The context followed by the question as the next user message; when the context already
    ends with text for the agent (a user message), the question follows it in that message, as
    the runs join consecutive user items (chat templates want alternating roles)."""
    if context and context[-1].role == "user":
        last = context[-1]
        return [*context[:-1], ChatMessage("user", f"{last.content}\n\n{question}")]
    return [*context, ChatMessage("user", question)]


async def interview_context(
    store: Any,
    conversation: Conversation,
    agent: Agent,
    messages: list[Message],
    day: int | None = None,
) -> InterviewContext:
    """The agent's context (see the module docstring); AnnotationError when there is none."""
    fn = _kind_context(conversation.kind.value)
    return await (fn or replay_context)(store, conversation, agent, messages, day)


def _kind_context(kind: str) -> ContextFn | None:
    from simulator.scenarios.registry import KINDS

    return KINDS.get(kind).interview if kind in KINDS else None


# --------------------------------------------------------------------------- read-only replay


class _ReplayEnd(Exception):
    """The replay reached what was never stored: stop there."""


class _Messages:
    def __init__(self, messages: list[Message]) -> None:
        self._messages = messages

    async def list(self, conversation_id: str) -> builtins.list[Message]:
        return list(self._messages)

    async def list_many(self, conversation_ids: builtins.list[str]) -> builtins.list[Message]:
        return list(self._messages)

    async def append(self, message: Message) -> bool:
        raise _ReplayEnd


class _Conversations:
    def __init__(self, real: Any) -> None:
        self._real = real

    async def get(self, conversation_id: str) -> Any:
        return await self._real.get(conversation_id)

    async def list(self, flt: Any = None) -> Any:
        return await self._real.list(flt)

    async def set_fields(self, conversation_id: str, **fields: Any) -> None:
        return None

    async def start(self, conversation_id: str, **fields: Any) -> bool:
        return False  # read-only: the stored messages are replayed, whatever the status

    async def create(self, conversation: Any) -> Any:
        raise _ReplayEnd


class _States:
    """No snapshots: the runner starts from the beginning and replays every stored answer."""

    async def latest(self, conversation_id: str) -> None:
        return None

    async def list(self, conversation_id: str) -> list[Any]:
        return []

    async def put(self, conversation_id: str, step: int, state: dict[str, Any]) -> None:
        return None


class _ReadOnlyStore:
    def __init__(self, store: Any, messages: list[Message]) -> None:
        self.experiments = store.experiments
        self.batches = store.batches
        self.conversations = _Conversations(store.conversations)
        self.messages = _Messages(messages)
        self.states = _States()


class _NoModels:
    """Every answer is stored: a call means the replay went past the end."""

    on_event = None

    async def chat(self, request: Any) -> Any:
        raise _ReplayEnd

    async def ensure_available(self, refs: Any, on_event: Any = None) -> None:
        return None


async def replay_context(
    store: Any,
    conversation: Conversation,
    agent: Agent,
    messages: list[Message],
    day: int | None = None,
) -> InterviewContext:
    """The agent's last decision request (by ``day``), as sent, and its answer: rebuilt by
    replaying the conversation read-only through its kind's runner."""
    from simulator.engine.journal import Journal, ResumeError
    from simulator.scenarios.registry import KINDS

    captured: list[tuple[ChatRequest, Message]] = []

    class Capturing(Journal):
        async def action(self, request: ChatRequest, schema: Any, default: Any, **kw: Any) -> Any:
            answer, message = await super().action(request, schema, default, **kw)
            if kw.get("speaker") == agent.name:
                captured.append((request, message))
            return answer, message

        async def chat(self, request: ChatRequest, **kw: Any) -> Message:
            message = await super().chat(request, **kw)
            if kw.get("speaker") == agent.name:
                captured.append((request, message))
            return message

    experiment = await store.experiments.get(conversation.experiment_id)
    if experiment is None:
        raise AnnotationError(
            f"The experiment of conversation {conversation.id} no longer exists: the context of "
            f"{agent.name} cannot be rebuilt."
        )
    # Only what a replay reads: any write ends it (_ReplayEnd), so it is a Store for the journal.
    readonly = cast("Store", _ReadOnlyStore(store, messages))
    journal = Capturing(readonly, conversation, _NoModels(), None, list(messages))
    runner = KINDS.prepare(conversation.kind.value).run
    try:
        await runner(readonly, _NoModels(), conversation, experiment, journal, None)
    except _ReplayEnd:
        pass
    except ResumeError as exc:
        raise AnnotationError(
            f"The context of {agent.name} in conversation {conversation.id} cannot be rebuilt: "
            f"{exc}"
        ) from None
    chosen = [(r, m) for r, m in captured if day is None or m.day <= day]
    if not chosen:
        when = f" by round/step {day}" if day is not None else ""
        raise AnnotationError(
            f"{agent.name} made no decision{when} in conversation {conversation.id}: there is "
            "no context to interview it in."
        )
    request, answer = chosen[-1]
    context = [*request.messages, ChatMessage("assistant", answer.content)]
    return InterviewContext(context, request.model, answer.day)


# --------------------------------------------------------------------------- the annotator


def interview_version(day: int | None, model: ModelRef | None) -> str:
    version = "end" if day is None else f"day{day}"
    return version if model is None else f"{version}-{model_digest(model)}"


class InterviewAnnotator:
    """Interviews behind the ``Annotator`` protocol: one item per (conversation, agent)."""

    kind = "interview"
    name = "interview"
    batch_size = 1
    concurrency: int | None = None

    def __init__(
        self,
        store: Any,
        backends: Any,
        question: str,
        *,
        agents: list[str] | None = None,
        day: int | None = None,
        model: ModelRef | None = None,
        prices: Prices | None = None,
    ) -> None:
        question = question.strip()
        if not question:
            raise AnnotationError("An interview needs a question (--question TEXT).")
        if day is not None and day < 1:
            raise AnnotationError(f"--day must be 1 or more, not {day}.")
        self.store = store
        self.backends = backends
        self.question = question
        self.agents = [a.strip() for a in agents] if agents else None
        self.day = day
        self.model = model
        self.prices = prices
        self.version = interview_version(day, model)

    def entries(self, experiment_id: str) -> list[AnnotatorEntry]:
        return entries_for(self, experiment_id, [(self.question, Target.agent, self.question)])

    def models(self) -> list[ModelRef]:
        return [self.model] if self.model is not None else []

    def chooses(self, agent: Agent) -> bool:
        return self.agents is None or agent.name.casefold() in {a.casefold() for a in self.agents}

    async def items(self, conversation: Conversation, messages: list[Message]) -> list[Item]:
        return [
            Item(conversation, agent=a.name, questions=(self.question,), payload=messages)
            for a in conversation.agents
            if self.chooses(a)
        ]

    async def request(self, item: Item) -> tuple[ChatRequest, InterviewContext]:
        """What the agent is sent (no call is made)."""
        conv = item.conversation
        agent = next(a for a in conv.agents if a.name == item.agent)
        context = await interview_context(self.store, conv, agent, item.payload, self.day)
        model = self.model or context.model
        request = ChatRequest(
            model=model,
            messages=with_question(context.messages, self.question),
            meta=CallMeta(
                agent=agent.name,
                role=agent.role,
                day=context.day,
                turn=0,
                seed=conv.seed,
                purpose="other",
            ),
        )
        return request, context

    async def annotate(self, items: list[Item]) -> list[list[Annotation]]:
        out = []
        for item in items:
            out.append([await self._interview(item)])
        return out

    async def _interview(self, item: Item) -> Annotation:
        request, context = await self.request(item)
        used = Usage()
        result = await self.backends.chat(request)
        used.add(result)
        first = result.text
        current = request
        if not result.text.strip():
            current = ChatRequest(
                model=request.model,
                messages=[
                    *request.messages,
                    ChatMessage("assistant", result.text),
                    ChatMessage("user", EMPTY_REASK),
                ],
                meta=request.meta,
            )
            result = await self.backends.chat(current)
            used.add(result)
        reasked = current is not request
        text = result.text.strip()
        if text:
            decision = Decision.reasked if reasked else Decision.answer
            cause = "re-asked once: the first answer was empty" if reasked else None
        else:
            decision, cause = Decision.fallback, "no answer after one re-ask: the answer was empty"
        data: dict[str, Any] = {"day": context.day}
        if reasked:
            data["first_raw"] = first
        return make_annotation(
            self,
            item,
            question=self.question,
            value=text or None,
            data=data,
            decision=decision,
            decision_cause=cause,
            model=request.model,
            sent_params=dict(result.sent_params),
            dropped_params=list(result.dropped_params),
            prompt=prompt_of(current.messages),
            raw=result.text,
            usage=used.usage,
            cost_usd=cost_usd(request.model, used.usage, self.prices),
            latency_ms=used.latency_ms,
            attempts=max(1, used.attempts),
            call_id=f"{self.name}@{self.version}:{item.key}:{self.question[:40]}",
        )


__all__ = [
    "InterviewAnnotator",
    "InterviewContext",
    "interview_context",
    "replay_context",
    "with_question",
]
