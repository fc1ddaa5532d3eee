"""The decision seam every game plays through: ask, record, snapshot.

A game asks each of its players' decisions with a JSON schema and a documented default, writes
each public event as a record and closes each round (or step) with a snapshot of its state. Two
implementations serve the same game loop:

- ``JournalDecisions``: a stored conversation. Each answer is ``Journal.action`` (stored before
  the game uses it, validated, re-asked, defaulted with a recorded fallback), each event
  ``Journal.record``, each snapshot ``Journal.snapshot``; a resumed run replays what is stored;
- ``InProcessDecisions``: no database. Scripted dryrun policies (or the dryrun backend) answer in
  the process, one attempt per decision; nothing is stored (calibration sweeps, fast
  simulations, tests of the rules).

Either way the answer comes with its provenance (``Decided.decision``: ``answer``, ``reasked`` or
``fallback``, as ``Message.decision``), so a game counts fallbacks apart from choices.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from simulator.domain import Decision, MessageKind
from simulator.llm.base import ChatRequest

if TYPE_CHECKING:
    from simulator.engine.journal import Journal

A = TypeVar("A", bound=BaseModel)
T = TypeVar("T")

#: Who sees an answer: ``None`` every player (a public post), a list the players told, ``[]``
#: no other player (a private answer to the game: a vote, an extraction, a private thought).
PRIVATE: list[str] = []


@dataclass
class Decided(Generic[T]):
    """An answer and its provenance (``Message.decision``): the model's answer, an answer after
    re-asks, or a fallback (the documented default: never a choice)."""

    answer: T
    decision: Decision = Decision.answer
    seq: int = -1  # the stored message's seq (-1 when nothing is stored)
    cause: str | None = None  # why it was re-asked or fell back

    @property
    def fallback(self) -> bool:
        return self.decision is Decision.fallback


@functools.lru_cache(maxsize=1024)
def json_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema sent with a question (built once per answer type: building it is slow)."""
    return schema.model_json_schema()


class Decisions(Protocol):
    """Where a game's answers come from and where its events and snapshots go.

    ``day`` is the game's round or step (stored in ``Message.day``)."""

    async def ask(
        self,
        request: ChatRequest,
        schema: type[A],
        default: A,
        *,
        speaker: str,
        role: str,
        day: int,
        turn: int,
        recipients: list[str] | None = PRIVATE,
        content: Callable[[A], str] | None = None,
        max_reasks: int | None = None,
    ) -> Decided[A]:
        """The validated answer (or ``default``) and its provenance."""
        ...

    async def record(
        self,
        *,
        speaker: str,
        role: str,
        content: str,
        day: int,
        turn: int,
        kind: MessageKind = MessageKind.system,
        recipients: list[str] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None: ...

    async def snapshot(self, step: int, state: dict[str, Any]) -> None: ...


class JournalDecisions:
    """Answers as journal actions, events as journal records, snapshots in ``states``."""

    def __init__(self, journal: Journal, max_reasks: int = 2) -> None:
        self.journal = journal
        self.max_reasks = max_reasks

    async def ask(
        self,
        request: ChatRequest,
        schema: type[A],
        default: A,
        *,
        speaker: str,
        role: str,
        day: int,
        turn: int,
        recipients: list[str] | None = PRIVATE,
        content: Callable[[A], str] | None = None,
        max_reasks: int | None = None,
    ) -> Decided[A]:
        from simulator.engine.journal import decision_of

        answer, message = await self.journal.action(
            request,
            schema,
            default,
            speaker=speaker,
            role=role,
            day=day,
            turn=turn,
            recipients=recipients,
            max_reasks=self.max_reasks if max_reasks is None else max_reasks,
            content=content,
        )
        decision = decision_of(message) or Decision.answer
        return Decided(answer, decision, message.seq, message.decision_cause)

    async def record(
        self,
        *,
        speaker: str,
        role: str,
        content: str,
        day: int,
        turn: int,
        kind: MessageKind = MessageKind.system,
        recipients: list[str] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        await self.journal.record(
            kind=MessageKind(kind),
            speaker=speaker,
            role=role,
            content=content,
            day=day,
            turn=turn,
            recipients=recipients,
            data=data,
        )

    async def snapshot(self, step: int, state: dict[str, Any]) -> None:
        await self.journal.snapshot(step, state)


@functools.cache
def _dryrun_backend() -> Any:
    from simulator.llm.dryrun import DryRunBackend

    return DryRunBackend()


class InProcessDecisions:
    """Answers from the dryrun backend in the process (a scripted policy when the model names
    one, else the backend's schema-valid answer); nothing is stored. One attempt per decision:
    an invalid answer takes the default and counts as a fallback. Events are kept in
    ``events`` (a game's record of what it announced); snapshots are not kept."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def ask(
        self,
        request: ChatRequest,
        schema: type[A],
        default: A,
        *,
        speaker: str,
        role: str,
        day: int,
        turn: int,
        recipients: list[str] | None = PRIVATE,
        content: Callable[[A], str] | None = None,
        max_reasks: int | None = None,
    ) -> Decided[A]:
        from simulator.engine.journal import parse_json_object
        from simulator.llm.dryrun import policy_for

        policy = policy_for(request.model)
        try:
            if policy is not None:  # a scripted policy: no JSON round trip
                answer = policy(request)
                if inspect.isawaitable(answer):
                    answer = await answer
                if isinstance(answer, dict):
                    return Decided(schema.model_validate(answer))
                return Decided(schema.model_validate(parse_json_object(str(answer))))
            result = await _dryrun_backend().chat(request)
            return Decided(schema.model_validate(parse_json_object(result.text)))
        except (ValueError, ValidationError) as exc:
            return Decided(default, Decision.fallback, cause=str(exc).splitlines()[0])

    async def record(
        self,
        *,
        speaker: str,
        role: str,
        content: str,
        day: int,
        turn: int,
        kind: MessageKind = MessageKind.system,
        recipients: list[str] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.events.append(
            {
                "day": day,
                "turn": turn,
                "kind": str(kind),
                "speaker": speaker,
                "content": content,
                "data": data,
            }
        )

    async def snapshot(self, step: int, state: dict[str, Any]) -> None:
        return None


__all__ = [
    "PRIVATE",
    "Decided",
    "Decisions",
    "InProcessDecisions",
    "JournalDecisions",
    "json_schema",
]
