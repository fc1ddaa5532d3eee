"""The rules of a dialogue conversation (the prison study): days, turns, summaries, stop phrases.

For each day: the kickoff (the starting message rendered for that day, followed by the summaries of
the earlier days) is recorded; every request of the day carries the system prompt stored for that
day (the agent's, or the summarizer's for the day it summarises); then the day's share of the
budget is spent on agent turns, each speaker picked by the conversation's speaker selection and
each answer cleaned of text written as someone else; then the summarizer summarises the day. An
agent saying one of the experiment's stop phrases ends the conversation after that day's summary.

Everything goes through the journal, so a resumed run walks through the stored messages (no model
is called for them) and continues with the first missing one.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from simulator.domain import Conversation, Experiment, Memory, Message, MessageKind
from simulator.engine.budget import day_budgets
from simulator.engine.cleaning import clean_output
from simulator.engine.events import DayEnded, EventBus
from simulator.engine.journal import Journal
from simulator.engine.speakers import SpeakerSelector
from simulator.llm.base import CallMeta, ChatRequest
from simulator.scenarios.dialogue.context import (
    RESEARCHER,
    RESEARCHER_ROLE,
    SUMMARIZER,
    SUMMARIZER_ROLE,
    AgentView,
    compose_kickoff,
    summarizer_context,
    transcript,
)


def said_stop_phrase(content: str, phrases: list[str]) -> str | None:
    text = content.casefold()
    for phrase in phrases:
        if phrase.strip() and phrase.strip().casefold() in text:
            return phrase
    return None


async def run_dialogue(
    store: Any,
    backends: Any,
    conversation: Conversation,
    experiment: Experiment,
    journal: Journal,
    bus: EventBus | None,
) -> None:
    from simulator.roles import render_starting_message

    cell = conversation.cell
    options = experiment.dialogue
    budgets = day_budgets(conversation.budget or cell.total_messages, cell.days)
    agents = {a.name: a for a in conversation.agents}
    names = [*agents, RESEARCHER, SUMMARIZER]
    roles = list(dict.fromkeys(a.role for a in conversation.agents))
    counts = {r: n for r, n in cell.counts.items() if n > 0}
    selector = SpeakerSelector(
        conversation,
        journal,
        first_role=options.first_role,
        choose_speaker=journal.choose_speaker,
        bus=bus,
    )
    summaries: list[str] = []
    views: dict[str, AgentView] = {}
    for day, budget in enumerate(budgets, start=1):
        if day == 1 or options.memory is not Memory.full_history:
            views = {name: AgentView(agent, day) for name, agent in agents.items()}
        else:
            for view in views.values():
                view.start_day(day)
        if day == 1:
            starting = conversation.kickoff
        else:
            starting = render_starting_message(
                experiment, counts, factors=dict(cell.factors), day=day, days=cell.days
            )
        kickoff = await journal.record(
            kind=MessageKind.kickoff,
            speaker=RESEARCHER,
            role=RESEARCHER_ROLE,
            content=compose_kickoff(starting, summaries),
            day=day,
            turn=0,
        )
        today: list[Message] = [kickoff]
        for view in views.values():
            view.add(kickoff)
        previous: str | None = None
        stopped_by: tuple[str, str] | None = None
        for turn in range(1, budget + 1):
            speaker = await selector.next(day, turn, previous, partial(transcript, today))
            agent = agents[speaker]
            request = ChatRequest(
                model=agent.model,
                messages=views[speaker].messages(),
                meta=CallMeta(
                    agent=agent.name,
                    role=agent.role,
                    day=day,
                    turn=turn,
                    seed=conversation.seed,
                    purpose="utterance",
                ),
            )
            message = await journal.chat(
                request,
                speaker=agent.name,
                role=agent.role,
                day=day,
                turn=turn,
                clean=partial(
                    clean_output, speaker=agent.name, names=names, roles=roles, role=agent.role
                ),
            )
            today.append(message)
            for view in views.values():
                view.add(message)
            previous = speaker
            phrase = said_stop_phrase(message.content, options.stop_phrases)
            if phrase is not None:
                stopped_by = (speaker, phrase)
                break
        summary = await journal.chat(
            ChatRequest(
                model=cell.models.summarizer_model,
                messages=summarizer_context(conversation.summarizer_prompt_for(day), day, today),
                meta=CallMeta(
                    agent=SUMMARIZER,
                    role=SUMMARIZER_ROLE,
                    day=day,
                    turn=len(today),
                    seed=conversation.seed,
                    purpose="summary",
                ),
            ),
            speaker=SUMMARIZER,
            role=SUMMARIZER_ROLE,
            day=day,
            turn=len(today),
            kind=MessageKind.summary,
        )
        summaries.append(summary.content)
        if bus is not None and summary.seq >= journal.stored_at_open:
            await bus.publish(DayEnded(conversation.id, conversation.batch_id, day))
        if stopped_by is not None:
            speaker, phrase = stopped_by
            await journal.record(
                kind=MessageKind.system,
                speaker=RESEARCHER,
                role=RESEARCHER_ROLE,
                content=f"The conversation ended on day {day}: {speaker} said {phrase!r}.",
                day=day,
                turn=len(today) + 1,
                data={"stop_phrase": phrase, "speaker": speaker},
            )
            return


__all__ = ["run_dialogue", "said_stop_phrase"]
