"""What the HTTP backends share: SDK clients per event loop, error wording, redaction."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from simulator.llm.retry import CallError, retryable_status
from simulator.logging_setup import scrub

C = TypeVar("C")


class ClientCache(Generic[C]):
    """One SDK client per (event loop, endpoint, key): an httpx client must not cross loops, and
    the TUI, the CLI and tests may each run their own loop."""

    def __init__(self, close: Callable[[C], Any]) -> None:
        self._clients: dict[tuple[int, Hashable], C] = {}
        self._close = close

    def get(self, key: Hashable, make: Callable[[], C]) -> C:
        loop_id = id(asyncio.get_running_loop())
        client = self._clients.get((loop_id, key))
        if client is None:
            client = self._clients[(loop_id, key)] = make()
        return client

    async def aclose(self) -> None:
        loop_id = id(asyncio.get_running_loop())
        for (owner, key), client in list(self._clients.items()):
            if owner == loop_id:
                result = self._close(client)
                if asyncio.iscoroutine(result):
                    await result
            del self._clients[(owner, key)]


def redact(text: str, *secrets: str | None) -> str:
    """``text`` without the given secrets nor anything that looks like a key or password."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return scrub(text)


def status_error(
    status: int,
    detail: str,
    *,
    where: str,
    model: str,
    retry_after: float | None = None,
    auth_hint: str,
    not_found_hint: str,
) -> CallError:
    """A CallError for an HTTP error status, worded for the person who has to fix it."""
    if status in (401, 403):
        return CallError(
            f"the API key was rejected by {where} (HTTP {status}): {auth_hint}",
            retryable=False,
            reason=str(status),
            status=status,
            title="API key rejected",
        )
    if status == 404:
        return CallError(
            f"model '{model}' not found on the server {where}: {not_found_hint}",
            retryable=False,
            reason="404",
            status=status,
            title="Model not found",
        )
    if retryable_status(status):
        return CallError(
            f"{where} answered HTTP {status}: {detail}",
            retryable=True,
            reason=str(status),
            status=status,
            retry_after=retry_after,
        )
    return CallError(
        f"{where} rejected the request (HTTP {status}): {detail}",
        retryable=False,
        reason=str(status),
        status=status,
    )
