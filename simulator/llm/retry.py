"""Retries, timeouts and the error type backends raise to steer them.

Backends classify each failure (``CallError.retryable``, ``retry_after``); the registry's loop
(:func:`call_with_retries`) decides what to do: wait and try again with exponential backoff and
jitter (honouring ``Retry-After``), or give up and report.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from simulator.domain.errors import LLMError
from simulator.llm.base import ChatRequest, ChatResult, EventSink, LLMEvent

log = logging.getLogger(__name__)

# A server may ask for a long pause; beyond this we would rather fail and let the user resume.
MAX_RETRY_AFTER_S = 300.0


class CallError(LLMError):
    """A failed call, classified: ``reason`` is short ("429", "timeout", "connection"),
    ``retry_after`` the server's requested pause in seconds, when it gave one."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        reason: str,
        status: int | None = None,
        retry_after: float | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, title=title)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


def retryable_status(status: int) -> bool:
    """429 and 5xx may succeed later; other 4xx (bad key, unknown model, bad request) cannot."""
    return status == 429 or status >= 500 or status == 408


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
    except Exception:  # headers of unknown shape: no hint
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RetryPolicy:
    timeout_s: float = 120.0
    max_attempts: int = 4
    backoff_s: float = 0.5  # first pause; doubles per attempt
    max_backoff_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Pause after failed ``attempt`` (1-based): the server's ``Retry-After`` when given,
        else exponential backoff with equal jitter (half fixed, half random)."""
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_S)
        base = min(self.max_backoff_s, self.backoff_s * 2.0 ** (attempt - 1))
        return float(base / 2 + rng.uniform(0, base / 2))


async def emit(sink: EventSink | None, event: LLMEvent) -> None:
    """Deliver ``event``; a failing listener is logged and never fails the model call."""
    if event.kind != "pull_progress":
        log.warning(
            "%s %s %s (attempt %d, wait %.2f s): %s",
            event.kind, event.endpoint, event.model, event.attempt, event.delay_s, event.reason,
        )  # fmt: skip
    if sink is None:
        return
    try:
        result = sink(event)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("an LLM event listener failed on %s", event.kind)


async def call_with_retries(
    call: Callable[[], Awaitable[ChatResult]],
    request: ChatRequest,
    policy: RetryPolicy,
    *,
    where: str,
    slot: Callable[[], Any],
    on_event: EventSink | None,
) -> ChatResult:
    """Run ``call`` under the concurrency ``slot`` (an async context manager factory) with a
    per-attempt timeout, retrying retryable failures; every retry and the final failure become
    events. The slot is released while waiting, so pauses do not block other calls."""
    rng = random.Random()  # timing jitter only: it never shapes stored data
    model = request.model
    retries: list[dict[str, Any]] = []  # stored with the answer (Message.retries)
    for attempt in range(1, policy.max_attempts + 1):
        try:
            async with slot():
                result = await asyncio.wait_for(call(), timeout=policy.timeout_s)
            result.attempts = attempt
            result.retries = retries
            return result
        except TimeoutError:
            error = CallError(
                f"no answer from {where} within {policy.timeout_s:g} s",
                retryable=True,
                reason="timeout",
            )
        except CallError as exc:
            error = exc
        except LLMError as exc:
            error = CallError(str(exc), retryable=exc.retryable, reason="error", title=exc.title)
        if not error.retryable or attempt == policy.max_attempts:
            if error.retryable:
                message = f"{error} (gave up after {attempt} attempts)"
            else:
                message = str(error)
            await emit(
                on_event,
                LLMEvent(
                    kind="failed",
                    endpoint=model.endpoint,
                    model=model.model,
                    reason=message,
                    attempt=attempt,
                    meta=request.meta,
                ),
            )
            raise CallError(
                message,
                retryable=error.retryable,
                reason=error.reason,
                status=error.status,
                title=error.title,
            ) from error
        delay = policy.delay(attempt, error.retry_after, rng)
        retries.append(
            {"attempt": attempt, "reason": f"{error.reason}: {error}", "wait_s": round(delay, 3)}
        )
        await emit(
            on_event,
            LLMEvent(
                kind="retry",
                endpoint=model.endpoint,
                model=model.model,
                reason=f"{error.reason}: {error}",
                attempt=attempt,
                delay_s=delay,
                meta=request.meta,
            ),
        )
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
