"""Per-endpoint concurrency limits shared by every process that reaches the same database.

Each endpoint with a limit of N has N slot documents (``slots``: ``_id`` = ``endpoint#i``, a
``holder`` and an ``until`` in epoch milliseconds). A call takes a free slot (nobody holds it,
or its holder's ``until`` has passed: a process that died holding it) with one compare-and-set,
and frees it when it ends; with no slot free it looks again shortly. So three workers on three
machines never have more than N calls at once at one server, and a killed worker's slots come
back by themselves after ``ttl_s``. Each process still keeps its own local limit first, so a
slot is asked for only by a call that could run.

Cost: two writes per call (take and free) plus a read when slots are scarce, all by ``_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

log = logging.getLogger(__name__)

POLL_S = 0.01  # first wait for a slot; grows to MAX_POLL_S while none is free
MAX_POLL_S = 0.1


def now_ms() -> int:
    """Epoch milliseconds, as slots store their expiry."""
    return int(time.time() * 1000)


class SharedLimits:
    """Slots in the database for ``owner`` (a runner id)."""

    def __init__(self, slots: Any, owner: str, *, ttl_s: float = 600.0) -> None:
        self.slots = slots
        self.owner = owner
        self.ttl_ms = int(ttl_s * 1000)
        self._ready: set[tuple[str, int]] = set()
        self._seq = itertools.count(1)
        self._rng = random.Random()  # spreads takers over the slots; never shapes stored data

    @contextlib.asynccontextmanager
    async def slot(self, endpoint: str, limit: int) -> AsyncIterator[None]:
        ids = [f"{endpoint}#{i}" for i in range(limit)]
        if (endpoint, limit) not in self._ready:
            await self.slots.ensure(endpoint, ids)
            self._ready.add((endpoint, limit))
        holder = f"{self.owner}#{next(self._seq)}"
        taken = await self._take(ids, holder)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # it expires by itself if this write fails
                await asyncio.shield(self.slots.free(taken, holder))

    async def _take(self, ids: list[str], holder: str) -> str:
        # first, one write on a slot picked at random, as if it were free (the common case
        # when calls are fewer than slots): no read at all
        guess = self._rng.choice(ids)
        until = now_ms() + self.ttl_ms
        if await self.slots.take(guess, holder, until, seen_holder=None, seen_until=0):
            return guess
        wait = POLL_S
        while True:
            now = now_ms()
            free = [
                d for d in await self.slots.get(ids) if not d.get("holder") or d["until"] <= now
            ]
            self._rng.shuffle(free)
            for doc in free:
                if await self.slots.take(
                    doc["_id"],
                    holder,
                    now + self.ttl_ms,
                    seen_holder=doc.get("holder"),
                    seen_until=doc["until"],
                ):
                    return str(doc["_id"])
            await asyncio.sleep(wait * (0.5 + self._rng.random()))
            wait = min(MAX_POLL_S, wait * 2)


__all__ = ["SharedLimits"]
