"""What each participant of a dialogue reads: pure functions of the stored messages.

An agent's request is its system prompt for the day (``Agent.system_prompt_for(day)``), then the
messages of the day (or of every day so far, with full-history memory) in order: the kickoff and
the other agents' turns as ``user`` messages, each turn labelled ``Name: text`` so that two guards
can be told apart, and its own turns as ``assistant`` messages. Consecutive ``user`` items are
joined into one message (blank line between them) because several chat templates require
alternating roles; two own turns in a row get a short ``Continue.`` between them for the same
reason. Because an agent's requests are only ever built from a growing list of stored messages,
each request extends the previous one: the shared prefix stays byte-identical, which lets Ollama's
and OpenAI's prompt caches reuse it. With full-history memory, a new day's system prompt replaces
the previous day's at the head of the history (``AgentView.start_day``); when the two differ (a
``<DAY>`` in the agent's sections), the cached prefix ends there once per day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from simulator.domain import Agent, Message, MessageKind
from simulator.llm.base import ChatMessage

RESEARCHER = "Researcher"
RESEARCHER_ROLE = "researcher"
SUMMARIZER = "Summarizer"
SUMMARIZER_ROLE = "summarizer"
CONTINUE = "Continue."

SUMMARY_INSTRUCTION = (
    "Above is the transcript of day {day} of the conversation, each turn labelled with its "
    "speaker's name. Write the summary of day {day} now, as your instructions describe. Refer to "
    "the participants by name. Answer with the summary only."
)


def compose_kickoff(starting_message: str, summaries: Sequence[str]) -> str:
    """The day's kickoff: the rendered starting message, then each earlier day's summary."""
    parts = [starting_message.strip()]
    for day, summary in enumerate(summaries, start=1):
        parts.append(f"Day {day} summary:\n{summary.strip()}")
    return "\n\n".join(p for p in parts if p)


def labelled(message: Message) -> str:
    return f"{message.speaker}: {message.content}"


class AgentView:
    """An agent's growing context, fed one witnessed message at a time (cheap per turn)."""

    def __init__(self, agent: Agent, day: int = 1) -> None:
        self.agent = agent
        self._out: list[ChatMessage] = [ChatMessage("system", agent.system_prompt_for(day))]
        self._pending: list[str] = []  # user-side text not yet closed by an own turn
        self._last_own = False

    def start_day(self, day: int) -> None:
        """Keep the history, with ``day``'s system prompt in place of the previous one (full
        history memory: the system message always says what is true on the day of the request)."""
        self._out[0] = ChatMessage("system", self.agent.system_prompt_for(day))

    def add(self, m: Message) -> None:
        """Witness ``m`` (kickoffs and agent turns count; other kinds are ignored)."""
        if m.kind is MessageKind.kickoff:
            self._pending.append(m.content)
        elif m.kind is MessageKind.utterance:
            if m.speaker == self.agent.name:
                if self._pending:
                    self._out.append(ChatMessage("user", "\n\n".join(self._pending)))
                    self._pending = []
                elif self._last_own:
                    self._out.append(ChatMessage("user", CONTINUE))
                self._out.append(ChatMessage("assistant", m.content))
                self._last_own = True
                return
            if m.recipients is not None and self.agent.name not in m.recipients:
                return
            self._pending.append(labelled(m))
        else:
            return
        self._last_own = False

    def messages(self) -> list[ChatMessage]:
        """The request for the agent's next turn."""
        out = list(self._out)
        if self._pending:
            out.append(ChatMessage("user", "\n\n".join(self._pending)))
        elif self._last_own:
            out.append(ChatMessage("user", CONTINUE))
        return out


def agent_context(agent: Agent, messages: Iterable[Message], day: int = 1) -> list[ChatMessage]:
    """The chat messages ``agent`` receives before its next turn on ``day``, given the messages
    it has witnessed (kickoffs and agent turns, in seq order; others are ignored)."""
    view = AgentView(agent, day)
    for m in messages:
        view.add(m)
    return view.messages()


def transcript(messages: Iterable[Message]) -> str:
    """The agents' turns as ``Name: text`` lines, blank-line separated (summarizer, manager)."""
    return "\n\n".join(labelled(m) for m in messages if m.kind is MessageKind.utterance)


def summarizer_context(prompt: str, day: int, day_messages: Sequence[Message]) -> list[ChatMessage]:
    body = transcript(day_messages) or "(nobody spoke this day)"
    return [
        ChatMessage("system", prompt),
        ChatMessage(
            "user",
            f"Transcript of day {day}:\n\n{body}\n\n" + SUMMARY_INSTRUCTION.format(day=day),
        ),
    ]


__all__ = [
    "CONTINUE",
    "RESEARCHER",
    "RESEARCHER_ROLE",
    "SUMMARIZER",
    "SUMMARIZER_ROLE",
    "AgentView",
    "agent_context",
    "compose_kickoff",
    "summarizer_context",
    "transcript",
]
