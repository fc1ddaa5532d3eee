"""Running a batch: many conversations at once, each a cell of the grid, resumable at any time.

``BatchRunner.start`` stores the batch and one pending conversation per cell. A conversation's id
is derived from (batch id, cell index), so preparing the cells again after a crash (which
``run``/``resume`` always do) never creates a second conversation for a cell.

``run`` plays the batch's unfinished conversations as asyncio tasks, at most ``spec.concurrency``
at once (each model endpoint's own limit is applied by ``Backends``). A conversation that fails
ends ``failed`` with its reason; the others go on. Which conversations a run picks up:

* ``pending`` (never started), ``running`` (its process died), ``cancelled`` (a cancel stopped
  it) and ``failed`` (a model was down; its stored messages are kept and it continues from the
  last one): all of them, from their last stored message, so nothing is asked twice;
* ``done``: never.

``cancel`` marks the batch cancelled in the database. A runner watches that flag (every
``poll_s``, so a cancel typed in another process works too) and cancels its running tasks at
once; a cancel in the same process cancels them without waiting for the poll. The model call in
flight is abandoned (its answer was not stored, so a resume asks again); everything stored stays.

One runner per batch: ``run`` first claims the batch (``runner`` = ``host:pid/n``, and a
``heartbeat_at`` renewed every ``heartbeat_s``). Another runner, in this process or any other,
is refused with ``BatchInUseError`` while that lease is alive; it adopts the batch when the
heartbeat is older than ``lease_s`` or when the holder was a process on this machine that no
longer exists (a crash or a SIGKILL). The lease is released when the run ends. A runner that
finds its lease taken over (it looked dead, say after a long pause) stops its conversations and
leaves the batch to the new runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from simulator.db.store import ConversationFilter, Store
from simulator.domain import (
    Batch,
    BatchSpec,
    Conversation,
    Experiment,
    GridCell,
    ModelRef,
    Status,
    utcnow,
)
from simulator.domain.errors import NotFoundError, SimulatorError
from simulator.engine.events import BatchProgress, ConversationFailed, EventBus
from simulator.engine.grid import Prices, estimate_cells, expand_grid

log = logging.getLogger(__name__)

#: Statuses a run (and a resume) continues.
RUNNABLE = frozenset({Status.pending, Status.running, Status.cancelled, Status.failed})
PREPARE_CONCURRENCY = 8
LEASE_S = 30.0  # a batch whose runner has not renewed its heartbeat for this long is adoptable
HEARTBEAT_S = 5.0
_RUNNER_SEQ = itertools.count(1)
_ID_NAMESPACE = uuid.UUID("5b7e2a3c-0d1f-4c55-9a53-7f8e1d2b6c40")

ChooseSpeaker = Callable[[Conversation, list[str]], Awaitable[str]]


def conversation_id_for(batch_id: str, cell_index: int) -> str:
    """The id of a batch cell's conversation: the same on every attempt to create it."""
    return uuid.uuid5(_ID_NAMESPACE, f"{batch_id}/{cell_index}").hex


@dataclass
class _ActiveRun:
    batch_id: str
    tasks: set[asyncio.Task[Status]] = field(default_factory=set)
    cancelling: bool = False
    lease_lost: bool = False

    def cancel_all(self) -> None:
        self.cancelling = True
        for task in self.tasks:
            task.cancel()


class BatchInUseError(SimulatorError):
    """Another live runner holds the batch."""


class BatchRunner:
    """Creates, runs, resumes and cancels batches (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        backends: Any,
        bus: EventBus | None = None,
        *,
        poll_s: float = 0.5,
        lease_s: float = LEASE_S,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.store = store
        self.backends = backends
        self.bus = bus
        self.poll_s = poll_s
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s
        self.runner_id = f"{socket.gethostname()}:{os.getpid()}/{next(_RUNNER_SEQ)}"
        self._active: dict[str, _ActiveRun] = {}

    # ------------------------------------------------------------------ creating

    async def start(
        self, experiment: Experiment, spec: BatchSpec, owner: str = "", prices: Prices | None = None
    ) -> Batch:
        """Store the batch and a pending conversation for each cell; nothing runs yet."""
        if spec.experiment_id != experiment.id:
            spec = spec.model_copy(update={"experiment_id": experiment.id})
        cells = expand_grid(experiment, spec)
        batch = Batch(
            experiment_id=experiment.id,
            experiment_version=experiment.version,
            spec=spec,
            owner=owner,
            estimate=estimate_cells(experiment, cells, prices),
            cells_total=len(cells),
        )
        batch = await self.store.batches.create(batch)
        await self._prepare(batch, experiment, cells, existing=set())
        return batch

    async def _prepare(
        self, batch: Batch, experiment: Experiment, cells: list[GridCell], existing: set[str]
    ) -> int:
        """Create the conversations of cells that have none (idempotent); returns how many."""
        from simulator.engine.conversation import prepare_conversation

        missing = [i for i in range(len(cells)) if conversation_id_for(batch.id, i) not in existing]
        gate = asyncio.Semaphore(PREPARE_CONCURRENCY)

        async def one(i: int) -> None:
            async with gate:
                await prepare_conversation(
                    self.store,
                    experiment,
                    cells[i],
                    batch_id=batch.id,
                    owner=batch.owner,
                    cell_index=i,
                    conversation_id=conversation_id_for(batch.id, i),
                )

        await asyncio.gather(*(one(i) for i in missing))
        return len(missing)

    # ------------------------------------------------------------------ running

    async def run(
        self,
        batch_id: str,
        choose_speaker: ChooseSpeaker | None = None,
    ) -> Batch:
        """Run every unfinished conversation of the batch; returns the batch as it ended."""
        batch = await self.get(batch_id)
        if batch_id in self._active:
            raise SimulatorError(
                f"Batch {batch_id} is already running in this session.", title="Already running"
            )
        experiment = await self.store.experiments.get(batch.experiment_id)
        if experiment is None:
            raise NotFoundError(
                f"The experiment of batch {batch_id} ({batch.experiment_id}) no longer exists."
            )
        await self._claim(batch_id)
        try:
            await self._run_claimed(batch, experiment, choose_speaker)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._release(batch_id))
        return await self.get(batch_id)

    async def _run_claimed(
        self, batch: Batch, experiment: Experiment, choose_speaker: ChooseSpeaker | None
    ) -> None:
        batch_id = batch.id
        conversations = await self._conversations(batch_id)
        cells = expand_grid(experiment, batch.spec)
        if await self._prepare(batch, experiment, cells, {c.id for c in conversations}):
            conversations = await self._conversations(batch_id)
        todo = [c for c in conversations if c.status in RUNNABLE]
        await self._ensure_models(batch, todo)
        counts = _Counts(
            total=len(conversations),
            done=sum(c.status is Status.done for c in conversations),
            failed=0,  # failed ones run again: counted when they end
        )
        await self.store.batches.set_fields(
            batch_id, status=Status.running, error=None, finished_at=None
        )
        await self._progress(batch_id, counts)
        active = self._active[batch_id] = _ActiveRun(batch_id)
        watcher = asyncio.create_task(self._watch_cancel(active))
        gate = asyncio.Semaphore(batch.spec.concurrency)
        try:
            for conv in todo:
                task = asyncio.create_task(
                    self._run_one(conv, gate, active, counts, choose_speaker),
                    name=f"conversation {conv.id}",
                )
                active.tasks.add(task)
            if active.tasks:
                await asyncio.gather(*active.tasks, return_exceptions=True)
        except asyncio.CancelledError:
            # This run itself was cancelled (Ctrl-C, app exit): stop the conversations, keep
            # every stored message, and leave the batch resumable.
            active.cancel_all()
            await asyncio.gather(*active.tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.shield(self._finish(batch_id, counts, interrupted=True))
            raise
        finally:
            watcher.cancel()
            self._active.pop(batch_id, None)
        if not active.lease_lost:  # else another runner has the batch: its state is theirs
            await self._finish(batch_id, counts, interrupted=active.cancelling)

    async def resume(self, batch_id: str, choose_speaker: ChooseSpeaker | None = None) -> Batch:
        """Continue a batch: create missing cells, run unfinished conversations from their last
        stored message (see RUNNABLE). A finished batch is returned unchanged."""
        batch = await self.get(batch_id)
        if batch.status is Status.done:
            return batch
        return await self.run(batch_id, choose_speaker)

    async def cancel(self, batch_id: str) -> Batch:
        """Mark the batch cancelled and stop its running conversations (here at once, in another
        process within ``poll_s``). ``resume`` continues it later."""
        batch = await self.get(batch_id)
        if batch.status is Status.done:
            return batch
        await self.store.batches.set_fields(batch_id, status=Status.cancelled)
        active = self._active.get(batch_id)
        if active is not None:
            active.cancel_all()
        return batch.model_copy(update={"status": Status.cancelled})

    async def progress(self, batch_id: str) -> BatchProgress:
        """The batch's counts as stored: conversations done, failed, and in all."""
        convs = await self._conversations(batch_id)
        return BatchProgress(
            batch_id,
            done=sum(c.status is Status.done for c in convs),
            failed=sum(c.status is Status.failed for c in convs),
            total=len(convs),
        )

    async def get(self, batch_id: str) -> Batch:
        batch = await self.store.batches.get(batch_id)
        if batch is None:
            raise NotFoundError(f"There is no batch {batch_id}.")
        return batch

    # ------------------------------------------------------------------ internals

    async def _conversations(self, batch_id: str) -> list[Conversation]:
        """The batch's conversations without their prompts (read again when one runs): one
        indexed query, paged and converted off the event loop."""
        flt = ConversationFilter(batch_id=batch_id)
        return await self.store.conversations.list(flt, brief=True)

    async def _run_one(
        self,
        conv: Conversation,
        gate: asyncio.Semaphore,
        active: _ActiveRun,
        counts: _Counts,
        choose_speaker: ChooseSpeaker | None,
    ) -> Status:
        from simulator.engine.conversation import run_conversation

        async with gate:
            if active.cancelling:
                return conv.status
            try:
                ended = await run_conversation(
                    self.store,
                    self.backends,
                    conv.id,
                    bus=self.bus,
                    choose_speaker=choose_speaker,
                )
                status = ended.status
            except asyncio.CancelledError:
                await self._mark(conv.id, Status.cancelled, None)
                if not active.cancelling:
                    raise
                return Status.cancelled
            except Exception as exc:  # one conversation's failure never stops the others
                reason = _reason(exc)
                log.warning("conversation %s failed: %s", conv.id, reason, exc_info=exc)
                await self._mark(conv.id, Status.failed, reason)
                await self._publish(ConversationFailed(conv.id, conv.batch_id, reason))
                status = Status.failed
        if status is Status.done:
            counts.done += 1
        elif status is Status.failed:
            counts.failed += 1
        await self._progress(active.batch_id, counts)
        return status

    async def _ensure_models(self, batch: Batch, todo: list[Conversation]) -> None:
        """Check (and for Ollama, pull) every model the remaining conversations use, once, before
        any runs: an unreachable server or a misspelt model fails the batch at once with the
        reason instead of failing every conversation. The batch stays resumable."""
        ensure = getattr(self.backends, "ensure_available", None)
        if ensure is None or not todo:
            return
        refs: dict[str, ModelRef] = {}
        for conv in todo:
            ms = conv.cell.models
            for ref in (ms.default, *ms.per_role.values(), ms.summarizer_model, ms.manager_model):
                refs.setdefault(ref.model_dump_json(), ref)
            for agent in conv.agents:
                refs.setdefault(agent.model.model_dump_json(), agent.model)
        try:
            await ensure(list(refs.values()))
        except SimulatorError as exc:
            await self.store.batches.set_fields(
                batch.id, status=Status.failed, error=_reason(exc), finished_at=utcnow()
            )
            raise

    async def _mark(self, conversation_id: str, status: Status, error: str | None) -> None:
        with contextlib.suppress(Exception):
            await asyncio.shield(
                self.store.conversations.set_fields(
                    conversation_id, status=status, error=error, finished_at=utcnow()
                )
            )

    async def _watch_cancel(self, active: _ActiveRun) -> None:
        """Stop the run when the batch is marked cancelled (possibly by another process), and
        renew this runner's lease every ``heartbeat_s``."""
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while not active.cancelling:
            await asyncio.sleep(self.poll_s)
            try:
                if loop.time() - renewed >= self.heartbeat_s:
                    mine = await self.store.batches.update_if(
                        active.batch_id,
                        lambda b: b.runner == self.runner_id,
                        heartbeat_at=utcnow(),
                    )
                    renewed = loop.time()
                    if mine is None:
                        log.warning(
                            "batch %s was taken over by another runner; stopping here",
                            active.batch_id,
                        )
                        active.lease_lost = True
                        active.cancel_all()
                        return
                batch = await self.store.batches.get(active.batch_id)
            except Exception:  # a hiccup of the database: try again at the next poll
                log.debug("cancel watcher could not read batch %s", active.batch_id)
                continue
            if batch is not None and batch.status is Status.cancelled:
                log.info("batch %s was cancelled; stopping its conversations", active.batch_id)
                active.cancel_all()

    # ------------------------------------------------------------------ the lease

    async def _claim(self, batch_id: str) -> None:
        now = utcnow()
        claimed = await self.store.batches.update_if(
            batch_id, lambda b: self._may_take(b, now), runner=self.runner_id, heartbeat_at=now
        )
        if claimed is not None:
            return
        holder = await self.get(batch_id)
        age = "" if holder.heartbeat_at is None else f", last seen {_ago(holder.heartbeat_at)}"
        raise BatchInUseError(
            f"Batch {batch_id[:8]} is being run by {holder.runner}{age}. Leave it running "
            f"there, or stop it with 'simulator cancel {batch_id[:8]}' and resume it here "
            f"(a runner that stops answering is taken over after {self.lease_s:.0f} s).",
            title="Batch already running",
        )

    def _may_take(self, batch: Batch, now: datetime) -> bool:
        """Free, ours, stale, or held by a process of this machine that is gone."""
        if batch.runner is None or batch.runner == self.runner_id:
            return True
        if batch.heartbeat_at is None:
            return True
        if now - batch.heartbeat_at > timedelta(seconds=self.lease_s):
            return True
        host, _, rest = batch.runner.partition(":")
        pid = rest.split("/", 1)[0]
        if host == socket.gethostname() and pid.isdigit() and int(pid) != os.getpid():
            return not _process_alive(int(pid))
        return False

    async def _release(self, batch_id: str) -> None:
        await self.store.batches.update_if(
            batch_id, lambda b: b.runner == self.runner_id, runner=None, heartbeat_at=None
        )

    async def _finish(self, batch_id: str, counts: _Counts, *, interrupted: bool) -> Batch:
        conversations = await self._conversations(batch_id)
        done = sum(c.status is Status.done for c in conversations)
        failed = sum(c.status is Status.failed for c in conversations)
        counts.done, counts.failed, counts.total = done, failed, len(conversations)
        fields: dict[str, Any]
        if interrupted:
            fields = {"status": Status.cancelled, "finished_at": None}
        elif done == len(conversations):
            fields = {"status": Status.done, "finished_at": utcnow(), "error": None}
        elif failed:
            fields = {
                "status": Status.failed,
                "finished_at": utcnow(),
                "error": f"{failed} of {len(conversations)} conversations failed; "
                "resume the batch to retry them.",
            }
        else:  # something stopped conversations without failing them: leave it resumable
            fields = {"status": Status.cancelled, "finished_at": None}
        await self.store.batches.set_fields(batch_id, **fields)
        await self._progress(batch_id, counts)
        return await self.get(batch_id)

    async def _progress(self, batch_id: str, counts: _Counts) -> None:
        await self._publish(BatchProgress(batch_id, counts.done, counts.failed, counts.total))

    async def _publish(self, event: Any) -> None:
        if self.bus is not None:
            await self.bus.publish(event)


@dataclass
class _Counts:
    total: int
    done: int
    failed: int


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _ago(when: datetime) -> str:
    seconds = max(0, int((utcnow() - when).total_seconds()))
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SimulatorError):
        return f"{exc.title}: {exc}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


__all__ = ["RUNNABLE", "BatchInUseError", "BatchRunner", "conversation_id_for"]
