"""The response cache's key, and what a served answer looks like (docs/cost.md).

An answer is stored under the SHA-256 of the canonical JSON (keys sorted, no spaces, UTF-8) of:

- ``v``: the key's version (1);
- ``provider`` and ``model`` (the model, or a model pool, by name) and ``model_digest``, the
  server's digest of the model where it reports one (Ollama); None elsewhere;
- ``params``: the sampling parameters as the backend sends them (its own names; before a
  server's refusal removes one: what a server refused is the answer's provenance); for dryrun,
  what shapes its replies (the call's meta, ``params.seed``, the policy options);
- ``schema``: a structured answer's JSON schema (None for text);
- ``seed``: the conversation's seed;
- ``messages``: the SHA-256 of the canonical JSON of the whole message list (``[[role,
  content], ...]``);
- ``replicate``: ``[repeat, position]``: the cell's repeat number and the call's position among
  the identical requests of its conversation (0 for the first), so repeats of a cell, and a
  request asked again on purpose, are never collapsed into one answer.

The endpoint that answered is provenance, not key: replicas serving one model share answers.
``request`` is the same digest without ``replicate``: the identity of a request, which a
conversation counts to give each repetition its position.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Protocol

from simulator.domain import CachedResponse, ModelRef, TokenUsage
from simulator.llm.base import CallCache, ChatRequest, ChatResult

KEY_VERSION = 1
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical(value: object) -> bytes:
    """The canonical JSON of ``value``: keys sorted, no spaces, UTF-8."""
    return _CANONICAL.encode(value).encode()


def sha256(value: object) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def key_fields(
    request: ChatRequest,
    *,
    params: Mapping[str, Any],
    seed: int,
    model_digest: str | None,
) -> dict[str, Any]:
    """Every key field but ``replicate`` (see the module docstring)."""
    ref = request.model
    messages = [[m.role, m.content] for m in request.messages]
    return {
        "v": KEY_VERSION,
        "provider": ref.provider.value,
        "model": ref.model,
        "model_digest": model_digest,
        "params": dict(params),
        "schema": request.json_schema,
        "seed": seed,
        "messages": hashlib.sha256(canonical(messages)).hexdigest(),
    }


def request_digest(fields: Mapping[str, Any]) -> str:
    """The identity of a request: the digest of its key fields without ``replicate``."""
    return sha256(dict(fields))


def cache_key(fields: Mapping[str, Any], replicate: tuple[int, int]) -> str:
    """The answer's key (``responses._id``): the digest of every key field."""
    return sha256({**fields, "replicate": list(replicate)})


class ResponseStore(Protocol):
    """Where answers are kept (``simulator.db.mongo.MongoResponseRepo``)."""

    async def get(self, key: str) -> CachedResponse | None: ...

    async def put(self, response: CachedResponse, *, replace: bool = False) -> None:
        """Store ``response`` under its key: the first answer stored wins, unless ``replace``
        (a ``refresh`` batch overwrites)."""
        ...


def to_response(
    result: ChatResult,
    request: ChatRequest,
    fields: Mapping[str, Any],
    call: CallCache,
    *,
    batch_id: str | None,
    conversation_id: str | None,
) -> CachedResponse:
    """The cache entry of a fresh answer."""
    ref: ModelRef = request.model
    return CachedResponse(
        id=call.key,
        request=call.request,
        replicate=list(call.replicate),
        provider=ref.provider.value,
        model=ref.model,
        model_digest=fields.get("model_digest"),
        params=dict(fields.get("params") or {}),
        seed=int(fields.get("seed") or 0),
        text=result.text,
        finish_reason=result.finish_reason,
        usage=result.usage,
        prompt_tokens_total=result.prompt_tokens_total,
        sent_params=dict(result.sent_params),
        dropped_params=list(result.dropped_params),
        latency_ms=result.latency_ms,
        attempts=result.attempts,
        endpoint=ref.endpoint,
        model_ref=ref,
        batch_id=batch_id,
        conversation_id=conversation_id,
    )


def served(response: CachedResponse, call: CallCache) -> ChatResult:
    """A cached answer as the result of a call that was not made: the original's text, usage
    and parameters (what produced this answer), no latency, no attempt, cost 0."""
    return ChatResult(
        text=response.text,
        usage=TokenUsage.model_validate(response.usage.model_dump()),
        latency_ms=0.0,
        finish_reason=response.finish_reason,
        raw={"cache": {"hit": True, "key": response.id}},
        sent_params=dict(response.sent_params),
        dropped_params=list(response.dropped_params),
        attempts=1,
        prompt_tokens_total=response.prompt_tokens_total,
        cost_usd=0.0,
        cache=call,
    )


__all__ = [
    "KEY_VERSION",
    "ResponseStore",
    "cache_key",
    "canonical",
    "key_fields",
    "request_digest",
    "served",
    "sha256",
    "to_response",
]
