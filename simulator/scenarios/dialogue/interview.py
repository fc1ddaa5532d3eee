"""A dialogue agent's context for an interview after the run (``simulator interview``).

Built by ``agent_context``, the very function that builds the agent's turns, from what the agent
witnessed by the end of the chosen day (the last day by default): that day's messages with the
published memory (``summaries``: the day's kickoff carries the earlier days' summaries), every
day's messages up to it with ``full_history``. The day's own summary is not part of it: agents
read it only in the next day's kickoff.
"""

from __future__ import annotations

from typing import Any

from simulator.domain import Agent, Conversation, Memory, Message, MessageKind
from simulator.domain.errors import NotFoundError
from simulator.llm.base import ChatMessage
from simulator.scenarios.dialogue.context import CONTINUE, agent_context

_WITNESSED = (MessageKind.kickoff, MessageKind.utterance)


async def interview_context(
    store: Any,
    conversation: Conversation,
    agent: Agent,
    messages: list[Message],
    day: int | None = None,
) -> Any:
    from simulator.annotations.base import AnnotationError
    from simulator.annotations.interview import InterviewContext

    days = sorted({m.day for m in messages if m.kind in _WITNESSED})
    if not days:
        raise AnnotationError(
            f"Conversation {conversation.id} has no stored messages: there is nothing to "
            f"interview {agent.name} about."
        )
    if day is None:
        day = days[-1]
    elif day not in days:
        raise AnnotationError(
            f"Conversation {conversation.id} has no day {day} (its days: "
            f"{', '.join(str(d) for d in days)})."
        )
    experiment = await store.experiments.get(conversation.experiment_id)
    if experiment is None:
        raise NotFoundError(
            f"The experiment of conversation {conversation.id} no longer exists: its memory "
            "setting (what agents remember across days) is unknown."
        )
    if experiment.dialogue.memory is Memory.full_history:
        seen = [m for m in messages if m.day <= day]
    else:
        seen = [m for m in messages if m.day == day]
    context = agent_context(agent, seen)
    if context and context[-1] == ChatMessage("user", CONTINUE):
        # ``Continue.`` only keeps roles alternating before the agent's next turn; the
        # question takes its place.
        context = context[:-1]
    return InterviewContext(context, agent.model, day)


__all__ = ["interview_context"]
