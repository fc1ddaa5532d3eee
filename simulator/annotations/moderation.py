"""The moderation scorer: OpenAI's moderation endpoint (or a compatible one) scores each message.

``POST {base_url}/moderations`` with ``{"model": ..., "input": [text, ...]}`` (up to
``batch_size`` messages per request), authorised like the chat backend (``OPENAI_API_KEY``, or the
model's ``api_key_env``); ``base_url`` is the model's, else ``OPENAI_BASE_URL``, else OpenAI's.
Every category score is stored (``scores``, the names exactly as the server sends them), with
``flagged`` as the annotation's value and the flagged categories in ``data``. Requests go through
the same timeout, retries and per-endpoint concurrency limit as chat calls (``Backends``).
Messages with no text are not sent (there is nothing to score).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlparse

import httpx

from simulator.annotations.base import Item, entries_for, make_annotation
from simulator.domain import Conversation, Message, ModelRef, Provider, TokenUsage
from simulator.domain.annotations import Annotation, AnnotatorEntry, Target
from simulator.llm.base import CallMeta, ChatRequest, ChatResult
from simulator.llm.clients import status_error
from simulator.llm.retry import CallError, call_with_retries, parse_retry_after

DEFAULT_MODEL = "omni-moderation-latest"
DEFAULT_BATCH = 16
OPENAI_HOST = "api.openai.com"


class ModerationAnnotator:
    """Scores messages with a moderation endpoint (see the module docstring)."""

    kind = "moderation"
    name = "moderation"
    concurrency: int | None = None

    def __init__(
        self,
        backends: Any,
        *,
        model: str = DEFAULT_MODEL,
        base_url: str | None = None,
        kinds: tuple[str, ...] = ("utterance",),
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        self.backends = backends
        self.ref = ModelRef(provider=Provider.openai, model=model, base_url=base_url)
        self.openai = backends.backend_for(self.ref)
        self.url = f"{self.openai.base_url(self.ref)}/moderations"
        host = urlparse(self.url).netloc
        self.version = model if host == OPENAI_HOST else f"{model}@{host}"
        self.kinds = tuple(kinds)
        self.batch_size = max(1, int(batch_size))
        self._gates: dict[int, asyncio.Semaphore] = {}

    def entries(self, experiment_id: str) -> list[AnnotatorEntry]:
        label = f"{self.ref.model} at {urlparse(self.url).netloc}"
        return entries_for(self, experiment_id, [(None, Target.message, label)])

    def models(self) -> list[ModelRef]:
        return []  # the moderation endpoint is not a chat model: the first request checks it

    async def items(self, conversation: Conversation, messages: list[Message]) -> list[Item]:
        return [
            Item(conversation, seq=m.seq, payload=m)
            for m in messages
            if m.kind.value in self.kinds and m.content.strip()
        ]

    async def annotate(self, items: list[Item]) -> list[list[Annotation]]:
        texts = [item.payload.content for item in items]
        request = ChatRequest(model=self.ref, messages=[], meta=CallMeta(purpose="other"))
        result = await call_with_retries(
            lambda: self._post(texts),
            request,
            self.backends.policy_for(self.ref),
            where=self.url,
            slot=self._gate,
            on_event=getattr(self.backends, "on_event", None),
        )
        body = result.raw
        rows = body.get("results")
        if not isinstance(rows, list) or len(rows) != len(texts):
            raise CallError(
                f"{self.url} answered {len(rows) if isinstance(rows, list) else 'no'} result(s) "
                f"for {len(texts)} input(s); is it a moderation endpoint?",
                retryable=False,
                reason="format",
                title="Unexpected moderation answer",
            )
        served = body.get("model")
        latency = result.latency_ms / len(items)
        out: list[list[Annotation]] = []
        for item, row in zip(items, rows, strict=True):
            scores = _scores(row, self.url)
            categories = row.get("categories") if isinstance(row, dict) else None
            flagged_names = sorted(k for k, v in (categories or {}).items() if v is True)
            data: dict[str, Any] = {"flagged_categories": flagged_names}
            if served:
                data["served_model"] = served
            out.append(
                [
                    make_annotation(
                        self,
                        item,
                        value=bool(row.get("flagged", False)),
                        scores=scores,
                        data=data,
                        model=self.ref,
                        sent_params={"model": self.ref.model},
                        raw=json.dumps(row, ensure_ascii=False, sort_keys=True),
                        latency_ms=latency,
                        attempts=result.attempts,
                        call_id=f"{self.name}@{self.version}:{items[0].key}+{len(items)}",
                    )
                ]
            )
        return out

    def _gate(self) -> asyncio.Semaphore:
        key = id(asyncio.get_running_loop())
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = asyncio.Semaphore(self.backends.limit_for(self.ref))
        return gate

    async def _post(self, texts: list[str]) -> ChatResult:
        key = self.openai.api_key(self.ref)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        timeout = self.backends.policy_for(self.ref).timeout_s + 5
        start = time.perf_counter()
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                response = await client.post(
                    self.url, json={"model": self.ref.model, "input": texts}, headers=headers
                )
        except httpx.TimeoutException:
            raise CallError(
                f"no answer from {self.url} in time", retryable=True, reason="timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise CallError(
                f"cannot reach the moderation endpoint {self.url} ({type(exc).__name__}): check "
                "that the server runs and that OPENAI_BASE_URL (or --base-url) points at it",
                retryable=True,
                reason="connection",
                title="Moderation server unreachable",
            ) from None
        latency = (time.perf_counter() - start) * 1000
        if response.status_code != 200:
            raise status_error(
                response.status_code,
                _detail(response, key),
                where=self.url,
                model=self.ref.model,
                retry_after=parse_retry_after(response.headers),
                auth_hint="set OPENAI_API_KEY (environment or .env) to a valid key for this server",
                not_found_hint="check the moderation model's name and that the base URL is the "
                "API root (usually ending in /v1)",
            )
        try:
            body = response.json()
        except ValueError:
            raise CallError(
                f"{self.url} did not answer JSON", retryable=False, reason="format"
            ) from None
        if not isinstance(body, dict):
            raise CallError(f"{self.url} answered {body!r}", retryable=False, reason="format")
        return ChatResult(
            text="",
            usage=TokenUsage(),
            latency_ms=latency,
            finish_reason=None,
            raw=body,
            sent_params={"model": self.ref.model},
        )


def _scores(row: Any, where: str) -> dict[str, float]:
    scores = row.get("category_scores") if isinstance(row, dict) else None
    if not isinstance(scores, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in scores.values()
    ):
        raise CallError(
            f"{where} answered a result without numeric category_scores",
            retryable=False,
            reason="format",
            title="Unexpected moderation answer",
        )
    return {str(k): float(v) for k, v in scores.items()}


def _detail(response: httpx.Response, key: str | None) -> str:
    from simulator.llm.clients import redact

    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        text = str(error.get("message") if isinstance(error, dict) else error or body)
    except ValueError:
        text = response.text[:200]
    return redact(text, key)


__all__ = ["DEFAULT_MODEL", "ModerationAnnotator"]
