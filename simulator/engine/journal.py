"""The journal: the kernel every kind of conversation writes through.

Every model answer and every non-model event of a conversation becomes one ``Message`` with a
dense ``seq`` (0, 1, 2, ...), appended to MongoDB before the call that produced it returns. On
resume the journal loads the stored messages, and while the scenario runner walks through the
conversation again, each ``chat`` / ``action`` / ``record`` call at a stored ``seq`` returns the
stored message instead of calling the model: a stored call is never made again, and the runner
rebuilds its state (speakers, day, history) from exactly what was stored.

The runner must therefore be deterministic given the stored messages: the same sequence of
journal calls with the same kinds and speakers. A stored message that does not match what the
runner asks for (the code or the experiment changed under a half-finished conversation) stops the
run with ``ResumeError`` instead of silently mixing two different runs.

Cost per new message: one insert, awaited before the call returns (the store writes the inserts
of concurrent conversations together, and returns once this one is acknowledged). The
conversation's progress counters are written at most once per ``progress_interval_s``, in the
background: they are a display convenience (a resume recounts them from the stored messages), so
the next model call does not wait for that write; ``finish`` waits for it before writing the
final totals. Opening and finishing a conversation are one update each.

A conversation whose stored document never started (no ``started_at``, checked by the update that
starts it) and is not a fork (no ``parent_id``: a fork is created with its parent's messages) has
no messages: opening it reads none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from simulator.db.store import NOW, START_FIELDS, Store
from simulator.domain import (
    Conversation,
    Decision,
    Message,
    MessageKind,
    ModelRef,
    Status,
    TokenUsage,
    utcnow,
)
from simulator.domain.errors import SimulatorError
from simulator.domain.models import CacheRecord, Retry
from simulator.engine.events import (
    ConversationFailed,
    ConversationFinished,
    ConversationStarted,
    ConversationWarning,
    Event,
    EventBus,
    MessageStored,
)
from simulator.llm.base import ChatMessage, ChatRequest, ChatResult, ChatService
from simulator.llm.system_check import describe

log = logging.getLogger(__name__)

B = TypeVar("B", bound=BaseModel)

#: Flag of a message whose content is a default applied by the engine (an invalid structured
#: answer, or an unusable manager choice). ``Conversation.fallbacks`` counts these messages.
#: Kept beside ``Message.decision`` (the provenance field every consumer reads) for
#: compatibility with messages stored before it existed.
FALLBACK = "fallback"
#: Flag of a message that was still empty after cleaning and one re-ask.
EMPTY = "empty"
#: Flag of a message whose first answer was re-asked (empty after cleaning, or invalid JSON).
REASKED = "reasked"

#: Prefix of the flags naming sampling parameters the server refused, so the call went without
#: them (``dropped:seed``): what ran is what is stored. The message also lists them in
#: ``dropped_params``, beside ``sent_params`` (the parameters of the request as sent).
DROPPED = "dropped:"

#: Kinds that count as agent messages (the budget, ``Conversation.messages_done``).
AGENT_KINDS = frozenset({MessageKind.utterance, MessageKind.action})

EMPTY_REASK = (
    "Your previous answer had no text of your own once the parts spoken as other participants "
    "were removed. Answer again as {speaker} only, in the first person."
)
EMPTY_REASK_SUMMARY = "Your previous answer was empty. Write the summary now."
ACTION_REASK = (
    "Your previous answer was not valid: {error}. Answer again with only a JSON object that "
    "matches the required schema, with no other text."
)


class ResumeError(SimulatorError):
    """The stored messages of a conversation do not match what the run now does."""

    title = "Cannot resume"


class Journal:
    """Open with ``await Journal.open(store, conversation, backends, bus)``."""

    progress_interval_s = 5.0

    def __init__(
        self,
        store: Store,
        conversation: Conversation,
        backends: ChatService,
        bus: EventBus | None,
        stored: list[Message],
    ) -> None:
        self.store = store
        self.conversation = conversation
        self.backends = backends
        self.bus = bus
        self._messages: list[Message] = list(stored)
        self._seq = 0
        self._stored_at_open = len(stored)
        self._tokens = TokenUsage()
        self._done = 0
        self._calls = 0  # stored messages with a model: the calls made (progress, estimates)
        self._fallbacks = 0
        self._models: dict[tuple[str, str], ModelRef] = {}  # models this run called
        for m in stored:
            self._count(m)
        self._last_progress = time.monotonic()
        self._progress_write: asyncio.Task[None] | None = None
        #: Manual speaker selection: ``await choose_speaker(conversation, candidates) -> name``.
        self.choose_speaker: Callable[..., Any] | None = None
        #: The batch worker holding the conversation's lease: the end's write releases it.
        self.lease_holder: str | None = None

    # ------------------------------------------------------------------ opening and state

    @classmethod
    async def open(
        cls,
        store: Store,
        conversation: Conversation,
        backends: ChatService,
        bus: EventBus | None = None,
        *,
        started: bool = False,
    ) -> Journal:
        """Store the conversation's start and read what an earlier run stored of it.

        ``started``: the caller's write (a batch's lease, ``take_lease_and_start``) already
        stored the start of a conversation that had never started; nothing is written again."""
        fields: dict[str, Any] = dict(START_FIELDS)
        start_time = {"started_at": conversation.started_at or utcnow()}
        if started:
            never_started = True
        elif conversation.started_at is None:  # as read by the caller: ask the stored one
            never_started = await store.conversations.start(conversation.id, **fields)
        else:
            never_started = False
            await store.conversations.set_fields(conversation.id, **fields)
        new = never_started and conversation.parent_id is None
        stored = [] if new else await store.messages.list(conversation.id)
        for i, m in enumerate(stored):
            if m.seq != i:
                raise ResumeError(
                    f"Conversation {conversation.id} has a gap in its stored messages "
                    f"(expected seq {i}, found {m.seq}); it cannot be resumed safely."
                )
        journal = cls(store, conversation, backends, bus, stored)
        journal.conversation = conversation.model_copy(update={**fields, **start_time})
        await journal._publish(
            ConversationStarted(conversation.id, conversation.batch_id, resumed_at=len(stored))
        )
        return journal

    @property
    def next_seq(self) -> int:
        """The seq of the next message (stored or new) the run will reach."""
        return self._seq

    @property
    def replaying(self) -> bool:
        """True while the run walks through messages stored by an earlier run."""
        return self._seq < len(self._messages)

    @property
    def history(self) -> list[Message]:
        """The messages the run has passed so far, in seq order."""
        return self._messages[: self._seq]

    @property
    def stored_at_open(self) -> int:
        return self._stored_at_open

    def seek(self, seq: int) -> None:
        """Skip the replay of stored messages before ``seq`` (a game resuming from a state
        snapshot taken at ``seq``). Progress counters still count every stored message."""
        if not 0 <= seq <= len(self._messages):
            raise ResumeError(
                f"Conversation {self.conversation.id} cannot resume at message {seq}: only "
                f"{len(self._messages)} are stored."
            )
        self._seq = seq

    def peek(self) -> Message | None:
        """The stored message at ``next_seq`` when replaying, else None."""
        return self._messages[self._seq] if self.replaying else None

    @property
    def tokens(self) -> TokenUsage:
        return self._tokens

    @property
    def messages_done(self) -> int:
        return self._done

    @property
    def fallbacks(self) -> int:
        return self._fallbacks

    # ------------------------------------------------------------------ model calls

    async def call(self, request: ChatRequest) -> ChatResult:
        """A model call whose answer the caller stores itself (with ``record``)."""
        return await self._ask(request)

    async def chat(
        self,
        request: ChatRequest,
        *,
        speaker: str,
        role: str,
        day: int,
        turn: int,
        kind: MessageKind = MessageKind.utterance,
        recipients: list[str] | None = None,
        clean: Callable[[str], str] | None = None,
    ) -> Message:
        """Ask the model, clean the answer, store it; or replay the stored message.

        An answer that is empty after cleaning is re-asked once; a second empty answer is stored
        flagged ``empty``. ``raw`` keeps the model's text as received.
        """
        stored = self._replay(kind, speaker)
        if stored is not None:
            return stored
        result = await self._ask(request)
        results = [result]
        content = _clean(result.text, clean)
        flags: list[str] = []
        data: dict[str, Any] | None = None
        if not content:
            reask = _extend(
                request,
                ChatMessage("assistant", result.text),
                ChatMessage(
                    "user",
                    EMPTY_REASK_SUMMARY
                    if kind is MessageKind.summary
                    else EMPTY_REASK.format(speaker=speaker),
                ),
            )
            result = await self._ask(reask)
            results.append(result)
            content = _clean(result.text, clean)
            flags.append(REASKED)
            data = {"first_raw": results[0].text}
            if not content:
                flags.append(EMPTY)
        message = self._new_message(
            kind=kind,
            speaker=speaker,
            role=role,
            day=day,
            turn=turn,
            recipients=recipients,
            content=content,
            raw=result.text,
            data=data,
            model=request.model,
            results=results,
            flags=flags,
        )
        return await self._append(message)

    async def action(
        self,
        request: ChatRequest,
        schema: type[B],
        default: B | dict[str, Any],
        *,
        speaker: str,
        role: str,
        day: int,
        turn: int,
        recipients: list[str] | None = None,
        max_reasks: int = 2,
        content: Callable[[B], str] | None = None,
    ) -> tuple[B, Message]:
        """Ask for a JSON answer valid against ``schema``; re-ask up to ``max_reasks`` times with
        the validation error; then apply ``default`` and flag the message ``fallback``.

        The stored message's ``data`` is the validated answer (or the default), ``content`` its
        JSON text (or ``content(answer)``: the text the answer says, e.g. a public post) and
        ``raw`` the model's last answer as received. ``decision`` says where the answer came
        from (``answer``, ``reasked``, ``fallback``) and ``decision_cause`` why it was re-asked
        or fell back (the validation error of each failed attempt).
        """
        stored = self._replay(MessageKind.action, speaker)
        if stored is not None:
            return schema.model_validate(stored.data or {}), stored
        if request.json_schema is None:
            request = replace(request, json_schema=schema.model_json_schema())
        attempt_request = request
        results: list[ChatResult] = []
        answer: B | None = None
        errors: list[str] = []
        for _ in range(max_reasks + 1):
            result = await self._ask(attempt_request)
            results.append(result)
            try:
                answer = schema.model_validate(parse_json_object(result.text))
                break
            except (ValueError, ValidationError) as exc:
                error = _short_error(exc)
                errors.append(error)
                attempt_request = _extend(
                    request,
                    ChatMessage("assistant", result.text),
                    ChatMessage("user", ACTION_REASK.format(error=error)),
                )
        flags: list[str] = [REASKED] if len(results) > 1 else []
        decision = Decision.reasked if len(results) > 1 else Decision.answer
        if answer is None:
            answer = default if isinstance(default, BaseModel) else schema.model_validate(default)
            flags.append(FALLBACK)
            decision = Decision.fallback
            log.info(
                "conversation %s: %s gave no valid %s after %d attempts (%s); default applied",
                self.conversation.id,
                speaker,
                schema.__name__,
                len(results),
                "; ".join(errors),
            )
        data = answer.model_dump(mode="json")
        message = self._new_message(
            kind=MessageKind.action,
            speaker=speaker,
            role=role,
            day=day,
            turn=turn,
            recipients=recipients,
            content=(
                content(answer)
                if content is not None
                else json.dumps(data, ensure_ascii=False, sort_keys=True)
            ),
            raw=results[-1].text,
            data=data,
            model=request.model,
            results=results,
            flags=flags,
            decision=decision,
            decision_cause=cause_of(errors, answered=decision is not Decision.fallback)
            if errors
            else None,
        )
        return answer, await self._append(message)

    async def record(
        self,
        *,
        kind: MessageKind,
        speaker: str,
        role: str,
        content: str,
        day: int = 0,
        turn: int = 0,
        recipients: list[str] | None = None,
        data: dict[str, Any] | None = None,
        raw: str | None = None,
        flags: list[str] | None = None,
        model: ModelRef | None = None,
        result: ChatResult | None = None,
        results: list[ChatResult] | None = None,
        decision: Decision | None = None,
        decision_cause: str | None = None,
    ) -> Message:
        """Store a non-LLM event (or a model answer the caller interpreted itself, given as
        ``result``/``results`` for usage and latency, with its ``decision`` provenance);
        replayed on resume like any message."""
        stored = self._replay(kind, speaker)
        if stored is not None:
            return stored
        message = self._new_message(
            kind=kind,
            speaker=speaker,
            role=role,
            day=day,
            turn=turn,
            recipients=recipients,
            content=content,
            raw=raw,
            data=data,
            model=model,
            results=results if results is not None else ([result] if result else []),
            flags=list(flags or []),
            decision=decision,
            decision_cause=decision_cause,
        )
        return await self._append(message)

    async def _ask(self, request: ChatRequest) -> ChatResult:
        """Every model call of the conversation goes through here (``chat``, ``action``,
        ``call``): after the answer, what the backends found wrong with the model's server
        (a dropped system message) is recorded on the conversation."""
        result = await self.backends.chat(request)
        self._models[(request.model.endpoint, request.model.model)] = request.model
        await self._note_warnings([request.model])
        return result

    async def _note_warnings(self, models: list[ModelRef]) -> None:
        warnings_for = getattr(self.backends, "warnings_for", None)
        if warnings_for is None:
            return
        known = self.conversation.warnings
        new = [w for ref in models for w in warnings_for(ref) if w not in known]
        new = list(dict.fromkeys(new))
        if not new:
            return
        warnings = [*known, *new]
        await self.store.conversations.set_fields(self.conversation.id, warnings=warnings)
        self.conversation = self.conversation.model_copy(update={"warnings": warnings})
        for warning in new:
            log.warning("conversation %s: %s", self.conversation.id, describe(warning))
            await self._publish(
                ConversationWarning(
                    self.conversation.id, self.conversation.batch_id, warning, describe(warning)
                )
            )

    # ------------------------------------------------------------------ state and the end

    async def snapshot(self, step: int, state: dict[str, Any]) -> None:
        """Store a game-state snapshot for ``step``, tagged with the seq it is valid at."""
        await self.store.states.put(self.conversation.id, step, {**state, "seq": self._seq})

    async def save_progress(self) -> None:
        """Write the progress counters to the conversation now (waits for the write)."""
        await self._progress_settled()
        self._last_progress = time.monotonic()
        fields = self._progress_fields()
        await self.store.conversations.set_fields(self.conversation.id, **fields)
        self.conversation = self.conversation.model_copy(update=fields)

    async def finish(
        self, status: Status, error: str | None = None, *, stop_reason: str | None = None
    ) -> Conversation:
        """Store the final status, error (failed), stop reason (interrupted, cancelled) and
        totals; publish ConversationFinished (done, interrupted, cancelled) or
        ConversationFailed (failed)."""
        await self._progress_settled()  # a late progress write must not land after the totals
        try:  # a verdict reached after this conversation's last call still reaches its data
            await self._note_warnings(list(self._models.values()))
        except Exception:
            log.exception("could not store the warnings of conversation %s", self.conversation.id)
        fields: dict[str, Any] = {
            **self._progress_fields(),
            "status": status,
            "error": error,
            "stop_reason": stop_reason,
        }
        ended = utcnow()
        cid = self.conversation.id
        if await self.store.conversations.end(cid, self.lease_holder, **fields, finished_at=NOW):
            fields |= {"runner": None, "lease_until": None}
        self.conversation = self.conversation.model_copy(update={**fields, "finished_at": ended})
        cid, bid = self.conversation.id, self.conversation.batch_id
        if status is Status.failed:
            await self._publish(ConversationFailed(cid, bid, error or "failed"))
        else:
            await self._publish(ConversationFinished(cid, bid, status))
        return self.conversation

    # ------------------------------------------------------------------ internals

    def _progress_fields(self) -> dict[str, Any]:
        return {
            "messages_done": self._done,
            "calls_done": self._calls,
            "tokens": self._tokens,
            "fallbacks": self._fallbacks,
        }

    def _count(self, m: Message) -> None:
        self._tokens = self._tokens + m.usage
        if m.kind in AGENT_KINDS:
            self._done += 1
        if m.model is not None:
            self._calls += 1
        if m.decision is Decision.fallback or FALLBACK in m.flags:
            self._fallbacks += 1

    def _replay(self, kind: MessageKind, speaker: str) -> Message | None:
        if not self.replaying:
            return None
        m = self._messages[self._seq]
        if m.kind != kind or m.speaker != speaker:
            raise ResumeError(
                f"Conversation {self.conversation.id} cannot be resumed: its stored message "
                f"{m.seq} is a {m.kind.value} by {m.speaker!r}, but the run now expects a "
                f"{MessageKind(kind).value} by {speaker!r}. The experiment or the simulator "
                "changed since it started; run it again as a new conversation."
            )
        self._seq += 1
        return m

    def _new_message(
        self,
        *,
        kind: MessageKind,
        speaker: str,
        role: str,
        day: int,
        turn: int,
        recipients: list[str] | None,
        content: str,
        raw: str | None,
        data: dict[str, Any] | None,
        model: ModelRef | None,
        results: list[ChatResult],
        flags: list[str],
        decision: Decision | None = None,
        decision_cause: str | None = None,
    ) -> Message:
        usage = TokenUsage()
        dropped: list[str] = []
        for r in results:
            usage = usage + r.usage
            dropped += [p for p in r.dropped_params if p not in dropped]
        dropped_flags = [f"{DROPPED}{p}" for p in dropped]
        return Message(
            conversation_id=self.conversation.id,
            seq=self._seq,
            day=day,
            turn=turn,
            speaker=speaker,
            role=role,
            kind=kind,
            recipients=list(recipients) if recipients is not None else None,
            content=content,
            raw=raw,
            data=data,
            model=model,
            # the request that produced the stored answer (the last one), exactly as sent
            sent_params=dict(results[-1].sent_params) if results else None,
            dropped_params=dropped,
            usage=usage,
            latency_ms=sum(r.latency_ms for r in results),
            attempts=max(1, sum(r.attempts for r in results)),
            retries=[Retry.model_validate(retry) for r in results for retry in r.retries],
            flags=[*flags, *(d for d in dropped_flags if d not in flags)],
            decision=decision,
            decision_cause=decision_cause,
            cost_usd=_cost(results),
            cache=_cache_record(results),
            endpoint=next((r.endpoint for r in reversed(results) if r.endpoint), None),
        )

    async def _append(self, message: Message) -> Message:
        if not await self.store.messages.append(message):
            # Someone stored this seq first (a retried insert that had landed, or a second
            # runner on the same conversation): the stored message wins.
            stored = await self.store.messages.get(message.conversation_id, message.seq)
            if stored is None:
                raise ResumeError(f"Message {message.id} could not be stored; try again.")
            log.warning("message %s was already stored; keeping the stored one", message.id)
            message = stored
        self._messages.append(message)
        self._seq += 1
        self._count(message)
        await self._publish(
            MessageStored(self.conversation.id, self.conversation.batch_id, message)
        )
        if time.monotonic() - self._last_progress >= self.progress_interval_s:
            self._save_progress_soon()
        return message

    def _save_progress_soon(self) -> None:
        """Start writing the counters without waiting for the write (one in flight at most)."""
        if self._progress_write is not None and not self._progress_write.done():
            return
        self._last_progress = time.monotonic()
        task = asyncio.create_task(self._write_progress(self._progress_fields()))
        _background.add(task)
        task.add_done_callback(_background.discard)
        self._progress_write = task

    async def _write_progress(self, fields: dict[str, Any]) -> None:
        try:
            await self.store.conversations.set_fields(self.conversation.id, **fields)
        except Exception as exc:  # counters only: the messages are stored, finish writes totals
            log.warning(
                "conversation %s: progress counters not written (%s: %s); they are written at "
                "the end of the run",
                self.conversation.id,
                type(exc).__name__,
                exc,
            )
            return
        self.conversation = self.conversation.model_copy(update=fields)

    async def _progress_settled(self) -> None:
        """Wait for the background progress write, if one is in flight."""
        task, self._progress_write = self._progress_write, None
        if task is not None and not task.done():
            await asyncio.wait([task])

    async def _publish(self, event: Event) -> None:
        if self.bus is not None:
            await self.bus.publish(event)


# ---------------------------------------------------------------------- helpers

#: Background progress writes in flight (a strong reference, so a write is never collected early).
_background: set[asyncio.Task[None]] = set()


def _cost(results: list[ChatResult]) -> float | None:
    """What a message's calls cost (a batch prices them: llm/metered.py); None when any is
    unpriced, or nothing priced them."""
    costs = [r.cost_usd for r in results]
    if not costs or any(c is None for c in costs):
        return None
    return round(sum(c for c in costs if c is not None), 10)


def _cache_record(results: list[ChatResult]) -> CacheRecord | None:
    """The response cache's part in a message: the stored answer's key, whether it was served
    from the cache (with the original call's provenance), and the request of every call."""
    calls = [r.cache for r in results if r.cache is not None]
    if not calls:
        return None
    last = calls[-1]
    return CacheRecord(
        hit=last.hit,
        key=last.key,
        replicate=list(last.replicate),
        requests=[c.request for c in calls],
        hits=sum(c.hit for c in calls),
        original=last.original if last.hit else None,
    )


def _clean(text: str, clean: Callable[[str], str] | None) -> str:
    return (clean(text) if clean is not None else text).strip()


def _extend(request: ChatRequest, *extra: ChatMessage) -> ChatRequest:
    return replace(request, messages=[*request.messages, *extra])


_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_-]*[ \t]*\r?\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder(strict=False)  # strict=False: raw newlines and tabs inside strings


def parse_json_object(text: str) -> dict[str, Any]:
    """The JSON object in a model's answer, read tolerantly: bare, in a code fence (anywhere in
    the answer), after leading prose, before trailing text, with raw newlines or tabs inside its
    strings, or with a trailing comma before a closing bracket. The first object found wins
    (a fenced one before one in the surrounding prose). The caller keeps the raw text."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        value = _first_object(candidate)
        if value is None:
            value = _first_object(_without_trailing_commas(candidate))
        if value is not None:
            return value
    first = candidates[0]
    if "{" not in first:
        raise ValueError("the answer contains no JSON object")
    try:  # the error of the most likely candidate, for the re-ask
        _DECODER.raw_decode(first, first.find("{"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"the answer is not valid JSON ({exc.msg})") from None
    raise ValueError("the answer is JSON but not an object")


def _first_object(text: str) -> dict[str, Any] | None:
    """The first ``{...}`` in ``text`` that decodes to a JSON object (trailing text ignored)."""
    start = text.find("{")
    while start >= 0:
        try:
            value, _ = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError:
            pass
        else:
            if isinstance(value, dict):
                return value
        start = text.find("{", start + 1)
    return None


def _without_trailing_commas(text: str) -> str:
    """``text`` without commas that directly precede a closing bracket (outside strings)."""
    out: list[str] = []
    in_string = escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            out.append(ch)
            continue
        if ch == '"':
            in_string = True
        elif ch == ",":
            rest = text[i + 1 :].lstrip()
            if rest[:1] in ("}", "]"):
                continue
        out.append(ch)
    return "".join(out)


def decision_of(message: Message) -> Decision | None:
    """A stored message's decision provenance; for a message stored before ``decision``
    existed, read from its flags (an action is then an answer, re-asked or a fallback)."""
    if message.decision is not None:
        return message.decision
    if FALLBACK in message.flags:
        return Decision.fallback
    if message.kind is not MessageKind.action:
        return None
    return Decision.reasked if REASKED in message.flags else Decision.answer


def cause_of(errors: list[str], *, answered: bool) -> str:
    """``decision_cause``: the validation error of each failed attempt, numbered."""
    parts = [f"attempt {i}: {e}" for i, e in enumerate(errors, start=1)]
    head = "valid after a re-ask" if answered else "no valid answer; the default was applied"
    return f"{head} ({'; '.join(parts)})"


def _short_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ())) or "answer"
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return "; ".join(parts)
    return str(exc)


__all__ = [
    "AGENT_KINDS",
    "DROPPED",
    "EMPTY",
    "FALLBACK",
    "REASKED",
    "Journal",
    "ResumeError",
    "cause_of",
    "decision_of",
    "parse_json_object",
]
