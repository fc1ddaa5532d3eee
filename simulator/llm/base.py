"""The one interface every chat backend implements (a plugin boundary, see STYLE.md #2)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from simulator.domain import ModelRef, TokenUsage


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class CallMeta:
    """Who is asking and why. Real backends ignore it; the dryrun backend builds its reply from it,
    and events carry it so the engine can store retries against the right turn."""

    agent: str = ""
    role: str = ""
    day: int = 0
    turn: int = 0
    seed: int = 0
    purpose: Literal["utterance", "summary", "manager", "action", "other"] = "utterance"
    candidates: tuple[str, ...] = ()  # manager calls: the eligible speaker names


@dataclass(frozen=True)
class ChatRequest:
    model: ModelRef
    messages: list[ChatMessage]
    meta: CallMeta = field(default_factory=CallMeta)
    json_schema: dict[str, Any] | None = None  # structured actions: the answer's JSON schema
    # routes requests that share a prefix to the same prompt cache (OpenAI's
    # ``prompt_cache_key``): a batch sets it to the conversation's id (see llm/metered.py)
    prompt_cache_key: str | None = None


@dataclass(frozen=True)
class CallCache:
    """The response cache's part in one call (``ChatResult.cache``; see llm/cache.py)."""

    hit: bool  # served from the cache: no call was made
    key: str  # the cache key (``responses._id``)
    request: str  # the request digest: the key without its replicate index
    replicate: tuple[int, int]  # (the cell's repeat, the position among identical requests)
    original: dict[str, Any] | None = None  # a hit's original call (its provenance)


@dataclass
class ChatResult:
    text: str
    usage: TokenUsage
    latency_ms: float
    finish_reason: str | None
    raw: dict[str, Any]
    sent_params: dict[str, Any] = field(default_factory=dict)  # exactly what went on the wire
    dropped_params: list[str] = field(default_factory=list)  # configured but not accepted
    attempts: int = 1
    # the failed attempts before this answer: {"attempt", "reason", "wait_s"} each
    retries: list[dict[str, Any]] = field(default_factory=list)
    # The whole prompt's length in tokens as the server counted it, cached prefix included;
    # None when the server did not say, or its count may leave out a cached prefix without
    # saying so (Ollama). What the system-prompt check judges (see system_check.py).
    prompt_tokens_total: int | None = None
    # set by a batch's metered calls (llm/metered.py): what this call cost by the price table
    # (0 when served from the response cache; None: no price known), and the cache's part
    cost_usd: float | None = None
    cache: CallCache | None = None
    # a model pool's endpoint that answered (``PoolEndpoint.label``); None: not a pool
    endpoint: str | None = None


@dataclass(frozen=True)
class LLMEvent:
    """A retry or a final failure, reported so the engine can store it."""

    kind: Literal["retry", "failed", "pull_progress"]
    endpoint: str
    model: str
    reason: str
    attempt: int = 0
    delay_s: float = 0.0
    completed: int | None = None  # pull progress, bytes
    total: int | None = None
    meta: CallMeta | None = None


EventSink = Callable[[LLMEvent], Awaitable[None] | None]


@runtime_checkable
class ChatBackend(Protocol):
    """A provider. ``chat`` raises ``simulator.domain.errors.LLMError`` with a message a user can
    act on when the call fails for good. A backend whose servers count the whole prompt (cached
    part included) in ``ChatResult.prompt_tokens_total`` sets a class attribute
    ``counts_whole_prompt = True``: only those are judged by the system-prompt check."""

    async def chat(self, request: ChatRequest) -> ChatResult: ...

    async def list_models(self, model: ModelRef) -> list[str]:
        """Models the endpoint of ``model`` offers (never pulls or creates anything)."""
        ...

    async def ensure_available(self, model: ModelRef, on_event: EventSink | None = None) -> None:
        """Make ``model`` usable (Ollama: pull if missing, with progress). Only runs call this."""
        ...


class ChatService(Protocol):
    """What a run calls every model through: ``simulator.llm.registry.Backends``, which routes,
    limits and retries. The engine asks for no more, so a read-only replay (interviews) or a
    test can stand in with anything that answers ``chat``."""

    async def chat(self, request: ChatRequest) -> ChatResult: ...
