"""Who speaks next: round robin, seeded random, a manager model (auto), or the user (manual).

Every method is a pure function of the conversation's seed, the day, the turn and what is stored,
so a resumed run picks exactly the speakers the uninterrupted run picked:

- ``round_robin``: agents interleaved across roles (G1, P1, G2, P2, ..., then G3 if guards
  outnumber prisoners), starting with the configured first role; the order restarts each day, as
  each day opens with the kickoff.
- ``random``: drawn from ``stream(seed, "speaker", day, turn)``, never the previous speaker of the
  day when another agent exists.
- ``auto``: the manager model picks among the eligible agents (everyone but the previous
  speaker, when there is someone else). An unusable answer is re-asked once; then the round-robin
  choice is used. Each decision is stored as a ``system`` message by "Manager" (its raw answers,
  the choice, and the flag ``fallback`` when the round robin was used), so on resume the manager
  is not asked again.
- ``manual``: ``choose_speaker(conversation, candidates)`` is awaited (the TUI asks the user).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence

from simulator.domain import Agent, Conversation, Message, MessageKind, SpeakerSelection
from simulator.domain.errors import ConfigurationError
from simulator.engine.events import EventBus, SpeakerChoiceNeeded
from simulator.engine.journal import FALLBACK, REASKED, Journal
from simulator.engine.rng import stream
from simulator.llm.base import CallMeta, ChatMessage, ChatRequest

MANAGER = "Manager"
MANAGER_ROLE = "manager"

ChooseSpeaker = Callable[[Conversation, list[str]], Awaitable[str]]


# ---------------------------------------------------------------------- pure rules


def round_robin_order(agents: Sequence[Agent], first_role: str | None = None) -> list[str]:
    """Agent names interleaved across roles: G1, P1, G2, P2, ...; ``first_role`` speaks first."""
    roles: list[str] = []
    by_role: dict[str, list[str]] = {}
    for a in agents:
        if a.role not in by_role:
            roles.append(a.role)
            by_role[a.role] = []
        by_role[a.role].append(a.name)
    if first_role is not None:
        match = [r for r in roles if r.casefold() == first_role.casefold()]
        if match:
            i = roles.index(match[0])
            roles = roles[i:] + roles[:i]
    order: list[str] = []
    for i in range(max((len(v) for v in by_role.values()), default=0)):
        order += [by_role[r][i] for r in roles if i < len(by_role[r])]
    return order


def round_robin_pick(order: Sequence[str], turn: int, previous: str | None = None) -> str:
    """The round-robin speaker of ``turn`` (1-based within the day)."""
    name = order[(turn - 1) % len(order)]
    if name == previous and len(order) > 1:  # only possible when used as a fallback
        name = order[turn % len(order)]
    return name


def eligible(names: Sequence[str], previous: str | None) -> list[str]:
    """Everyone but the previous speaker, unless nobody else is there."""
    others = [n for n in names if n != previous]
    return others or list(names)


def random_pick(seed: int, day: int, turn: int, names: Sequence[str], previous: str | None) -> str:
    return stream(seed, "speaker", day, turn).choice(eligible(names, previous))


_WORD_EDGE = r"(?<![\w])"


def parse_choice(answer: str, candidates: Sequence[str]) -> str | None:
    """The candidate a manager named, or None when the answer names none or several.

    Accepts the bare name with quotes, punctuation or markdown around it, a label such as
    ``Next speaker: Guard 1``, or a sentence that names exactly one candidate.
    """
    text = answer.strip()
    bare = re.sub(r"^[\s\"'`*_\[(]+|[\s\"'`*_\].,;:!)]+$", "", text).casefold()
    for name in candidates:
        if bare == name.casefold():
            return name
    found: list[str] = []
    for name in sorted(candidates, key=len, reverse=True):
        pattern = _WORD_EDGE + re.escape(name).replace(r"\ ", r"[\s_]+") + r"(?![\w])"
        if re.search(pattern, text, re.IGNORECASE) and not any(
            name.casefold() in f.casefold() for f in found
        ):
            found.append(name)
    return found[0] if len(found) == 1 else None


# ---------------------------------------------------------------------- the selector


MANAGER_INSTRUCTION = (
    "Choose who speaks next. Eligible: {names}. Answer with exactly one of these names and "
    "nothing else."
)
MANAGER_REASK = "{answer!r} is not one of the eligible names. Answer with exactly one of: {names}."


class SpeakerSelector:
    """Picks the speaker of each agent turn of one conversation."""

    def __init__(
        self,
        conversation: Conversation,
        journal: Journal,
        *,
        first_role: str | None = None,
        choose_speaker: ChooseSpeaker | None = None,
        bus: EventBus | None = None,
    ) -> None:
        self.conversation = conversation
        self.journal = journal
        self.mode = conversation.cell.speaker_selection
        self.agents = list(conversation.agents)
        self.names = [a.name for a in self.agents]
        self.order = round_robin_order(self.agents, first_role)
        self.choose_speaker = choose_speaker
        self.bus = bus
        if self.mode is SpeakerSelection.manual and choose_speaker is None:
            raise ConfigurationError(
                "Manual speaker selection needs someone to choose: run this conversation from "
                "the app, or pick another speaker selection (round_robin, random, auto).",
                title="Manual selection unavailable",
            )

    async def next(
        self, day: int, turn: int, previous: str | None, transcript: str | Callable[[], str]
    ) -> str:
        """The speaker of ``turn`` (1-based within ``day``); ``transcript`` is the day so far,
        as the manager should read it (or a function returning it: only ``auto`` reads it, so
        the other methods never build it)."""
        if len(self.names) == 1:
            return self.names[0]
        if self.mode is SpeakerSelection.round_robin:
            return round_robin_pick(self.order, turn)
        if self.mode is SpeakerSelection.random:
            return random_pick(self.conversation.seed, day, turn, self.names, previous)
        if self.mode is SpeakerSelection.auto:
            text = transcript() if callable(transcript) else transcript
            return await self._auto(day, turn, previous, text)
        return await self._manual(day, turn)

    async def _manual(self, day: int, turn: int) -> str:
        stored = self.journal.peek()
        if stored is not None and stored.kind is MessageKind.utterance:
            return stored.speaker  # resumed: the choice was made and its turn stored
        assert self.choose_speaker is not None
        if self.bus is not None:
            await self.bus.publish(
                SpeakerChoiceNeeded(
                    self.conversation.id, self.conversation.batch_id, day, turn, tuple(self.names)
                )
            )
        for _ in range(3):
            choice = await self.choose_speaker(self.conversation, list(self.names))
            picked = parse_choice(str(choice), self.names)
            if picked is not None:
                return picked
        raise ConfigurationError(
            f"The speaker chosen for day {day}, turn {turn} ({choice!r}) is not an agent of "
            f"this conversation ({', '.join(self.names)}).",
            title="Unknown speaker",
        )

    async def _auto(self, day: int, turn: int, previous: str | None, transcript: str) -> str:
        candidates = eligible(self.names, previous)
        if len(candidates) == 1:
            return candidates[0]
        if self.journal.replaying:
            stored = await self.journal.record(
                kind=MessageKind.system, speaker=MANAGER, role=MANAGER_ROLE, content=""
            )
            return _stored_choice(stored, candidates)
        model = self.conversation.cell.models.manager_model
        names = ", ".join(candidates)
        messages = [
            ChatMessage("system", self.conversation.manager_prompt),
            ChatMessage(
                "user",
                (transcript.strip() + "\n\n" if transcript.strip() else "")
                + MANAGER_INSTRUCTION.format(names=names),
            ),
        ]
        meta = CallMeta(
            agent=MANAGER,
            role=MANAGER_ROLE,
            day=day,
            turn=turn,
            seed=self.conversation.seed,
            purpose="manager",
            candidates=tuple(candidates),
        )
        request = ChatRequest(model=model, messages=messages, meta=meta)
        results = []
        choice = None
        for _ in range(2):
            result = await self.journal.call(request)
            results.append(result)
            choice = parse_choice(result.text, candidates)
            if choice is not None:
                break
            request = ChatRequest(
                model=model,
                messages=[
                    *request.messages,
                    ChatMessage("assistant", result.text),
                    ChatMessage("user", MANAGER_REASK.format(answer=result.text, names=names)),
                ],
                meta=meta,
            )
        flags = [REASKED] if len(results) > 1 else []
        if choice is None:
            choice = round_robin_pick(self.order, turn, previous)
            flags.append(FALLBACK)
        await self.journal.record(
            kind=MessageKind.system,
            speaker=MANAGER,
            role=MANAGER_ROLE,
            content=(
                f"Next speaker: {choice}"
                + (
                    " (the manager's answer was unusable; round robin applied)"
                    if FALLBACK in flags
                    else ""
                )
            ),
            day=day,
            turn=turn,
            data={
                "choice": choice,
                "candidates": candidates,
                "answers": [r.text for r in results],
            },
            raw=results[-1].text,
            flags=flags,
            model=model,
            results=results,
        )
        return choice


def _stored_choice(message: Message, candidates: list[str]) -> str:
    choice = (message.data or {}).get("choice")
    if choice not in candidates:
        from simulator.engine.journal import ResumeError

        raise ResumeError(
            f"Stored manager decision {message.seq} names {choice!r}, which is not eligible "
            f"now ({', '.join(candidates)}); the conversation cannot be resumed."
        )
    return str(choice)


__all__ = [
    "MANAGER",
    "ChooseSpeaker",
    "SpeakerSelector",
    "eligible",
    "parse_choice",
    "random_pick",
    "round_robin_order",
    "round_robin_pick",
]
