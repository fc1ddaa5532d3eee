"""A batch's model calls, metered: the response cache, the cost ledger and the budget caps.

``BatchCalls`` wraps ``Backends`` for one run of a batch; each conversation talks to its own
``ConversationCalls`` (``batch_calls.for_conversation(...)``), which the engine uses exactly as it
uses ``Backends`` (anything else is passed through). For every call it:

1. gives the request the conversation's ``prompt_cache_key`` (servers that take one route
   requests sharing a prefix to the same prompt cache; see openai.py);
2. with the batch's cache ``reuse``: serves the stored answer of the same key, if there is one
   (llm/cache.py), and makes no call; ``refresh`` never reads, ``off`` neither reads nor writes;
3. checks the budget caps: when what the batch spent, plus the calls in flight, plus this
   call's expected size would pass ``max_total_tokens`` or ``max_cost_usd``, the call is not
   made: ``CapReached`` (a ``CancelledError``) stops the conversation as interrupted, and the
   batch stops cleanly (``on_cap``);
4. makes the call, stores the answer in the cache (``reuse``, ``refresh``), prices it, and adds
   it to the ledger (calls, tokens, cached prompt tokens, characters sent, cost, by model, role
   and purpose).

A call's expected size, for the caps, errs on the high side: its prompt's characters at the
tokens per character this batch measured for the model (else 1 token per 4 characters), plus
10 %; and the longest completion this run has seen for the model and purpose (else the mean the
batch measured, else 150 tokens, or ``max_tokens`` when lower). A cap can still be passed by a
call longer than any before it, never by more than that call.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from simulator.domain import CacheMode, Ledger, Message, TokenUsage
from simulator.llm.base import CallCache, ChatRequest, ChatResult, ChatService
from simulator.llm.cache import (
    ResponseStore,
    cache_key,
    key_fields,
    request_digest,
    served,
    to_response,
)
from simulator.llm.prices import PriceTable

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4.0
ASSUMED_REPLY_TOKENS = 150
PROMPT_MARGIN = 1.1  # the expected prompt of a call, over its characters at the measured rate


class CapReached(asyncio.CancelledError):
    """A budget cap stopped the batch before a call (the conversation stops, interrupted)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Caps:
    max_cost_usd: float | None = None
    max_total_tokens: int | None = None


def model_key(request: ChatRequest) -> str:
    return f"{request.model.provider.value}:{request.model.model}"


class BatchCalls:
    """One run of one batch (see the module docstring)."""

    def __init__(
        self,
        backends: ChatService,
        *,
        batch_id: str,
        mode: CacheMode = CacheMode.off,
        prices: PriceTable | None = None,
        ledger: Ledger | None = None,
        caps: Caps | None = None,
        responses: ResponseStore | None = None,
        on_cap: Callable[[str], None] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        if mode is not CacheMode.off and responses is None:
            raise ValueError("a batch with its cache on needs a response store")
        self.backends = backends
        self.batch_id = batch_id
        self.mode = mode
        self.prices = prices or PriceTable()
        self.ledger = ledger or Ledger(batch_id=batch_id)
        self.caps = caps or Caps()
        self.responses = responses
        self.on_cap = on_cap
        self.on_change = on_change
        self.reserved_tokens = 0
        self.reserved_cost = 0.0
        self.capped: str | None = None  # the reason, once a cap stopped the batch
        self._longest: dict[tuple[str, str], int] = {}  # (model, purpose) -> completion tokens

    def for_conversation(
        self,
        conversation_id: str,
        *,
        repeat: int = 0,
        seed: int = 0,
        stored: Callable[[], Awaitable[list[Message]]] | None = None,
    ) -> ConversationCalls:
        """The calls of one conversation; ``stored`` loads its stored messages (a resumed
        conversation: the cache positions of its earlier calls are counted from them)."""
        return ConversationCalls(self, conversation_id, repeat=repeat, seed=seed, stored=stored)

    # ------------------------------------------------------------------ caps

    def over_cap(self) -> str | None:
        """The cap the batch has already reached (nothing more can run), if any."""
        spent_tokens, spent_cost = self.ledger.tokens, self.ledger.cost_usd
        if self.caps.max_total_tokens is not None and spent_tokens >= self.caps.max_total_tokens:
            return self._reason("max_total_tokens", f"{spent_tokens:,} tokens used")
        if self.caps.max_cost_usd is not None and spent_cost >= self.caps.max_cost_usd:
            return self._reason("max_cost_usd", f"${spent_cost:,.4f} spent")
        return None

    def _reason(self, cap: str, spent: str) -> str:
        if cap == "max_total_tokens":
            limit = f"max_total_tokens {self.caps.max_total_tokens:,}"
            option = "--max-total-tokens N"
        else:
            limit = f"max_cost_usd {self.caps.max_cost_usd:g}"
            option = "--max-cost-usd USD"
        return (
            f"the budget cap {limit} would be passed by the next call ({spent}); raise it "
            f"and continue with: simulator resume {self.batch_id} {option}"
        )

    def expected(self, request: ChatRequest) -> tuple[int, float]:
        """This call's expected tokens and cost (see the module docstring)."""
        key = model_key(request)
        chars = sum(len(m.content) for m in request.messages)
        rows = [r for r in self.ledger.rows if r.model == key]
        sent_chars = sum(r.prompt_chars for r in rows)
        per_char = (
            sum(r.prompt_tokens for r in rows if r.prompt_chars) / sent_chars
            if sent_chars
            else 1 / CHARS_PER_TOKEN
        )
        prompt = round(chars * per_char * PROMPT_MARGIN)
        same = [r for r in rows if r.purpose == request.meta.purpose and r.calls]
        longest = self._longest.get((key, request.meta.purpose))
        if longest is not None:
            completion = longest
        elif same:
            completion = round(sum(r.completion_tokens for r in same) / sum(r.calls for r in same))
        else:
            cap = request.model.params.max_tokens
            completion = min(ASSUMED_REPLY_TOKENS, cap) if cap else ASSUMED_REPLY_TOKENS
        cost = self.prices.cost(
            request.model, TokenUsage(prompt_tokens=prompt, completion_tokens=completion)
        )
        return prompt + completion, cost or 0.0

    def reserve(self, request: ChatRequest) -> tuple[int, float]:
        """Hold this call's expected size against the caps, or stop the batch (CapReached)."""
        if self.capped is not None:
            raise CapReached(self.capped)
        if self.caps.max_total_tokens is None and self.caps.max_cost_usd is None:
            return 0, 0.0  # nothing to hold it against
        tokens, cost = self.expected(request)
        reason = None
        used_tokens = self.ledger.tokens + self.reserved_tokens
        used_cost = self.ledger.cost_usd + self.reserved_cost
        if (
            self.caps.max_total_tokens is not None
            and used_tokens + tokens > self.caps.max_total_tokens
        ):
            reason = self._reason("max_total_tokens", f"{self.ledger.tokens:,} tokens used")
        elif self.caps.max_cost_usd is not None and used_cost + cost > self.caps.max_cost_usd:
            reason = self._reason("max_cost_usd", f"${self.ledger.cost_usd:,.4f} spent")
        if reason is not None:
            self.stop(reason)
            raise CapReached(reason)
        self.reserved_tokens += tokens
        self.reserved_cost += cost
        return tokens, cost

    def release(self, held: tuple[int, float]) -> None:
        self.reserved_tokens -= held[0]
        self.reserved_cost -= held[1]

    def stop(self, reason: str) -> None:
        """Stop the batch at a cap: every later call raises CapReached; ``on_cap`` is told."""
        if self.capped is not None:
            return
        self.capped = reason
        log.warning("batch %s: %s", self.batch_id, reason)
        if self.on_cap is not None:
            self.on_cap(reason)

    # ------------------------------------------------------------------ the ledger

    def account(self, request: ChatRequest, result: ChatResult) -> None:
        """Price a call's answer and add it to the ledger (a cache hit counts as a hit)."""
        meta = request.meta
        row = self.ledger.row(model_key(request), meta.role, meta.purpose)
        if result.cache is not None and result.cache.hit:
            row.cache_hits += 1
            result.cost_usd = 0.0
        else:
            cost = self.prices.cost(request.model, result.usage)
            result.cost_usd = None if cost is None else round(cost, 10)
            row.calls += 1
            row.prompt_tokens += result.usage.prompt_tokens
            row.completion_tokens += result.usage.completion_tokens
            row.cached_tokens += result.usage.cached_tokens
            row.prompt_chars += sum(len(m.content) for m in request.messages)
            key = (row.model, meta.purpose)
            self._longest[key] = max(self._longest.get(key, 0), result.usage.completion_tokens)
            if cost is None:
                row.unpriced_calls += 1
            else:
                row.cost_usd = round(row.cost_usd + cost, 10)
        if self.on_change is not None:
            self.on_change()


class ConversationCalls:
    """One conversation's calls through its batch (see the module docstring). Anything but
    ``chat`` (``ensure_available``, ``warnings_for`` ...) is the wrapped ``Backends``'."""

    def __init__(
        self,
        batch: BatchCalls,
        conversation_id: str,
        *,
        repeat: int,
        seed: int,
        stored: Callable[[], Awaitable[list[Message]]] | None,
    ) -> None:
        self.batch = batch
        self.conversation_id = conversation_id
        self.repeat = repeat
        self.seed = seed
        self._stored = stored
        self._seen: Counter[str] = Counter()  # request digest -> identical requests so far
        self._restored: asyncio.Future[None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.batch.backends, name)

    async def chat(self, request: ChatRequest) -> ChatResult:
        batch = self.batch
        if request.prompt_cache_key is None:
            request = replace(request, prompt_cache_key=self.conversation_id)
        call: CallCache | None = None
        fields: dict[str, Any] = {}
        if batch.mode is not CacheMode.off:
            fields, call = await self._key(request)
            if batch.mode is CacheMode.reuse:
                assert batch.responses is not None
                found = await batch.responses.get(call.key)
                if found is not None:
                    hit = served(found, replace(call, hit=True, original=found.provenance()))
                    batch.account(request, hit)
                    return hit
        held = batch.reserve(request)
        try:
            result: ChatResult = await batch.backends.chat(request)
        finally:
            batch.release(held)
        if call is not None:
            assert batch.responses is not None
            await batch.responses.put(
                to_response(
                    result,
                    request,
                    fields,
                    call,
                    batch_id=batch.batch_id,
                    conversation_id=self.conversation_id,
                ),
                replace=batch.mode is CacheMode.refresh,
            )
            result.cache = call
        batch.account(request, result)
        return result

    async def _key(self, request: ChatRequest) -> tuple[dict[str, Any], CallCache]:
        await self._restore()
        backends = self.batch.backends
        inputs = getattr(backends, "cache_inputs", None)
        params = inputs(request) if inputs is not None else {}
        digest_of = getattr(backends, "model_digest", None)
        digest = await digest_of(request.model) if digest_of is not None else None
        fields = key_fields(request, params=params, seed=self.seed, model_digest=digest)
        request_id = request_digest(fields)
        position = self._seen[request_id]
        self._seen[request_id] += 1
        replicate = (self.repeat, position)
        return fields, CallCache(
            hit=False, key=cache_key(fields, replicate), request=request_id, replicate=replicate
        )

    async def _restore(self) -> None:
        """Count the requests of the conversation's stored messages (once, before its first
        cached call of this run), so a resumed conversation gives its next identical request
        the next position, as the uninterrupted run did."""
        if self._stored is None:
            return
        if self._restored is None:
            self._restored = asyncio.get_running_loop().create_future()
            try:
                for m in await self._stored():
                    if m.cache is not None:
                        self._seen.update(m.cache.requests)
            except BaseException as exc:
                self._restored.set_exception(exc)
                self._restored = None
                raise
            self._restored.set_result(None)
            self._stored = None
            return
        await self._restored


__all__ = ["BatchCalls", "CapReached", "Caps", "ConversationCalls", "model_key"]
