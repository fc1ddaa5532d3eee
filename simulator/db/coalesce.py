"""Inserts from many tasks written together: one ``insert_many`` per short window.

Every conversation of a batch stores each message before its next turn, so a process running
64 conversations makes 64 small inserts at a time. One ``insert_many`` costs the embedded server
about a third of the same documents inserted one by one (DESIGN.md, "Storage"), and a real
MongoDB one round trip instead of many. ``InsertCoalescer.insert`` queues a document and returns
once the ``insert_many`` holding it is acknowledged, so a caller still knows its document is
stored before it goes on.

The window is a group commit, not a timer: when no write is in flight, the queued documents
are written at once (after one pass of the event loop, so tasks woken together share a write);
documents queued while a write is in flight go together in the next one. An idle process waits
for nothing; a busy one writes in batches as large as its load.

``insert_many`` is unordered: a duplicate ``_id`` fails only its own document (``insert``
returns False, as a retried insert must be harmless), never its neighbours'. A document whose
caller was cancelled before its batch was sent is not written.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, WriteError

#: Documents per ``insert_many`` at most (a batch stays far below the 48 MB message limit).
MAX_BATCH = 1000
DUPLICATE_KEY = 11000
#: Callers woken per pass of the event loop when their batch is acknowledged.
WAKE_GROUP = 8

Doc = dict[str, Any]


class InsertCoalescer:
    """Coalesces ``insert`` calls on one collection (see the module docstring)."""

    def __init__(self, coll: AsyncCollection[Doc], max_batch: int = MAX_BATCH) -> None:
        self.coll = coll
        self.max_batch = max_batch
        self._queue: list[tuple[Doc, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: insert_many calls made and documents they carried (for benchmarks and tests)
        self.writes = 0
        self.documents = 0

    async def insert(self, doc: Doc) -> bool:
        """Insert ``doc``; True once stored, False when its ``_id`` was already stored."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a store used from a new event loop starts afresh
            self._loop, self._queue, self._writer = loop, [], None
        future: asyncio.Future[bool] = loop.create_future()
        self._queue.append((doc, future))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._drain(), name="coalesced inserts")
        return await future

    async def flush(self) -> None:
        """Wait until every queued document is written (before closing the client)."""
        writer = self._writer
        if writer is not None and not writer.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(writer)

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let the tasks woken with this one queue theirs
        while self._queue:
            batch = self._queue[: self.max_batch]
            del self._queue[: len(batch)]
            batch = [(doc, fut) for doc, fut in batch if not fut.cancelled()]
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[tuple[Doc, asyncio.Future[bool]]]) -> None:
        outcomes: dict[int, bool | BaseException] = {}
        self.writes += 1
        self.documents += len(batch)
        try:
            await self.coll.insert_many([doc for doc, _ in batch], ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                outcomes[int(error["index"])] = _outcome(error)
        except asyncio.CancelledError:
            # The writer itself was cancelled (the loop is closing): its callers are told,
            # and whatever the server acknowledged stays stored (a resume finds it).
            for _, fut in batch:
                if not fut.done():
                    fut.cancel()
            raise
        except Exception as exc:  # the server is gone, say: every caller of this batch fails
            outcomes = dict.fromkeys(range(len(batch)), exc)
        for i, (_, fut) in enumerate(batch):
            if i and i % WAKE_GROUP == 0:
                # Every caller of a batch wakes at once and does a turn's work before it awaits
                # again: let the loop run its timers (a UI's) between groups of them.
                await asyncio.sleep(0)
            if fut.done():
                continue
            outcome = outcomes.get(i, True)
            if isinstance(outcome, BaseException):
                fut.set_exception(outcome)
            else:
                fut.set_result(outcome)


def _outcome(error: Mapping[str, Any]) -> bool | BaseException:
    """False for a duplicate key (the document is already stored), else the error."""
    if error.get("code") == DUPLICATE_KEY:
        return False
    return WriteError(str(error.get("errmsg", "write failed")), error.get("code"), dict(error))


__all__ = ["MAX_BATCH", "InsertCoalescer"]
