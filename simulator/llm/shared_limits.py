"""Per-endpoint concurrency limits shared by every process that reaches the same database.

Each endpoint with a limit of N has N slot documents (``slots``: ``_id`` = ``endpoint#i``, a
``holder`` and an ``until`` in epoch milliseconds). A call takes a free slot (nobody holds it,
or its holder's ``until`` has passed: a process that died holding it) with one compare-and-set,
and frees it when it ends; with no slot free it looks again shortly. So three workers on three
machines never have more than N calls at once at one server, and a killed worker's slots come
back by themselves after ``ttl_s``. Each process still keeps its own local limit first, so a
slot is asked for only by a call that could run.

A slot this process took is kept for its next call of the same endpoint for a moment
(``LINGER_S`` after a call ends, and for at most ``KEEP_S`` since it was taken from the
database): a conversation's next turn usually follows within milliseconds, and reusing the slot
in-process costs no write. So under load a slot costs two writes per ``KEEP_S``, not two per
call (2 writes per call made the database, not the model servers, bound three workers on one
machine: benchmarks/pools_workers.py). ``KEEP_S`` bounds how long one process can keep a slot
other processes are waiting for; ``release_idle`` frees the kept slots at the end of a run, and
a process killed while keeping some loses them after ``ttl_s`` as with a call in flight.

Cost: two writes per slot taken (take and free) plus a read when slots are scarce, all by
``_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

POLL_S = 0.01  # first wait for a slot; grows to MAX_POLL_S while none is free
MAX_POLL_S = 0.1
LINGER_S = 0.1  # a slot whose call ended waits this long for this process's next call
KEEP_S = 2.0  # then (or this long after it was taken) it is freed for every process


def now_ms() -> int:
    """Epoch milliseconds, as slots store their expiry."""
    return int(time.time() * 1000)


@dataclass
class _Kept:
    """A slot this process holds in the database."""

    slot_id: str
    holder: str
    taken_at: float  # monotonic
    free_at: asyncio.TimerHandle | None = None  # while idle: when it is freed


class SharedLimits:
    """Slots in the database for ``owner`` (a runner id)."""

    def __init__(
        self,
        slots: Any,
        owner: str,
        *,
        ttl_s: float = 600.0,
        linger_s: float = LINGER_S,
        keep_s: float = KEEP_S,
    ) -> None:
        self.slots = slots
        self.owner = owner
        self.ttl_ms = int(ttl_s * 1000)
        self.linger_s = linger_s
        self.keep_s = keep_s
        self._ready: set[tuple[str, int]] = set()
        self._seq = itertools.count(1)
        self._rng = random.Random()  # spreads takers over the slots; never shapes stored data
        self._idle: dict[str, list[_Kept]] = {}  # endpoint -> slots kept here, not in use
        self._freeing: set[asyncio.Task[None]] = set()
        #: slots taken from the database and calls that reused a kept one (for benchmarks)
        self.taken = 0
        self.reused = 0

    @contextlib.asynccontextmanager
    async def slot(self, endpoint: str, limit: int) -> AsyncIterator[None]:
        ids = [f"{endpoint}#{i}" for i in range(limit)]
        if (endpoint, limit) not in self._ready:
            await self.slots.ensure(endpoint, ids)
            self._ready.add((endpoint, limit))
        kept = self._reuse(endpoint, ids)
        if kept is None:
            holder = f"{self.owner}#{next(self._seq)}"
            kept = _Kept(await self._take(ids, holder), holder, time.monotonic())
            self.taken += 1
        else:
            self.reused += 1
        ended = False
        try:
            yield
            ended = True
        finally:
            if ended and time.monotonic() - kept.taken_at < self.keep_s:
                self._park(endpoint, kept)
            else:  # a cancelled or failed call frees its slot at once
                await self._free(kept)

    def idle_endpoints(self) -> set[str]:
        """Endpoints where this process keeps a slot it is not using now."""
        return {endpoint for endpoint, idle in self._idle.items() if idle}

    def _reuse(self, endpoint: str, ids: list[str]) -> _Kept | None:
        idle = self._idle.get(endpoint)
        while idle:
            kept = idle.pop()
            if kept.free_at is not None:
                kept.free_at.cancel()
                kept.free_at = None
            if kept.slot_id in ids and time.monotonic() - kept.taken_at < self.keep_s:
                return kept
            self._free_later(kept)  # kept too long (or the endpoint's limit changed)
        return None

    def _park(self, endpoint: str, kept: _Kept) -> None:
        loop = asyncio.get_running_loop()
        self._idle.setdefault(endpoint, []).append(kept)
        kept.free_at = loop.call_later(self.linger_s, self._unpark, endpoint, kept)

    def _unpark(self, endpoint: str, kept: _Kept) -> None:
        idle = self._idle.get(endpoint, [])
        if kept in idle:
            idle.remove(kept)
            kept.free_at = None
            self._free_later(kept)

    def _free_later(self, kept: _Kept) -> None:
        task = asyncio.get_running_loop().create_task(self._free(kept))
        self._freeing.add(task)
        task.add_done_callback(self._freeing.discard)

    async def _free(self, kept: _Kept) -> None:
        with contextlib.suppress(Exception):  # it expires by itself if this write fails
            await asyncio.shield(self.slots.free(kept.slot_id, kept.holder))

    async def release_idle(self) -> None:
        """Free every slot kept here and not in use, and wait for the frees under way (the end
        of a run: other processes must not wait for the linger of a process that is done)."""
        for idle in self._idle.values():
            while idle:
                kept = idle.pop()
                if kept.free_at is not None:
                    kept.free_at.cancel()
                self._free_later(kept)
        if self._freeing:
            await asyncio.gather(*list(self._freeing), return_exceptions=True)

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
