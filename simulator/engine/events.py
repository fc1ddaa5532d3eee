"""Progress events of runs, and the bus that carries them to the TUI, the CLI and tests.

Subscribers may be plain functions or coroutine functions. A failing subscriber is logged and
never stops a run: progress display is a convenience, the data is in MongoDB.

``publish`` works both as a statement (``bus.publish(e)``: async subscribers are scheduled as
tasks on the running loop) and as an awaitable (``await bus.publish(e)``: waits until every
async subscriber has handled the event). The engine awaits it, so a slow subscriber slows the
run down rather than letting events pile up.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from simulator.domain import Message, Status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConversationStarted:
    conversation_id: str
    batch_id: str | None
    resumed_at: int = 0  # seq of the first message this run will add (0: a fresh start)


@dataclass(frozen=True)
class MessageStored:
    conversation_id: str
    batch_id: str | None
    message: Message


@dataclass(frozen=True)
class DayEnded:
    conversation_id: str
    batch_id: str | None
    day: int


@dataclass(frozen=True)
class ConversationFinished:
    conversation_id: str
    batch_id: str | None
    status: Status


@dataclass(frozen=True)
class ConversationFailed:
    conversation_id: str
    batch_id: str | None
    error: str


@dataclass(frozen=True)
class ConversationWarning:
    """The run found something wrong that does not stop it, stored in ``Conversation.warnings``
    (published once per conversation and warning)."""

    conversation_id: str
    batch_id: str | None
    warning: str  # e.g. "system_prompt_dropped:<model>"
    text: str  # the warning as a sentence for people


@dataclass(frozen=True)
class BatchProgress:
    batch_id: str
    done: int
    failed: int
    total: int


@dataclass(frozen=True)
class StoreLost:
    """The database stopped answering during a batch: no conversation starts after this."""

    batch_id: str
    error: str


@dataclass(frozen=True)
class SpeakerChoiceNeeded:
    """Manual speaker selection: the engine now awaits ``choose_speaker`` for this turn."""

    conversation_id: str
    batch_id: str | None
    day: int
    turn: int
    candidates: tuple[str, ...] = field(default_factory=tuple)


Event = (
    ConversationStarted
    | MessageStored
    | DayEnded
    | ConversationFinished
    | ConversationFailed
    | ConversationWarning
    | BatchProgress
    | StoreLost
    | SpeakerChoiceNeeded
)
Subscriber = Callable[[Any], Awaitable[None] | None]


class _Published:
    """What ``publish`` returns: awaiting it waits for the async subscribers."""

    __slots__ = ("_tasks",)

    def __init__(self, tasks: list[asyncio.Task[None]]) -> None:
        self._tasks = tasks

    def __await__(self) -> Generator[Any, None, None]:
        if self._tasks:
            yield from asyncio.gather(*self._tasks, return_exceptions=True).__await__()


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._pending: set[asyncio.Task[None]] = set()  # keeps scheduled tasks alive

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        self._subscribers.append(fn)

        def unsubscribe() -> None:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

        return unsubscribe

    def publish(self, event: object) -> _Published:
        tasks: list[asyncio.Task[None]] = []
        for fn in list(self._subscribers):
            try:
                result = fn(event)
            except Exception:
                log.exception("event subscriber %r failed on %s", fn, type(event).__name__)
                continue
            if inspect.isawaitable(result):
                try:
                    task = asyncio.ensure_future(_guard(result, fn, event))
                except RuntimeError:  # no running loop: nothing can run the coroutine
                    if inspect.iscoroutine(result):
                        result.close()
                    log.warning("async subscriber %r skipped: no running event loop", fn)
                    continue
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
                tasks.append(task)
        return _Published(tasks)


async def _guard(awaitable: Awaitable[None], fn: Subscriber, event: object) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("event subscriber %r failed on %s", fn, type(event).__name__)


__all__ = [
    "BatchProgress",
    "ConversationFailed",
    "ConversationFinished",
    "ConversationStarted",
    "ConversationWarning",
    "DayEnded",
    "Event",
    "EventBus",
    "MessageStored",
    "SpeakerChoiceNeeded",
    "StoreLost",
    "Subscriber",
]
