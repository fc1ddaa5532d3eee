"""Running a batch: many conversations at once, each a cell of the grid, resumable at any time.

``BatchRunner.start`` stores the batch and one pending conversation per cell. A conversation's id
is derived from (batch id, cell index), so preparing the cells again after a crash (which
``run``/``resume`` always do) never creates a second conversation for a cell.

``run`` plays the batch's unfinished conversations as asyncio tasks, at most ``spec.concurrency``
at once (each model endpoint's own limit is applied by ``Backends``). A conversation that fails
ends ``failed`` with its reason; the others go on. Which conversations a run picks up:

* ``pending`` (never started), ``running`` (its process died), ``interrupted`` (stopped from
  outside), ``cancelled`` (a cancel stopped it) and ``failed`` (a model was down; its stored
  messages are kept and it continues from the last one): all of them, from their last stored
  message, so nothing is asked twice;
* ``done``: never.

Nothing is stored before the batch can run: ``start`` checks every model first (``preflight``),
so a batch refused by its preflight leaves no trace.

Two ways to stop, each stored with its ``stop_reason`` on the batch and its conversations:

* ``cancel`` (on purpose) marks the batch ``cancelled`` in the database. A runner watches that
  flag (every ``poll_s``, so a cancel typed in another process works too) and cancels its
  running tasks at once; a cancel in the same process cancels them without waiting for the poll.
* ``interrupt`` (Ctrl-C, SIGTERM, the app closing) and a cancelled ``run`` task store
  ``interrupted``.

The model call in flight is abandoned (its answer was not stored, so a resume asks again);
everything stored stays.

A dying database: the first failure to reach it (``db.store.is_store_unreachable``) stops the
scheduling of new conversations and stops the running ones at once (their next write could only
wait for the same dead server); the run then tries briefly to store ``interrupted`` with the
reason and raises ``StoreLostError`` with the resume command. If the database does not answer
in time, the next ``run``/``resume`` records the interruption when it adopts the batch.

Each run meters its model calls (``simulator.llm.metered.BatchCalls``, docs/cost.md): the
batch's response cache mode (``spec.cache``), its cost ledger (stored in ``ledgers`` about once
a second and at the end, published as ``LedgerUpdated``; a ledger left by a run that died is
rebuilt from the stored messages) and its budget caps (``spec.max_cost_usd``,
``spec.max_total_tokens``). A cap stops the batch cleanly: no new conversation starts, each
running one stops before its next call (the calls in flight end and are stored), and the batch
is stored ``interrupted`` with the cap as its ``stop_reason``; ``set_caps`` raises a cap and a
resume continues.

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
from enum import Enum
from typing import Any

from simulator.db.store import (
    STORE_LOST,
    ConversationFilter,
    Store,
    is_store_unreachable,
    message_count_hint,
)
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
from simulator.domain.errors import (
    DatabaseUnavailableError,
    NotFoundError,
    SimulatorError,
    SpecError,
)
from simulator.domain.models import CacheMode, Ledger
from simulator.engine.events import BatchProgress, ConversationFailed, Event, EventBus, StoreLost
from simulator.engine.grid import Prices, estimate_cells, expand_grid
from simulator.engine.kinds import KindCatalog, resolve
from simulator.engine.ledger import LedgerUpdated, learned_rates, rebuild
from simulator.llm.base import ChatService
from simulator.llm.metered import BatchCalls, Caps
from simulator.llm.prices import PriceTable

log = logging.getLogger(__name__)

#: Statuses a run (and a resume) continues.
RUNNABLE = frozenset(
    {Status.pending, Status.running, Status.interrupted, Status.cancelled, Status.failed}
)
PREPARE_CONCURRENCY = 8
LEASE_S = 30.0  # a batch whose runner has not renewed its heartbeat for this long is adoptable
HEARTBEAT_S = 5.0
LAST_WRITE_S = 1.5  # after the database failed: how long to try to store the interruption
LEDGER_S = 1.0  # how often a running batch stores and publishes its ledger (when it changed)

#: Stop reasons (``Batch.stop_reason``, ``Conversation.stop_reason``).
REASON_STOPPED = "the run was stopped (its process was interrupted or closed)"
REASON_CANCELLED = "cancelled"
REASON_DATABASE = STORE_LOST
REASON_ABANDONED = (
    "its runner {runner} stopped without finishing (killed, crashed, or lost the database)"
)
_RUNNER_SEQ = itertools.count(1)
# (runner, batch) pairs running in this process: a lease held by a runner of this process that is
# not in here is left over (its run ended without releasing it, e.g. when the database was lost).
_RUNNING_HERE: set[tuple[str, str]] = set()
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
    stop_status: Status = Status.interrupted
    stop_reason: str = REASON_STOPPED
    store_error: BaseException | None = None  # the first failure to reach the database
    interruption_stored: bool = False  # after that failure, the database answered again
    capped: str | None = None  # a budget cap stopped the batch: why (see BatchCalls)
    ledger_changed: bool = False  # since the ledger was last stored and published

    def stop(self, status: Status, reason: str, message: str | None = None) -> None:
        """Stop every conversation; the first reason given is the one stored. ``message`` goes
        with the tasks' cancellation (``STORE_LOST``: do not try to store anything)."""
        if not self.cancelling:
            self.stop_status, self.stop_reason = status, reason
        self.cancel_all(message)

    def cancel_all(self, message: str | None = None) -> None:
        self.cancelling = True
        for task in self.tasks:
            task.cancel(message)


class BatchInUseError(SimulatorError):
    """Another live runner holds the batch."""


class StoreLostError(DatabaseUnavailableError):
    """The database stopped answering during a run: the run stopped, the batch is resumable."""

    title = "Database lost"

    def __init__(self, message: str, batch_id: str) -> None:
        super().__init__(message)
        self.batch_id = batch_id


class BatchRunner:
    """Creates, runs, resumes and cancels batches (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        backends: ChatService | None,
        bus: EventBus | None = None,
        *,
        poll_s: float = 0.5,
        lease_s: float = LEASE_S,
        heartbeat_s: float = HEARTBEAT_S,
        kinds: KindCatalog | None = None,
    ) -> None:
        self.store = store
        #: The experiment kinds this runner plays (None: the registry installed for the process).
        self.kinds = kinds
        self.backends = backends
        self.bus = bus
        self.poll_s = poll_s
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s
        self.runner_id = f"{socket.gethostname()}:{os.getpid()}/{next(_RUNNER_SEQ)}"
        self._active: dict[str, _ActiveRun] = {}
        self._checked: set[str] = set()  # batches whose models this runner checked at start

    @property
    def models(self) -> ChatService:
        """The backends runs call; a runner made without them lists, cancels and reports."""
        if self.backends is None:
            raise SimulatorError(
                "This batch runner has no model backends: it can list, cancel and report "
                "batches, not run them.",
                title="Cannot run batches",
            )
        return self.backends

    # ------------------------------------------------------------------ creating

    async def start(
        self,
        experiment: Experiment,
        spec: BatchSpec,
        owner: str = "",
        prices: Prices | None = None,
        *,
        preflight: bool = True,
    ) -> Batch:
        """Store the batch and a pending conversation for each cell; nothing runs yet. The
        models are checked first (``preflight``; False: the caller just did)."""
        if spec.experiment_id != experiment.id:
            spec = spec.model_copy(update={"experiment_id": experiment.id})
        cells = expand_grid(experiment, spec, self.kinds)
        check_cost_cap(spec, cells, prices)
        if preflight:
            await self.preflight(experiment, cells)  # nothing is stored for a batch that cannot run
        rates = await learned_rates(self.store, experiment.id)  # earlier batches' measurements
        batch = Batch(
            experiment_id=experiment.id,
            experiment_version=experiment.version,
            spec=spec,
            owner=owner,
            estimate=estimate_cells(experiment, cells, prices, self.kinds, rates or None),
            cells_total=len(cells),
            prices={str(k): dict(v) for k, v in (prices or {}).items()},
        )
        batch = await self.store.batches.create(batch)
        await self._prepare(batch, experiment, cells, existing=set())
        self._checked.add(batch.id)
        return batch

    async def preflight(self, experiment: Experiment, cells: list[GridCell]) -> None:
        """Check (and for Ollama, pull) every model the cells use; raises the backend's
        SimulatorError (server down, model unknown) before anything is stored. The kind is made
        ready first: its scripted policies are models the dryrun backend checks."""
        resolve(self.kinds).prepare(experiment.kind)
        refs: dict[str, ModelRef] = {}
        for cell in cells:
            ms = cell.models
            per_role = [ms.for_role(r.name) for r in experiment.roles]
            for ref in (ms.default, *per_role, ms.summarizer_model, ms.manager_model):
                refs.setdefault(ref.model_dump_json(), ref)
        await self._ensure(list(refs.values()))

    async def _ensure(self, refs: list[ModelRef]) -> None:
        ensure = getattr(self.backends, "ensure_available", None)
        if ensure is not None and refs:
            await ensure(refs)

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
                    kinds=self.kinds,
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
        self.models  # noqa: B018  (a runner without backends refuses before claiming anything)
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
        previous = await self._claim(batch_id)
        _RUNNING_HERE.add((self.runner_id, batch_id))
        lost: _ActiveRun | None = None
        try:
            await self._record_abandoned(previous)
            lost = await self._run_claimed(batch, experiment, choose_speaker)
        except Exception as exc:
            if not is_store_unreachable(exc):
                raise
            lost = _ActiveRun(batch_id, store_error=exc)  # before any conversation started
        finally:
            # Without a database the lease cannot be released: it goes stale by itself (and a
            # runner of this machine sees at once that this process is gone).
            _RUNNING_HERE.discard((self.runner_id, batch_id))
            if lost is None or lost.interruption_stored:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._release(batch_id))
        if lost is not None:
            raise self._lost_error(batch, lost)
        return await self.get(batch_id)

    async def _run_claimed(
        self, batch: Batch, experiment: Experiment, choose_speaker: ChooseSpeaker | None
    ) -> _ActiveRun | None:
        """Run the claimed batch; returns the run when the database was lost (else None)."""
        batch_id = batch.id
        resolve(self.kinds).prepare(experiment.kind)  # its scripted policies, before the models
        conversations = await self._conversations(batch_id)
        cells = expand_grid(experiment, batch.spec, self.kinds)
        if await self._prepare(batch, experiment, cells, {c.id for c in conversations}):
            conversations = await self._conversations(batch_id)
        todo = [c for c in conversations if c.status in RUNNABLE]
        new_run = getattr(self.backends, "new_run", None)
        if new_run is not None:  # each run checks again that its servers read system prompts
            new_run()
        check_cost_cap(batch.spec, cells, batch.prices)
        await self._ensure_models(batch, todo)
        counts = _Counts(
            total=len(conversations),
            done=sum(c.status is Status.done for c in conversations),
            failed=0,  # failed ones run again: counted when they end
        )
        active = _ActiveRun(batch_id)
        calls = await self._metered(batch, active)
        capped = calls.over_cap() if todo else None
        if capped is not None:  # nothing can run until the cap is raised
            await self._save_ledger(calls, final=True)
            await self.store.batches.set_fields(
                batch_id, status=Status.interrupted, stop_reason=capped, finished_at=None
            )
            await self._progress(batch_id, counts)
            return None
        await self.store.batches.set_fields(
            batch_id, status=Status.running, error=None, stop_reason=None, finished_at=None
        )
        await self._progress(batch_id, counts)
        self._active[batch_id] = active
        watcher = asyncio.create_task(self._watch_cancel(active))
        keeper = asyncio.create_task(self._keep_ledger(active, calls))
        gate = asyncio.Semaphore(batch.spec.concurrency)
        try:
            for conv in todo:
                task = asyncio.create_task(
                    self._run_one(conv, gate, active, counts, choose_speaker, calls),
                    name=f"conversation {conv.id}",
                )
                active.tasks.add(task)
            if active.tasks:
                await asyncio.gather(*active.tasks, return_exceptions=True)
        except asyncio.CancelledError:
            # This run itself was cancelled (Ctrl-C, app exit): stop the conversations, keep
            # every stored message, and leave the batch resumable, stored as interrupted.
            active.stop(Status.interrupted, REASON_STOPPED)
            await asyncio.gather(*active.tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.shield(self._save_ledger(calls, final=True))
            with contextlib.suppress(Exception):
                await asyncio.shield(self._finish(batch_id, counts, active))
            raise
        finally:
            watcher.cancel()
            keeper.cancel()
            self._active.pop(batch_id, None)
        if active.store_error is not None:
            with contextlib.suppress(Exception):  # the database may answer again meanwhile
                await asyncio.wait_for(self._store_interruption(active), LAST_WRITE_S)
                active.interruption_stored = True
            return active
        if not active.lease_lost:  # else another runner has the batch: its state is theirs
            # shielded: an app closing right after ``interrupt`` must not cut this write short
            await asyncio.shield(self._save_ledger(calls, final=True))
            stopped = active.cancelling or active.capped is not None
            await asyncio.shield(self._finish(batch_id, counts, active if stopped else None))
        return None

    async def resume(self, batch_id: str, choose_speaker: ChooseSpeaker | None = None) -> Batch:
        """Continue a batch: create missing cells, run unfinished conversations from their last
        stored message (see RUNNABLE). A finished batch is returned unchanged."""
        batch = await self.get(batch_id)
        if batch.status is Status.done:
            return batch
        return await self.run(batch_id, choose_speaker)

    async def set_caps(
        self,
        batch_id: str,
        *,
        max_cost_usd: float | None = None,
        max_total_tokens: int | None = None,
    ) -> Batch:
        """Change a batch's budget caps (those given; the others stay), e.g. raise the one that
        stopped it before ``resume``. Checked like a spec's (bounds, prices for a cost cap)."""
        batch = await self.get(batch_id)
        update: dict[str, Any] = {}
        if max_cost_usd is not None:
            update["max_cost_usd"] = max_cost_usd
        if max_total_tokens is not None:
            update["max_total_tokens"] = max_total_tokens
        if not update:
            return batch
        from pydantic import ValidationError

        try:
            spec = BatchSpec.model_validate({**batch.spec.model_dump(), **update})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "caps"
            raise SpecError(f"{where}: {first.get('msg', 'invalid')}") from None
        experiment = await self.store.experiments.get(batch.experiment_id)
        if experiment is not None:
            check_cost_cap(spec, expand_grid(experiment, spec), batch.prices)
        await self.store.batches.set_fields(batch_id, spec=spec)
        return batch.model_copy(update={"spec": spec})

    async def cancel(self, batch_id: str, reason: str = REASON_CANCELLED) -> Batch:
        """Mark the batch cancelled and stop its running conversations (here at once, in another
        process within ``poll_s``). ``resume`` continues it later."""
        batch = await self.get(batch_id)
        if batch.status is Status.done:
            return batch
        await self.store.batches.set_fields(batch_id, status=Status.cancelled, stop_reason=reason)
        active = self._active.get(batch_id)
        if active is not None:
            active.stop(Status.cancelled, reason)
        return batch.model_copy(update={"status": Status.cancelled, "stop_reason": reason})

    def interrupt(self, reason: str, batch_id: str | None = None) -> list[str]:
        """Stop the batches this runner is running (or only ``batch_id``) as ``interrupted``
        with ``reason`` ("Ctrl-C (SIGINT)", "the app was closed"); returns their ids. Their
        ``run`` calls end as soon as the conversations have stored their state."""
        stopped = []
        for active in list(self._active.values()):
            if batch_id is None or active.batch_id == batch_id:
                active.stop(Status.interrupted, reason)
                stopped.append(active.batch_id)
        return stopped

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
        calls: BatchCalls | None = None,
    ) -> Status:
        from simulator.engine.conversation import run_conversation

        async with gate:
            if active.cancelling or active.capped is not None:
                return conv.status
            backends: ChatService = self.models
            if calls is not None:
                backends = calls.for_conversation(
                    conv.id,
                    repeat=conv.cell.repeat,
                    seed=conv.seed,
                    stored=None
                    if conv.status is Status.pending
                    else lambda: self.store.messages.list(conv.id),
                )
            try:
                ended = await run_conversation(
                    self.store,
                    backends,
                    conv.id,
                    bus=self.bus,
                    choose_speaker=choose_speaker,
                    kinds=self.kinds,
                )
                status = ended.status
            except asyncio.CancelledError:
                if active.capped is not None and not active.cancelling:
                    # a budget cap: this conversation stopped before its next call
                    await self._mark(conv.id, Status.interrupted, None, stop_reason=active.capped)
                    return Status.interrupted
                if active.store_error is None:
                    reason = active.stop_reason if active.cancelling else REASON_STOPPED
                    status = active.stop_status if active.cancelling else Status.interrupted
                    await self._mark(conv.id, status, None, stop_reason=reason)
                if not active.cancelling:
                    raise
                return active.stop_status
            except Exception as exc:  # one conversation's failure never stops the others
                if is_store_unreachable(exc):
                    await self._store_lost(active, exc)
                    return Status.interrupted
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

    async def _metered(self, batch: Batch, active: _ActiveRun) -> BatchCalls:
        """The batch's metered calls for this run: its cache mode, prices, caps and ledger."""
        spec = batch.spec

        def on_cap(reason: str) -> None:
            if active.capped is None:
                active.capped = reason
                active.stop_status, active.stop_reason = Status.interrupted, reason

        def on_change() -> None:
            active.ledger_changed = True

        responses = getattr(self.store, "responses", None)
        if spec.cache is not CacheMode.off and responses is None:
            raise SimulatorError(
                f"Batch {batch.id} uses the response cache ({spec.cache.value}), which this "
                "store does not keep.",
                title="No response cache",
            )
        return BatchCalls(
            self.models,
            batch_id=batch.id,
            mode=spec.cache,
            prices=PriceTable(batch.prices),
            ledger=await self._open_ledger(batch),
            caps=Caps(max_cost_usd=spec.max_cost_usd, max_total_tokens=spec.max_total_tokens),
            responses=responses,
            on_cap=on_cap,
            on_change=on_change,
        )

    async def _open_ledger(self, batch: Batch) -> Ledger:
        """The batch's stored ledger, marked as written by this run; rebuilt from the stored
        messages when its last run did not end cleanly (or the batch ran before ledgers)."""
        repo = getattr(self.store, "ledgers", None)
        ledger = await repo.get(batch.id) if repo is not None else None
        if ledger is None and batch.status is Status.pending:
            ledger = Ledger(batch_id=batch.id)
        elif ledger is None or ledger.runner is not None:
            convs = await self._conversations(batch.id)
            hints = {c.id: message_count_hint(c) for c in convs}  # read by computed ids
            stored = await self.store.messages.list_many([c.id for c in convs], hints)
            ledger = rebuild(batch.id, stored)
        ledger.runner = self.runner_id
        if repo is not None:
            await repo.put(ledger)
        return ledger

    async def _save_ledger(self, calls: BatchCalls, *, final: bool = False) -> None:
        """Store the ledger (``final``: this run's last write, which marks it complete) and
        publish it."""
        ledger = calls.ledger.model_copy(deep=True)
        ledger.updated_at = utcnow()
        if final:
            ledger.runner = None
        repo = getattr(self.store, "ledgers", None)
        if repo is not None:
            await repo.put(ledger)
        await self._publish(LedgerUpdated(calls.batch_id, ledger))

    async def _keep_ledger(self, active: _ActiveRun, calls: BatchCalls) -> None:
        """Store and publish the ledger about once a second while it changes."""
        while True:
            await asyncio.sleep(LEDGER_S)
            if not active.ledger_changed or active.store_error is not None:
                continue
            active.ledger_changed = False
            try:
                await self._save_ledger(calls)
            except Exception as exc:  # the messages hold the truth: a resume rebuilds it
                if is_store_unreachable(exc):
                    return
                log.warning("batch %s: ledger not stored (%s)", active.batch_id, _reason(exc))

    async def _store_lost(self, active: _ActiveRun, exc: BaseException) -> None:
        """The first failure to reach the database: schedule nothing more, stop what runs."""
        if active.store_error is not None:
            return
        active.store_error = exc
        log.warning("batch %s: the database stopped answering (%s); stopping", active.batch_id,
                    _reason(exc))  # fmt: skip
        active.stop(Status.interrupted, REASON_DATABASE, STORE_LOST)
        await self._publish(StoreLost(active.batch_id, _reason(exc)))

    async def _store_interruption(self, active: _ActiveRun) -> None:
        """Record a lost run as interrupted (when the database answers again in time)."""
        fields = {"status": Status.interrupted, "stop_reason": active.stop_reason}
        await self.store.batches.set_fields(active.batch_id, **fields)
        for conv in await self._conversations(active.batch_id):
            if conv.status is Status.running:
                await self.store.conversations.set_fields(conv.id, **fields)

    async def _record_abandoned(self, previous: Batch) -> None:
        """A batch adopted from a runner that is gone (killed, crashed, or cut off from the
        database) is recorded as interrupted, with that reason, before it runs again."""
        if previous.status is not Status.running or previous.runner in (None, self.runner_id):
            return
        reason = REASON_ABANDONED.format(runner=previous.runner)
        fields = {"status": Status.interrupted, "stop_reason": reason}
        await self.store.batches.set_fields(previous.id, **fields)
        for conv in await self._conversations(previous.id):
            if conv.status is Status.running:
                await self.store.conversations.set_fields(conv.id, **fields)

    def _lost_error(self, batch: Batch, active: _ActiveRun) -> StoreLostError:
        short = batch.id
        cause = _first_line(_reason(active.store_error)) if active.store_error else ""
        return StoreLostError(
            f"The database stopped answering while batch {short} ran ({cause}). No "
            "conversation was started after that; the ones running were stopped, and every "
            "message stored before is kept. Once the database answers again, continue with: "
            f"simulator resume {short}",
            batch.id,
        )

    async def _ensure_models(self, batch: Batch, todo: list[Conversation]) -> None:
        """Check (and for Ollama, pull) every model the remaining conversations use, once, before
        any runs: an unreachable server or a misspelt model stops the run at once with the
        reason instead of failing every conversation. The batch stays as it was (resumable)."""
        if not todo or batch.id in self._checked:
            self._checked.discard(batch.id)  # checked by start() just now: once is enough
            return
        refs: dict[str, ModelRef] = {}
        for conv in todo:
            ms = conv.cell.models
            for ref in (ms.default, *ms.per_role.values(), ms.summarizer_model, ms.manager_model):
                refs.setdefault(ref.model_dump_json(), ref)
            for agent in conv.agents:
                refs.setdefault(agent.model.model_dump_json(), agent.model)
        await self._ensure(list(refs.values()))

    async def _mark(
        self,
        conversation_id: str,
        status: Status,
        error: str | None,
        *,
        stop_reason: str | None = None,
    ) -> None:
        with contextlib.suppress(Exception):
            await asyncio.shield(
                asyncio.wait_for(
                    self.store.conversations.set_fields(
                        conversation_id,
                        status=status,
                        error=error,
                        stop_reason=stop_reason,
                        finished_at=utcnow(),
                    ),
                    LAST_WRITE_S * 2,
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
                active.stop(Status.cancelled, batch.stop_reason or REASON_CANCELLED)

    # ------------------------------------------------------------------ the lease

    async def _claim(self, batch_id: str) -> Batch:
        """Take the batch's lease; returns the batch as it was before (who ran it, how)."""
        now = utcnow()
        before: list[Batch] = []

        def free(b: Batch) -> bool:
            before[:] = [b]
            return self._may_take(b, now)

        claimed = await self.store.batches.update_if(
            batch_id, free, runner=self.runner_id, heartbeat_at=now
        )
        if claimed is not None:
            return before[0] if before else claimed
        holder = await self.get(batch_id)
        age = "" if holder.heartbeat_at is None else f", last seen {_ago(holder.heartbeat_at)}"
        raise BatchInUseError(
            f"Batch {batch_id[:8]} is being run by {holder.runner}{age}. Leave it running "
            f"there, or stop it with 'simulator cancel {batch_id[:8]}' and resume it here "
            f"(a runner that stops answering is taken over after {self.lease_s:.0f} s).",
            title="Batch already running",
        )

    def _may_take(self, batch: Batch, now: datetime) -> bool:
        """Free, ours, stale, held by a process of this machine that is gone, or by a runner of
        this process whose run is over."""
        if batch.runner == self.runner_id:
            return True
        holder = lease_holder(batch, now, self.lease_s)
        if holder is LeaseHolder.this_process:
            return (batch.runner, batch.id) not in _RUNNING_HERE
        return holder is LeaseHolder.nobody

    async def _release(self, batch_id: str) -> None:
        await self.store.batches.update_if(
            batch_id, lambda b: b.runner == self.runner_id, runner=None, heartbeat_at=None
        )

    async def _finish(
        self, batch_id: str, counts: _Counts, stopped: _ActiveRun | None = None
    ) -> Batch:
        conversations = await self._conversations(batch_id)
        done = sum(c.status is Status.done for c in conversations)
        failed = sum(c.status is Status.failed for c in conversations)
        counts.done, counts.failed, counts.total = done, failed, len(conversations)
        fields: dict[str, Any]
        if stopped is not None:
            fields = {
                "status": stopped.stop_status,
                "stop_reason": stopped.stop_reason,
                "finished_at": None,
            }
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
            fields = {
                "status": Status.interrupted,
                "stop_reason": "some conversations stopped before the end",
                "finished_at": None,
            }
        await self.store.batches.set_fields(batch_id, **fields)
        await self._progress(batch_id, counts)
        return await self.get(batch_id)

    async def _progress(self, batch_id: str, counts: _Counts) -> None:
        await self._publish(BatchProgress(batch_id, counts.done, counts.failed, counts.total))

    async def _publish(self, event: Event | LedgerUpdated) -> None:
        if self.bus is not None:
            await self.bus.publish(event)


@dataclass
class _Counts:
    total: int
    done: int
    failed: int


class LeaseHolder(Enum):
    """Who holds a batch's lease (``lease_holder``)."""

    nobody = "nobody"  # never claimed, released, stale, or its process is gone
    this_process = "this process"
    another_process = "another process"  # alive on this machine, or on another one


def lease_holder(
    batch: Batch, now: datetime | None = None, lease_s: float = LEASE_S
) -> LeaseHolder:
    """Who holds ``batch``'s lease at ``now``: a runner whose heartbeat is younger than
    ``lease_s`` holds it, unless it is a process of this machine that no longer exists. The one
    rule of the lease: runners claim by it, screens label a batch "running elsewhere" by it."""
    if batch.runner is None or batch.heartbeat_at is None:
        return LeaseHolder.nobody
    if (now or utcnow()) - batch.heartbeat_at > timedelta(seconds=lease_s):
        return LeaseHolder.nobody
    host, _, rest = batch.runner.partition(":")
    pid = rest.split("/", 1)[0]
    if host == socket.gethostname() and pid.isdigit():
        if int(pid) == os.getpid():
            return LeaseHolder.this_process
        return LeaseHolder.another_process if _process_alive(int(pid)) else LeaseHolder.nobody
    return LeaseHolder.another_process


def check_cost_cap(spec: BatchSpec, cells: list[GridCell], prices: Prices | None) -> None:
    """A cost cap needs a price for every model the batch calls (dryrun is free): a call of an
    unpriced model has no cost to hold against the cap. Raises SpecError naming them."""
    if spec.max_cost_usd is None:
        return
    table = PriceTable(prices)
    missing: set[str] = set()
    for cell in cells:
        ms = cell.models
        for ref in (ms.default, *ms.per_role.values(), ms.summarizer_model, ms.manager_model):
            if table.price_for(ref) is None:
                missing.add(f"{ref.provider.value}:{ref.model}")
    if missing:
        raise SpecError(
            f"batch.max_cost_usd: no price for {', '.join(sorted(missing))}; give each a price "
            "in the spec's prices: (or the PRICE_TABLE file), or cap max_total_tokens instead"
        )


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
    text = _first_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _first_line(text: str) -> str:
    """A driver message without pymongo's topology dump (a long second half)."""
    return text.split("\n", 1)[0].split(", Timeout:", 1)[0].split(" (configured timeouts", 1)[0]


__all__ = [
    "RUNNABLE",
    "BatchInUseError",
    "BatchRunner",
    "LeaseHolder",
    "StoreLostError",
    "check_cost_cap",
    "conversation_id_for",
    "lease_holder",
]
