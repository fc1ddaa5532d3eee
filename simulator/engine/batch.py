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

Leases are per conversation (engine/leases.py): a runner (``host:pid/n``) joins the batch's
``workers`` with a heartbeat, takes each conversation it runs with an atomic compare-and-set of
the conversation's ``runner`` and ``lease_until``, renews those leases every ``heartbeat_s``
and clears them when the conversation ends. A lease expires ``lease_s`` after its last renewal
(a killed or cut-off worker), or is free at once when its holder was a process of this machine
that no longer exists; another worker then takes the conversation over and continues it from
its last stored message (nothing stored is asked again, no message is stored twice). A worker
that finds one of its leases taken over (it looked dead, say after a long pause) stops that
conversation and leaves it to the new holder.

``run(batch_id)`` (``simulator run``/``resume``, the TUI) is refused with ``BatchInUseError``
while another live process works on the batch; ``run(batch_id, join=True)`` (``simulator
worker``) shares it: every worker keeps taking free conversations until none is left, and the
last worker to leave stores the batch's end (its status; the ledger rebuilt from the stored
messages when several workers shared the run).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from functools import partial
from typing import Any

from simulator.db.store import (
    STORE_LOST,
    ConversationFilter,
    LeaseState,
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
from simulator.domain.models import BatchWorker, CacheMode, Ledger
from simulator.engine.events import BatchProgress, ConversationFailed, Event, EventBus, StoreLost
from simulator.engine.grid import Prices, estimate_cells, expand_grid
from simulator.engine.kinds import KindCatalog, resolve
from simulator.engine.leases import (
    lease_free,
    live_workers,
    now_ms,
    process_alive,
    worker_alive,
)
from simulator.engine.ledger import LedgerUpdated, learned_rates, rebuild
from simulator.llm.base import ChatService
from simulator.llm.metered import BatchCalls, Caps
from simulator.llm.prices import PriceTable

log = logging.getLogger(__name__)

#: Statuses a run (and a resume) continues.
RUNNABLE = frozenset(
    {Status.pending, Status.running, Status.interrupted, Status.cancelled, Status.failed}
)
#: Statuses of conversations a worker takes over after its run began: left behind by another
#: worker (killed, cut off, stopped) before their end. Failed ones are not tried again there.
TAKEN_OVER = frozenset({Status.pending, Status.running, Status.interrupted})
PREPARE_CONCURRENCY = 8
LEASE_S = 30.0  # a batch whose runner has not renewed its heartbeat for this long is adoptable
HEARTBEAT_S = 5.0
LAST_WRITE_S = 1.5  # after the database failed: how long to try to store the interruption
LEDGER_S = 1.0  # how often a running batch stores and publishes its ledger (when it changed)
#: While its own conversations run, how often a runner looks again at the batch for
#: conversations another worker left behind (at most; a quarter of the lease, never under
#: ``poll_s``). Looking each time one of its conversations ends made a batch of n cost n full
#: listings of n conversations (quadratic: 2,000 listings of 2,000 at 2,000 conversations).
#: A runner alone on its batch does not look until its conversations have all ended (a worker
#: that joins is seen by the heartbeat, which starts the looks).
LOOK_S = 5.0

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
    #: the batch's experiment, read once per run (an experiment with conversations is never
    #: changed in place: saving it stores a new version)
    experiment: Experiment | None = None
    tasks: set[asyncio.Task[Status | None]] = field(default_factory=set)
    cancelling: bool = False
    stop_status: Status = Status.interrupted
    stop_reason: str = REASON_STOPPED
    store_error: BaseException | None = None  # the first failure to reach the database
    interruption_stored: bool = False  # after that failure, the database answered again
    capped: str | None = None  # a budget cap stopped the batch: why (see BatchCalls)
    ledger_changed: bool = False  # since the ledger was last stored and published
    held: set[str] = field(default_factory=set)  # conversations leased here now
    queued: dict[str, asyncio.Task[Status | None]] = field(default_factory=dict)  # their tasks
    lost_leases: set[str] = field(default_factory=set)  # taken over by another worker
    released: set[str] = field(default_factory=set)  # leases their conversation's end released
    shared: bool = False  # another worker took part in this run
    #: set when the scheduler should look again before its next look is due: every task of
    #: this run has ended, the run stops (cancel, cap, lost database)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self, status: Status, reason: str, message: str | None = None) -> None:
        """Stop every conversation; the first reason given is the one stored. ``message`` goes
        with the tasks' cancellation (``STORE_LOST``: do not try to store anything)."""
        if not self.cancelling:
            self.stop_status, self.stop_reason = status, reason
        self.cancel_all(message)

    def cancel_all(self, message: str | None = None) -> None:
        self.cancelling = True
        self.wake.set()
        for task in list(self.tasks):
            task.cancel(message)

    def task_ended(self, _task: object) -> None:
        """A conversation's task ended (called after it left ``tasks``)."""
        if not self.tasks:
            self.wake.set()


class BatchInUseError(SimulatorError):
    """Another live runner holds the batch."""


class StoreLostError(DatabaseUnavailableError):
    """The database stopped answering during a run: the run stopped, the batch is resumable."""

    title = "Database lost"

    def __init__(self, message: str, batch_id: str) -> None:
        super().__init__(message)
        self.batch_id = batch_id


def store_lost_error(batch_id: str, cause: str) -> StoreLostError:
    """What a run says when the database stopped answering (``cause``: the driver's first line)."""
    return StoreLostError(
        f"The database stopped answering while batch {batch_id} ran ({cause}). No "
        "conversation was started after that; the ones running were stopped, and every "
        "message stored before is kept. Once the database answers again, continue with: "
        f"simulator resume {batch_id}",
        batch_id,
    )


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
        look_s: float | None = None,
    ) -> None:
        self.store = store
        #: The experiment kinds this runner plays (None: the registry installed for the process).
        self.kinds = kinds
        self.backends = backends
        self.bus = bus
        self.poll_s = poll_s
        self.lease_s = lease_s
        #: see LOOK_S
        self.look_s = look_s if look_s is not None else max(poll_s, min(lease_s / 4, LOOK_S))
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
        *,
        join: bool = False,
    ) -> Batch:
        """Run every unfinished conversation of the batch; returns the batch as it ended (still
        ``running`` when other workers go on with it). ``join``: share the batch with the
        workers already on it instead of refusing to run it (``simulator worker``)."""
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
        previous = await self._claim(batch_id, join=join)
        _RUNNING_HERE.add((self.runner_id, batch_id))
        if join or live_workers(previous, self.lease_s, exclude=self.runner_id):
            self._share_limits()  # several processes call the same servers
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
            release = getattr(self.backends, "release_shared_slots", None)
            if release is not None and (lost is None or lost.interruption_stored):
                with contextlib.suppress(Exception):  # else they expire by themselves
                    await asyncio.shield(asyncio.wait_for(release(), LAST_WRITE_S * 2))
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
        conversations = await self._states(batch_id)
        cells = expand_grid(experiment, batch.spec, self.kinds)
        if await self._prepare(batch, experiment, cells, {c.id for c in conversations}):
            conversations = await self._states(batch_id)
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
        active = _ActiveRun(batch_id, experiment=experiment)
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
            await self._schedule(conversations, gate, active, counts, choose_speaker, calls)
        except asyncio.CancelledError:
            # This run itself was cancelled (Ctrl-C, app exit): stop the conversations, keep
            # every stored message, and leave the batch resumable, stored as interrupted.
            active.stop(Status.interrupted, REASON_STOPPED)
            await asyncio.gather(*active.tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                last = await asyncio.shield(self._leave(batch_id))
                if last:
                    await asyncio.shield(self._save_ledger(calls, final=True))
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
        # the last worker to leave stores the batch's end (or any worker, once every
        # conversation has ended: a worker still listed may die before it leaves)
        if await asyncio.shield(self._leave(batch_id)) or await self._all_ended(batch_id):
            if active.shared:  # each worker metered its own calls: the messages hold them all
                convs = await self._conversations(batch_id)
                hints = {c.id: message_count_hint(c) for c in convs}  # read by computed ids
                stored = await self.store.messages.list_many([c.id for c in convs], hints)
                calls.ledger = rebuild(batch_id, stored)
            # shielded: an app closing right after ``interrupt`` must not cut this write short
            await asyncio.shield(self._save_ledger(calls, final=True))
            stopped = active.cancelling or active.capped is not None
            await asyncio.shield(self._finish(batch_id, counts, active if stopped else None))
        return None

    async def _schedule(
        self,
        first_scan: list[LeaseState],
        gate: asyncio.Semaphore,
        active: _ActiveRun,
        counts: _Counts,
        choose_speaker: ChooseSpeaker | None,
        calls: BatchCalls,
    ) -> None:
        """Start a task for every conversation this runner may take, and look again (when all
        of them have ended, and every ``look_s`` meanwhile; every ``poll_s`` while only other
        workers hold some) until none is left to run here or held elsewhere.

        The first look takes every runnable conversation (failed ones are tried again, as a
        resume does); later looks take only those another worker left behind: its lease expired
        or was released before the end (``pending``, ``running``, ``interrupted``)."""
        here = {r for r, _ in _RUNNING_HERE}
        convs = first_scan
        first = True
        order = random.Random(self.runner_id)  # workers start on different conversations
        while not active.cancelling and active.capped is None:
            at = now_ms()
            wanted = RUNNABLE if first else TAKEN_OVER
            if not first:
                counts.total = len(convs)
                # never backwards: tasks may have counted an end the look did not see yet
                counts.done = max(counts.done, sum(c.status is Status.done for c in convs))
                counts.failed = max(counts.failed, sum(c.status is Status.failed for c in convs))
            takeable: list[LeaseState] = []
            elsewhere = 0
            for conv in convs:
                if conv.id in active.held or conv.status not in wanted:
                    continue
                if conv.id in active.queued:
                    continue
                if lease_free(conv, self.runner_id, at, here):
                    takeable.append(conv)
                else:
                    elsewhere += 1
            order.shuffle(takeable)
            for conv in takeable:
                task = asyncio.create_task(
                    self._run_one(conv, gate, active, counts, choose_speaker, calls),
                    name=f"conversation {conv.id}",
                )
                active.tasks.add(task)
                active.queued[conv.id] = task
                task.add_done_callback(active.tasks.discard)
                task.add_done_callback(partial(_forget, active.queued, conv.id))
                task.add_done_callback(active.task_ended)
            if not active.tasks and not takeable and not elsewhere:
                return
            if elsewhere:
                active.shared = True
            if active.tasks:
                # look again when this runner's conversations have all ended, when the run
                # stops, and, once other workers share the batch, every ``look_s`` (for
                # conversations one of them left behind); alone, nobody can leave any
                active.wake.clear()
                if active.tasks and not active.cancelling and active.capped is None:
                    with contextlib.suppress(TimeoutError):
                        look = self.look_s if active.shared else None
                        await asyncio.wait_for(active.wake.wait(), look)
            else:
                await asyncio.sleep(self.poll_s)  # leases held by other workers: look again
            first = False
            if active.store_error is not None:
                break
            try:
                convs = await self._states(active.batch_id)
            except Exception as exc:
                if not is_store_unreachable(exc):
                    raise
                await self._store_lost(active, exc)
                break
        if active.tasks:
            await asyncio.gather(*active.tasks, return_exceptions=True)

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
        convs = await self._states(batch_id)
        return BatchProgress(
            batch_id,
            done=sum(c.status is Status.done for c in convs),
            failed=sum(c.status is Status.failed for c in convs),
            total=len(convs),
        )

    async def who_runs(self, batch_id: str) -> dict[str, list[Conversation]]:
        """The batch's live workers, each with the conversations it holds now (``host:pid/n``
        -> conversations, in cell order; a worker between two conversations holds none)."""
        batch = await self.get(batch_id)
        at = now_ms()
        workers: dict[str, list[Conversation]] = {
            w.runner: [] for w in live_workers(batch, self.lease_s)
        }
        for conv in await self._conversations(batch_id):
            live = conv.lease_until is not None and conv.lease_until > at
            if conv.runner is not None and conv.status is Status.running and live:
                workers.setdefault(conv.runner, []).append(conv)
        return workers

    async def get(self, batch_id: str) -> Batch:
        batch = await self.store.batches.get(batch_id)
        if batch is None:
            raise NotFoundError(f"There is no batch {batch_id}.")
        return batch

    # ------------------------------------------------------------------ internals

    async def _states(self, batch_id: str) -> list[LeaseState]:
        """The batch's conversations, each with its status and lease only (what looks, counts
        and ends need; a conversation is read whole when it runs)."""
        return await self.store.conversations.lease_states(batch_id)

    async def _conversations(self, batch_id: str) -> list[Conversation]:
        """The batch's conversations without their prompts (read again when one runs): one
        indexed query, paged and converted off the event loop."""
        flt = ConversationFilter(batch_id=batch_id)
        return await self.store.conversations.list(flt, brief=True)

    async def _run_one(
        self,
        conv: LeaseState,
        gate: asyncio.Semaphore,
        active: _ActiveRun,
        counts: _Counts,
        choose_speaker: ChooseSpeaker | None,
        calls: BatchCalls | None = None,
    ) -> Status | None:
        """Lease the conversation and run it; None when another worker has it (or had it and
        moved it on since this runner looked).

        The slot (``gate``) is held from the lease to the stored end: the lease's release is
        written after the slot is free, so the next conversation starts meanwhile."""
        leased = False
        try:
            async with gate:
                if active.cancelling or active.capped is not None:
                    return conv.status
                try:
                    fresh, started = await self._lease(conv)
                except Exception as exc:
                    if not is_store_unreachable(exc):
                        raise
                    await self._store_lost(active, exc)  # as when a turn cannot store: stop
                    return None
                if fresh is None:
                    return None
                leased = True
                active.lost_leases.discard(conv.id)  # lost before, and taken back now
                active.held.add(conv.id)
                try:
                    if fresh.status is not conv.status and not started:
                        return None  # another worker ran it between the look and the lease
                    if conv.runner not in (None, self.runner_id):
                        log.info("conversation %s taken over from %s", conv.id, conv.runner)
                    return await self._play(fresh, active, counts, choose_speaker, calls, started)
                finally:
                    active.held.discard(conv.id)
        finally:
            released = active.released
            if conv.id in released:
                released.discard(conv.id)
            elif leased and conv.id not in active.lost_leases and active.store_error is None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(
                        asyncio.wait_for(
                            self.store.conversations.release_lease(conv.id, self.runner_id),
                            LAST_WRITE_S * 2,
                        )
                    )

    async def _lease(self, conv: LeaseState) -> tuple[Conversation | None, bool]:
        """Take the conversation's lease as seen by the look; the conversation as stored with
        it (None when another worker won) and whether the same write started it (a pending
        conversation that never ran: one round trip instead of two)."""
        repo = self.store.conversations
        until = now_ms() + int(self.lease_s * 1000)
        runner, seen_runner, seen_until = self.runner_id, conv.runner, conv.lease_until
        if conv.status is Status.pending:
            fresh = await repo.take_lease_and_start(
                conv.id, runner, until, seen_runner=seen_runner, seen_until=seen_until
            )
            if fresh is not None:
                return fresh, True
        fresh = await repo.take_lease(
            conv.id, runner, until, seen_runner=seen_runner, seen_until=seen_until
        )
        return fresh, False

    async def _play(
        self,
        conv: Conversation,
        active: _ActiveRun,
        counts: _Counts,
        choose_speaker: ChooseSpeaker | None,
        calls: BatchCalls | None,
        started: bool = False,
    ) -> Status | None:
        from simulator.engine.conversation import run_conversation

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
                conversation=conv,
                experiment=active.experiment,
                lease_holder=self.runner_id,
                started=started,
            )
            if ended.runner is None:  # its end's write released the lease
                active.released.add(conv.id)
            status = ended.status
        except asyncio.CancelledError:
            if conv.id in active.lost_leases:  # its new holder owns its state now
                return None
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
                active.wake.set()

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
        for conv in await self._states(active.batch_id):
            if conv.status is Status.running:
                await self.store.conversations.set_fields(conv.id, **fields)

    async def _record_abandoned(self, previous: Batch) -> None:
        """A batch adopted from workers that are all gone (killed, crashed, or cut off from the
        database) is recorded as interrupted, with that reason, before it runs again."""
        if previous.status is not Status.running:
            return
        here = {r for r, _ in _RUNNING_HERE}
        if live_workers(previous, self.lease_s, running_here=here, exclude=self.runner_id):
            return  # others still work on it: their conversations are theirs
        gone = [w.runner for w in previous.workers if w.runner != self.runner_id]
        if previous.runner not in (None, self.runner_id):
            gone.append(previous.runner)
        if not gone:
            return
        reason = REASON_ABANDONED.format(runner=", ".join(gone))
        fields = {"status": Status.interrupted, "stop_reason": reason}
        await self.store.batches.set_fields(previous.id, **fields)
        for conv in await self._states(previous.id):
            if conv.status is Status.running:
                await self.store.conversations.set_fields(conv.id, **fields)

    def _lost_error(self, batch: Batch, active: _ActiveRun) -> StoreLostError:
        cause = _first_line(_reason(active.store_error)) if active.store_error else ""
        return store_lost_error(batch.id, cause)

    async def _ensure_models(self, batch: Batch, todo: list[LeaseState]) -> None:
        """Check (and for Ollama, pull) every model the remaining conversations use, once, before
        any runs: an unreachable server or a misspelt model stops the run at once with the
        reason instead of failing every conversation. The batch stays as it was (resumable)."""
        if not todo or batch.id in self._checked:
            self._checked.discard(batch.id)  # checked by start() just now: once is enough
            return
        refs: dict[str, ModelRef] = {}
        for conv in await self.store.conversations.get_many([c.id for c in todo], brief=True):
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
        every ``heartbeat_s`` renew this worker's heartbeat and its conversations' leases (a
        conversation whose lease another worker took is stopped here)."""
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while not active.cancelling:
            await asyncio.sleep(self.poll_s)
            try:
                if loop.time() - renewed >= self.heartbeat_s:
                    renewed = loop.time()
                    await self._renew(active)
                batch = await self.store.batches.get(active.batch_id)
            except Exception:  # a hiccup of the database: try again at the next poll
                log.debug("cancel watcher could not read batch %s", active.batch_id)
                continue
            if batch is not None and batch.status is Status.cancelled:
                log.info("batch %s was cancelled; stopping its conversations", active.batch_id)
                active.stop(Status.cancelled, batch.stop_reason or REASON_CANCELLED)

    async def _renew(self, active: _ActiveRun) -> None:
        until = now_ms() + int(self.lease_s * 1000)
        lost = await self.store.conversations.renew_leases(
            sorted(active.held), self.runner_id, until
        )
        for conv_id in lost:
            if conv_id not in active.held:
                continue  # it ended meanwhile
            log.warning(
                "conversation %s was taken over by another worker; stopping it here", conv_id
            )
            active.lost_leases.add(conv_id)
            task = active.queued.get(conv_id)
            if task is not None:
                task.cancel()
        now = utcnow()
        here = {r for r, _ in _RUNNING_HERE}

        def beat(b: Batch) -> list[BatchWorker]:
            if live_workers(b, self.lease_s, now=now, running_here=here, exclude=self.runner_id):
                if not active.shared:
                    active.shared = True
                    active.wake.set()  # the scheduler looks at the batch from now on
                self._share_limits()  # a worker joined this run: hold the limits with it
            return _with_worker(b, self.runner_id, now, self.lease_s, here)

        await self._update_workers(active.batch_id, beat)

    def _share_limits(self) -> None:
        """Hold each endpoint's concurrency limit across processes, through the database's
        slots (llm/shared_limits.py), once this run shares its batch with other workers."""
        share = getattr(self.backends, "share_limits", None)
        slots = getattr(self.store, "slots", None)
        if share is None or slots is None or getattr(self.backends, "shares_limits", False):
            return
        from simulator.llm.shared_limits import SharedLimits

        share(SharedLimits(slots, self.runner_id))

    # ------------------------------------------------------------------ the batch's workers

    async def _claim(self, batch_id: str, *, join: bool = False) -> Batch:
        """Join the batch's workers; returns the batch as it was before (who ran it, how).
        Without ``join``, refused while another live process works on it."""
        now = utcnow()
        here = {r for r, _ in _RUNNING_HERE}
        before: list[Batch] = []
        blockers: list[BatchWorker] = []

        def joined(b: Batch) -> list[BatchWorker] | None:
            before[:] = [b]
            blockers[:] = live_workers(
                b, self.lease_s, now=now, running_here=here, exclude=self.runner_id
            )
            if blockers and not join:
                return None
            return _with_worker(b, self.runner_id, now, self.lease_s, here)

        claimed = await self._update_workers(batch_id, joined)
        if claimed is not None:
            return before[0] if before else claimed
        holder = max(blockers, key=lambda w: w.heartbeat_at)
        names = ", ".join(w.runner for w in blockers)
        raise BatchInUseError(
            f"Batch {batch_id[:8]} is being run by {names}, last seen "
            f"{_ago(holder.heartbeat_at)}. Leave it running there, add this machine to it with "
            f"'simulator worker --batch {batch_id[:8]}', or stop it with "
            f"'simulator cancel {batch_id[:8]}' and resume it here (a worker that stops "
            f"answering is taken over after {self.lease_s:.0f} s).",
            title="Batch already running",
        )

    async def _leave(self, batch_id: str) -> bool:
        """Leave the batch's workers (and forget those that are gone); True when no live worker
        is left on it: this one stores the batch's end."""
        now = utcnow()
        here = {r for r, _ in _RUNNING_HERE} - {self.runner_id}

        def without_me(b: Batch) -> list[BatchWorker]:
            return [
                w
                for w in b.workers
                if w.runner != self.runner_id and worker_alive(w, self.lease_s, now, here)
            ]

        left = await self._update_workers(batch_id, without_me)
        if left is None:
            return True
        return not live_workers(left, self.lease_s, now=now, running_here=here)

    async def _all_ended(self, batch_id: str) -> bool:
        """No conversation of the batch is left to run: each is done, failed or cancelled."""
        ended = (Status.done, Status.failed, Status.cancelled)
        return all(c.status in ended for c in await self._states(batch_id))

    async def _update_workers(
        self, batch_id: str, change: Callable[[Batch], list[BatchWorker] | None]
    ) -> Batch | None:
        """Set the batch's ``workers`` to ``change(batch)`` atomically (a compare-and-set on the
        list it was computed from); None when ``change`` says no (returns None)."""
        for _ in range(20):
            batch = await self.get(batch_id)
            workers = change(batch)
            if workers is None:
                return None
            updated = await self.store.batches.update_if(
                batch_id,
                partial(_same_workers, batch),
                workers=workers,
                runner=None,
                heartbeat_at=None,
            )
            if updated is not None:
                return updated
        raise DatabaseUnavailableError(f"Batch {batch_id} kept changing while updating it.")

    async def _release(self, batch_id: str) -> None:
        batch = await self.store.batches.get(batch_id)
        if batch is not None and any(w.runner == self.runner_id for w in batch.workers):
            await self._leave(batch_id)

    async def _finish(
        self, batch_id: str, counts: _Counts, stopped: _ActiveRun | None = None
    ) -> Batch:
        conversations = await self._states(batch_id)
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
    """Who works on ``batch`` at ``now``: a worker (``Batch.workers``, or the one runner of a
    batch run before them) whose heartbeat is younger than ``lease_s``, unless it is a process
    of this machine that no longer exists. Another process wins over this one when both work on
    it. The one rule: screens label a batch "running elsewhere" by it."""
    at = now or utcnow()
    workers = list(batch.workers)
    if batch.runner is not None and batch.heartbeat_at is not None:
        workers.append(BatchWorker(runner=batch.runner, heartbeat_at=batch.heartbeat_at))
    this = False
    for w in workers:
        if at - w.heartbeat_at > timedelta(seconds=lease_s):
            continue
        host, _, rest = w.runner.partition(":")
        pid = rest.split("/", 1)[0]
        if host == socket.gethostname() and pid.isdigit():
            if int(pid) == os.getpid():
                this = True
                continue
            if not process_alive(int(pid)):
                continue
        return LeaseHolder.another_process
    return LeaseHolder.this_process if this else LeaseHolder.nobody


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


def _forget(queued: dict[str, Any], conversation_id: str, _task: object) -> None:
    queued.pop(conversation_id, None)


def _same_workers(seen: Batch, batch: Batch) -> bool:
    """The batch's workers (and legacy runner) are still those ``seen``."""
    return batch.workers == seen.workers and batch.runner == seen.runner


def _with_worker(
    batch: Batch, runner: str, now: datetime, lease_s: float, running_here: set[str]
) -> list[BatchWorker]:
    """The batch's live workers with ``runner``'s heartbeat set to ``now`` (added if new)."""
    out: list[BatchWorker] = []
    mine: BatchWorker | None = None
    for w in batch.workers:
        if w.runner == runner:
            mine = w
        elif worker_alive(w, lease_s, now, running_here):
            out.append(w)
    joined = mine.joined_at if mine is not None else now
    out.append(BatchWorker(runner=runner, heartbeat_at=now, joined_at=joined))
    return out


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
