"""Batches the app runs, each on its own thread: an app-level registry of what they report.

A batch started from the TUI runs on a thread of its own (:class:`BatchThread`) with its own
event loop, its own database client (a second store on the same server and database: an
``AsyncMongoClient`` belongs to one loop) and its own services (model backends, event bus, batch
runner), built the way the app builds its own. Nothing the batch does runs on the UI's loop, so a
heavy batch never competes with the screen: it competes for the interpreter only, which switches
threads every few milliseconds.

The thread reports through Textual messages (:class:`BatchReport`, posted to the app, which hands
it to the registry): the engine's events collected for a moment and sent together (at most
``REPORT_S`` apart), the batch as loaded when the run starts and as stored when it ends, and a
conversation's row when it ends. The registry publishes the events again on the app's own event
bus, on the UI's loop, where the screens' live views (the monitor's transcript and chart, the
browser) listen. The registry keeps plain counters per conversation (status,
calls and messages done, tokens, problems) and never touches a widget; screens read it on a timer
and repaint what changed (STYLE.md #8). Leaving the run monitor does not stop a batch.

Across the boundary, both ways:

* manual speaker selection: the engine's ``choose_speaker`` (on the batch's loop) posts the
  question with a ``concurrent.futures.Future``; the registry asks the user with
  :class:`~simulator.tui.screens.speaker_dialog.SpeakerDialog`, one question at a time, and sets
  the future's result; the batch awaits it through ``asyncio.wrap_future``. A run stopped while
  a question is open withdraws it (the dialog closes).
* cancel (``c``), interrupt (ctrl+q, the app closing): the registry schedules the runner's
  ``cancel`` / ``interrupt`` on the batch's loop (``run_coroutine_threadsafe`` /
  ``call_soon_threadsafe``), so the batch stores its status and ``stop_reason`` itself; on exit
  the app waits for the threads to end (``shutdown``).

Progress is counted in model calls (agent turns, summaries, manager choices, game decisions:
every stored message with a model) against each conversation's planned calls
(``engine.grid.planned_calls``), so a batch is never shown done while a summary is being written.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.message import Message as TextualMessage

from simulator.db.store import ConversationFilter, Store
from simulator.domain import (
    Batch,
    BatchSpec,
    Conversation,
    Experiment,
    ExperimentKind,
    Ledger,
    Message,
    Status,
)
from simulator.domain.errors import SimulatorError
from simulator.engine.batch import BatchRunner, LeaseHolder, lease_holder
from simulator.engine.events import (
    BatchProgress,
    ConversationFailed,
    ConversationFinished,
    ConversationStarted,
    ConversationWarning,
    MessageStored,
    SpeakerChoiceNeeded,
)
from simulator.engine.grid import Prices, describe_cell, planned_calls
from simulator.engine.journal import AGENT_KINDS
from simulator.engine.ledger import LedgerUpdated
from simulator.tui.context import services_of
from simulator.words import plural

if TYPE_CHECKING:
    from simulator.services.container import Services

log = logging.getLogger(__name__)

#: Batch statuses a resume continues.
RESUMABLE = frozenset(
    {Status.pending, Status.running, Status.interrupted, Status.cancelled, Status.failed}
)
RECENT_MESSAGES = 4  # kept per running conversation, for the manual speaker dialog
REPORT_S = 0.1  # a batch thread sends what happened at most this often
JOIN_S = 15.0  # on exit: how long to wait for each batch thread to store its interruption
REASON_CANCELLED = "cancelled in the app"
REASON_CLOSED = "the app was closed"


@dataclass
class ConversationRow:
    """What the monitor shows of one conversation."""

    id: str
    index: int  # the cell's index in the grid (0-based)
    label: str  # "1v2, 2 days, goal=Escape"
    models: str
    status: Status
    done: int  # agent messages stored
    budget: int  # agent messages planned (0 for games without a message budget)
    tokens: int
    problems: int  # fallbacks (a default answer stood in for the model's) and a failure
    calls: int = 0  # model calls stored (messages with a model)
    planned: int = 0  # model calls planned (engine.grid.planned_calls)
    error: str | None = None
    agents: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # Conversation.warnings
    worker: str | None = None  # the worker ("host:pid/n") running it now, by its live lease
    rev: int = 0  # bumped on every change; screens repaint rows whose rev moved

    @classmethod
    def of(
        cls,
        conv: Conversation,
        experiment: Experiment | None = None,
        memo: dict[Any, Any] | None = None,
    ) -> ConversationRow:
        failed = conv.status is Status.failed
        planned = 0
        if experiment is not None:
            try:
                planned = planned_calls(experiment, conv.cell, memo=memo)
            except Exception:  # an estimator that cannot tell: progress by conversations
                log.debug("no planned calls for %s", conv.id, exc_info=True)
        return cls(
            id=conv.id,
            index=conv.cell_index,
            label=describe_cell(conv.cell),
            models=models_label(conv),
            status=conv.status,
            done=conv.messages_done,
            # games are measured in rounds/steps, not agent messages: no message budget
            budget=conv.budget if conv.kind is ExperimentKind.dialogue else 0,
            tokens=conv.tokens.total_tokens,
            problems=conv.fallbacks + (1 if failed else 0),
            # conversations stored before calls were counted: at least their agent messages
            calls=max(conv.calls_done, conv.messages_done),
            planned=planned,
            error=conv.error if failed else None,
            agents=[a.name for a in conv.agents],
            warnings=list(conv.warnings),
            worker=_worker_of(conv),
        )

    @property
    def progress(self) -> int:
        """Calls done toward ``planned``: all of them once the conversation is done (a stop
        phrase ends it early), never more than planned (a game's plan is an estimate)."""
        if self.status is Status.done:
            return self.planned
        return min(self.calls, self.planned)


def _worker_of(conv: Conversation) -> str | None:
    from simulator.engine.leases import now_ms

    if conv.status is not Status.running or conv.runner is None:
        return None
    if conv.lease_until is None or conv.lease_until <= now_ms():
        return None
    return conv.runner


def workers_label(rows: Iterable[ConversationRow]) -> str:
    """Which worker runs how many conversations: ``lab-pc:4821/1 (3), gpu-2:77/1 (2)``."""
    held: dict[str, int] = {}
    for row in rows:
        if row.worker is not None:
            held[row.worker] = held.get(row.worker, 0) + 1
    return ", ".join(f"{name} ({n})" for name, n in sorted(held.items()))


def models_label(conv: Conversation) -> str:
    names = {
        ("dryrun" if a.model.provider.value == "dryrun" else a.model.model) for a in conv.agents
    }
    if not names:
        names = {conv.cell.models.default.model}
    return ", ".join(sorted(names))


@dataclass
class BatchRun:
    """A batch as the app knows it: the stored batch, its conversations, and live counters."""

    batch: Batch
    experiment_name: str
    roles: list[str]
    rows: dict[str, ConversationRow] = field(default_factory=dict)  # by conversation id
    running: bool = False  # running in this session
    started: float | None = None  # time.monotonic() when this session started it
    ended: float | None = None  # time.monotonic() when this session's run ended
    progress_at_start: int = 0  # calls already done when it started
    finished_at_start: int = 0
    choices: dict[str, tuple[int, int]] = field(default_factory=dict)  # conv -> (day, turn)
    recent: dict[str, deque[Message]] = field(default_factory=dict)
    rev: int = 0
    ledger: Ledger | None = None  # calls, tokens and cost so far (docs/cost.md)

    @property
    def id(self) -> str:
        return self.batch.id

    @property
    def ordered(self) -> list[ConversationRow]:
        return sorted(self.rows.values(), key=lambda r: r.index)

    @property
    def total(self) -> int:
        return max(len(self.rows), self.batch.cells_total)

    def count(self, status: Status) -> int:
        return sum(r.status is status for r in self.rows.values())

    @property
    def finished(self) -> int:
        return self.count(Status.done) + self.count(Status.failed)

    @property
    def messages_done(self) -> int:
        return sum(r.done for r in self.rows.values())

    @property
    def messages_budget(self) -> int:
        return sum(r.budget for r in self.rows.values())

    @property
    def calls_done(self) -> int:
        """Model calls stored (every conversation's, agents, summaries, manager, games)."""
        return sum(r.calls for r in self.rows.values())

    @property
    def calls_planned(self) -> int:
        return sum(r.planned for r in self.rows.values())

    @property
    def calls_progress(self) -> int:
        return sum(r.progress for r in self.rows.values())

    @property
    def warnings(self) -> list[str]:
        """Every warning recorded on a conversation of the batch (e.g. a model's server drops
        the system message), each once."""
        return list(dict.fromkeys(w for r in self.ordered for w in r.warnings))

    @property
    def status(self) -> Status:
        return Status.running if self.running else self.batch.status

    def fraction(self) -> float:
        """How much is done, 0..1: by model calls against the planned ones (so a summary being
        written is not done), or by finished conversations when nothing is planned."""
        planned = self.calls_planned
        if planned:
            return min(1.0, self.calls_progress / planned)
        return self.finished / self.total if self.total else 0.0

    def _left(self) -> tuple[int, int]:
        """(progress made, work left) in calls, or in conversations without a plan; failed
        conversations make no more calls in this run."""
        if self.calls_planned:
            left = sum(
                r.planned - r.progress for r in self.rows.values() if r.status is not Status.failed
            )
            return self.calls_progress - self.progress_at_start, left
        return self.finished - self.finished_at_start, self.total - self.finished

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left at the pace of this session's run; None when unknown. At least one
        second while any call is left: "0:00:00" only when nothing is."""
        if not self.running or self.started is None:
            return None
        elapsed = (now if now is not None else time.monotonic()) - self.started
        progressed, left = self._left()
        if progressed <= 0 or elapsed < 0.5:
            return None
        if left <= 0:
            return 0.0
        return max(1.0, left * elapsed / progressed)

    def elapsed_s(self, now: float | None = None) -> float | None:
        """This session's run time (frozen when it ends, however it ended); for a batch not run
        in this session, from its creation to its end as stored."""
        if self.started is not None:
            end = self.ended if not self.running and self.ended is not None else None
            return (end if end is not None else (now or time.monotonic())) - self.started
        if self.batch.finished_at is not None:
            return (self.batch.finished_at - self.batch.created_at).total_seconds()
        return None

    def touch(self, row: ConversationRow | None = None) -> None:
        self.rev += 1
        if row is not None:
            row.rev += 1


def running_elsewhere(batch: Batch, now: datetime | None = None) -> bool:
    """The batch runs and another process holds its lease (the engine's rule,
    ``engine.batch.lease_holder``; this process's own runs are this app's). The engine decides
    for real when a run starts; this only labels the batch."""
    return (
        batch.status is Status.running and lease_holder(batch, now) is LeaseHolder.another_process
    )


def workers_elsewhere(batch: Batch, now: datetime | None = None) -> list[str]:
    """The live workers of another process on the batch (``host:pid/n`` each)."""
    if batch.status is not Status.running:
        return []
    import os

    from simulator.engine.batch import LEASE_S
    from simulator.engine.leases import live_workers

    pid = f":{os.getpid()}/"
    return [
        w.runner
        for w in live_workers(batch, LEASE_S, now=now, running_here=())
        if pid not in w.runner  # this very process: running here, or left over
    ]


# --------------------------------------------------------------------------- what a thread reports


@dataclass(frozen=True)
class Snapshot:
    """The batch as stored: its rows, its experiment's name and roles."""

    batch: Batch
    experiment_name: str
    roles: list[str]
    rows: dict[str, ConversationRow]
    ledger: Ledger | None = None  # calls, tokens and cost so far (docs/cost.md)


@dataclass(frozen=True)
class RunLoaded:
    snapshot: Snapshot


@dataclass(frozen=True)
class RowRead:
    """A conversation's row as stored (read when it started unknown or ended)."""

    row: ConversationRow


@dataclass(frozen=True)
class RunEnded:
    snapshot: Snapshot | None  # None when the database could not be read at the end
    error: BaseException | None


@dataclass(frozen=True)
class SpeakerAsked:
    conversation_id: str
    candidates: list[str]
    answer: concurrent.futures.Future[str | None]


@dataclass(frozen=True)
class SpeakerWithdrawn:
    answer: concurrent.futures.Future[str | None]


class BatchReport(TextualMessage):
    """What a batch thread reports, in order (posted to the app, handled by the registry)."""

    def __init__(self, batch_id: str, items: list[Any]) -> None:
        super().__init__()
        self.batch_id = batch_id
        self.items = items


async def read_snapshot(store: Store, batch_id: str) -> Snapshot:
    """The batch, its experiment and its conversations' rows, as stored."""
    batch = await store.batches.get(batch_id)
    if batch is None:
        from simulator.domain.errors import NotFoundError

        raise NotFoundError(f"There is no batch {batch_id}.")
    experiment = await store.experiments.get(batch.experiment_id)
    name = experiment.name if experiment else "(deleted experiment)"
    roles = [r.name for r in experiment.roles] if experiment else []
    # Brief (no prompts), paged, converted and turned into rows off the event loop: a batch of
    # thousands of conversations never holds the UI. A game's planned calls come from its kind's
    # estimator, whose first use may import the game's modules: in that thread too.
    # Page by page: only one page of conversations is alive at a time besides the (light) rows,
    # so the garbage collector's full passes during a long listing stay short (they walk every
    # live object, and 2,000 conversations made them hold the loop 75-90 ms).
    flt = ConversationFilter(batch_id=batch_id)
    memo: dict[Any, Any] = {}  # planned calls worked out once per distinct cell
    rows: dict[str, ConversationRow] = {}

    def rows_of(page: list[Conversation]) -> dict[str, ConversationRow]:
        return {c.id: ConversationRow.of(c, experiment, memo) for c in page}

    async for page in store.conversations.pages(flt, brief=True):
        rows.update(await asyncio.to_thread(rows_of, page))
    ledgers = getattr(store, "ledgers", None)
    ledger = await ledgers.get(batch_id) if ledgers is not None else None
    return Snapshot(batch, name, roles, rows, ledger)


StoreOpener = Callable[[], Awaitable[Any]]  # a new store (its own client) on the app's database
ServicesBuilder = Callable[[Any], Awaitable[Any]]  # services on that store


# --------------------------------------------------------------------------- the batch thread

#: How long a thread may hold the interpreter while another waits for it (Python's default is
#: 5 ms). The UI's loop gives the interpreter up at every turn (it waits for input), and takes it
#: back only once a busy batch thread lets go: with 5 ms a repaint of many small turns waits
#: 5 ms for each; with 1 ms the screen keeps its pace while a batch runs flat out.
SWITCH_INTERVAL_S = 0.001


def share_the_interpreter() -> None:
    """Set ``SWITCH_INTERVAL_S`` (once a batch thread exists; never longer than it was)."""
    import sys

    if sys.getswitchinterval() > SWITCH_INTERVAL_S:
        sys.setswitchinterval(SWITCH_INTERVAL_S)


class BatchThread:
    """One batch's thread: its own event loop, store and services, until the run ends (or the
    app closes). Made by the registry; every method but the ``_`` ones is called from the UI."""

    def __init__(
        self,
        app: Any,
        batch_label: str,
        open_store: StoreOpener,
        build_services: ServicesBuilder,
    ) -> None:
        self.app = app
        self.batch_id = ""
        self._open_store = open_store
        self._build_services = build_services
        self.loop: asyncio.AbstractEventLoop | None = None
        self.services: Any = None
        self._opened: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stop: asyncio.Event | None = None
        self._drive_task: asyncio.Task[None] | None = None
        self._stop_reason: str | None = None
        self._buffer: list[Any] = []
        self._flusher: asyncio.Task[None] | None = None
        self._known: set[str] = set()  # conversation ids in the loaded snapshot
        self._reads: set[asyncio.Task[None]] = set()
        self.thread = threading.Thread(target=self._main, name=f"batch {batch_label}", daemon=True)
        share_the_interpreter()
        self.thread.start()

    # ------------------------------------------------------------------ UI side

    async def opened(self) -> None:
        """Wait until the thread's store and services are open (raises what opening raised)."""
        await asyncio.wrap_future(self._opened)

    def submit(
        self, job: Callable[[Any], Coroutine[Any, Any, Any]]
    ) -> concurrent.futures.Future[Any]:
        """Run ``job(services)`` on the batch's loop; its result as a future."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(job(self.services), self.loop)

    def drive(self, batch_id: str, resume: bool) -> None:
        """Run (or resume) the batch on the thread; the thread ends with the run."""
        assert self.loop is not None
        self.batch_id = batch_id
        self.loop.call_soon_threadsafe(self._start_drive, batch_id, resume)

    def stop(self, reason: str) -> None:
        """Stop the run as ``interrupted`` with ``reason`` (stored by the batch), then end."""
        if self.loop is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing runs
                self.loop.call_soon_threadsafe(self._interrupt, reason)

    def close(self) -> None:
        """End the thread once nothing runs on it (an idle thread: a batch created, not run)."""
        if self.loop is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._end_if_idle)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    # ------------------------------------------------------------------ the thread

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # never silently: the batch stopped without reporting
            log.exception("batch thread %s failed", self.thread.name)
            if not self._opened.done():
                self._opened.set_exception(exc)

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            store = await self._open_store()
        except BaseException as exc:
            self._opened.set_exception(exc)
            return
        try:
            try:
                self.services = await self._build_services(store)
            except BaseException as exc:
                self._opened.set_exception(exc)
                return
            unsubscribe = None
            bus = getattr(self.services, "bus", None)
            if bus is not None:
                unsubscribe = bus.subscribe(self._collect)
            self._opened.set_result(None)
            try:
                await self._stop.wait()
            finally:
                if unsubscribe is not None:
                    unsubscribe()
                for task in [*self._reads, self._flusher]:
                    if task is not None:
                        task.cancel()
                with contextlib.suppress(Exception):
                    await self.services.aclose()
        finally:
            with contextlib.suppress(Exception):
                await store.close()

    def _end_if_idle(self) -> None:
        if self._drive_task is None and self._stop is not None:
            self._stop.set()

    def _start_drive(self, batch_id: str, resume: bool) -> None:
        self._drive_task = asyncio.create_task(self._drive(batch_id, resume))
        self._flusher = asyncio.create_task(self._flush_every())

    def _interrupt(self, reason: str) -> None:
        self._stop_reason = self._stop_reason or reason
        if self._drive_task is None:
            if self._stop is not None:
                self._stop.set()
            return
        runner = self.services.batches
        if not runner.interrupt(reason, self.batch_id):
            # Not yet (or no longer) in its conversations: stop the run where it is.
            self._drive_task.cancel()

    async def _drive(self, batch_id: str, resume: bool) -> None:
        runner = self.services.batches
        store = self.services.store
        error: BaseException | None = None
        try:
            snapshot = await read_snapshot(store, batch_id)
            self._known = set(snapshot.rows)
            self._report(RunLoaded(snapshot), now=True)
            choose = partial(self._choose_speaker, runner, batch_id)
            if resume:
                await runner.resume(batch_id, choose_speaker=choose)
            else:
                await runner.run(batch_id, choose_speaker=choose)
        except asyncio.CancelledError:
            # Stopped before the runner had the conversations running (or after): record why.
            await self._record_stop(store, batch_id)
        except Exception as exc:  # our errors are shown as they are, others in a modal
            error = exc
        finally:
            snapshot_end: Snapshot | None = None
            with contextlib.suppress(Exception):
                snapshot_end = await asyncio.shield(read_snapshot(store, batch_id))
            self._report(RunEnded(snapshot_end, error), now=True)
            self._drive_task = None
            if self._stop is not None:
                self._stop.set()

    async def _record_stop(self, store: Any, batch_id: str) -> None:
        reason = self._stop_reason or REASON_CLOSED
        with contextlib.suppress(Exception):
            batch = await asyncio.shield(store.batches.get(batch_id))
            if batch is not None and batch.status is Status.running:
                await asyncio.shield(
                    store.batches.set_fields(
                        batch_id, status=Status.interrupted, stop_reason=reason
                    )
                )

    async def _choose_speaker(
        self, runner: Any, batch_id: str, conversation: Conversation, candidates: list[str]
    ) -> str:
        """The engine asks who speaks next: ask the UI and wait for the answer. None (the
        dialog cancelled) cancels the batch, which resumes later from this very turn."""
        answer: concurrent.futures.Future[str | None] = concurrent.futures.Future()

        def withdrawn(future: concurrent.futures.Future[str | None]) -> None:
            if future.cancelled():  # the run stopped while the question was open
                self.app.post_message(BatchReport(batch_id, [SpeakerWithdrawn(future)]))

        answer.add_done_callback(withdrawn)
        self._report(SpeakerAsked(conversation.id, list(candidates), answer), now=True)
        choice = await asyncio.wrap_future(answer)
        if choice is None:
            await runner.cancel(batch_id, reason=REASON_CANCELLED)
            raise asyncio.CancelledError
        return choice

    # ------------------------------------------------------------------ reporting

    def _collect(self, event: Any) -> None:
        """Every event of the batch's bus (on the batch's loop): kept for the next report; a
        conversation that ends (or starts unknown) is read again for its stored row."""
        if getattr(event, "batch_id", None) != self.batch_id:
            return
        self._buffer.append(event)
        cid = getattr(event, "conversation_id", None)
        if not isinstance(cid, str):
            return
        if isinstance(event, ConversationFinished | ConversationFailed) or (
            isinstance(event, ConversationStarted) and cid not in self._known
        ):
            task = asyncio.ensure_future(self._read_row(cid))
            self._reads.add(task)
            task.add_done_callback(self._reads.discard)

    async def _read_row(self, conversation_id: str) -> None:
        try:
            conv = await self.services.store.conversations.get(conversation_id)
            experiment = None
            if conv is not None:
                experiment = await self.services.store.experiments.get(conv.experiment_id)
        except Exception:
            log.debug("reading conversation %s for its row failed", conversation_id)
            return
        if conv is not None:
            self._known.add(conversation_id)
            self._buffer.append(RowRead(ConversationRow.of(conv, experiment)))

    def _report(self, item: Any = None, *, now: bool = False) -> None:
        if item is not None:
            self._buffer.append(item)
        if now:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            items, self._buffer = self._buffer, []
            self.app.post_message(BatchReport(self.batch_id, items))

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(REPORT_S)
            self._flush()


# --------------------------------------------------------------------------- the registry


class RunRegistry:
    """The batches of this app session (see the module docstring). One per app: ``runs_of``.

    ``open_store`` and ``build_services`` are how a batch thread gets its own store and
    services (defaults: a second client on the app's database, and the services container the
    app builds for itself); a test may wrap them."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.runs: dict[str, BatchRun] = {}
        self.services: Services = services_of(app)
        self.open_store: StoreOpener = self._open_store
        self.build_services: ServicesBuilder = self._build_services
        self._threads: dict[str, BatchThread] = {}  # by batch id: running, or created here
        self._started: list[BatchThread] = []  # every thread of this registry (joined at exit)
        self._starting: set[str] = set()  # run() was called, the thread has not loaded it yet
        self._questions: deque[tuple[str, SpeakerAsked]] = deque()
        self._asking: tuple[SpeakerAsked, Any] | None = None  # the open question and dialog

    # ------------------------------------------------------------------ how threads get going

    async def _open_store(self) -> Any:
        reopen = getattr(self.services.store, "reopen", None)
        if reopen is None:
            raise SimulatorError(
                "Batches cannot run: this database connection cannot be opened a second time "
                "for the batch's own thread.",
                title="Cannot run batches",
            )
        return await reopen()

    async def _build_services(self, store: Any) -> Any:
        from simulator.services.container import build_services

        return await build_services(self.services.settings, store, self.services.user)

    @property
    def runner(self) -> BatchRunner:
        """The app's own batch runner (on the UI's loop): for reading and for batches that do
        not run here (a cancel of a batch another process runs)."""
        return self.services.batches

    def _new_thread(self, label: str) -> BatchThread:
        self.runner  # noqa: B018 - the same refusal as before when nothing can run
        self._started = [t for t in self._started if t.alive]
        thread = BatchThread(self.app, label, self.open_store, self.build_services)
        self._started.append(thread)
        return thread

    # ------------------------------------------------------------------ state

    def is_running(self, batch_id: str) -> bool:
        run = self.runs.get(batch_id)
        return batch_id in self._starting or (run is not None and run.running)

    @property
    def running_ids(self) -> list[str]:
        """Batches running in this app, including those still starting."""
        ids = sorted(self._starting)
        return ids + [r.id for r in self.runs.values() if r.running and r.id not in ids]

    # ------------------------------------------------------------------ loading

    async def load(self, batch_id: str) -> BatchRun:
        """The batch as stored (a batch running here keeps its live counters)."""
        run = self.runs.get(batch_id)
        if run is not None and run.running and run.rows:
            return run
        seen = run.rev if run is not None else None
        snapshot = await read_snapshot(self.services.store, batch_id)
        run = self.runs.get(batch_id)
        if run is not None and ((run.running and run.rows) or run.rev != seen):
            # it started, or even ran to its end, while we read: what its thread reported
            # meanwhile is newer than what we read
            return run
        return self._apply_snapshot(snapshot)

    def _apply_snapshot(self, snapshot: Snapshot, *, final: bool = False) -> BatchRun:
        """The stored batch over the run's counters (``final``: as stored when its run
        ended, newer than any live counter)."""
        run = self.runs.get(snapshot.batch.id)
        if run is None:
            run = self.runs[snapshot.batch.id] = BatchRun(
                snapshot.batch, snapshot.experiment_name, snapshot.roles
            )
        run.batch, run.experiment_name, run.roles = (
            snapshot.batch,
            snapshot.experiment_name,
            snapshot.roles,
        )
        if final or not (run.running and run.ledger is not None):
            run.ledger = snapshot.ledger or run.ledger
        old = run.rows
        run.rows = dict(snapshot.rows)
        for cid, row in run.rows.items():  # a fresh row must look changed to every screen
            row.rev = old[cid].rev + 1 if cid in old else 0
        run.touch()
        return run

    # ------------------------------------------------------------------ creating and running

    async def create(
        self, experiment: Experiment, spec: BatchSpec, prices: Prices | None = None
    ) -> Batch:
        """Store the batch and its pending conversations (nothing runs yet), on the batch's own
        thread: the models are checked there, and its conversations prepared."""
        await asyncio.to_thread(warm_up, freeze=True)  # no slow import on the event loop
        owner = self.services.user
        thread = self._new_thread(f"new {experiment.name}")
        try:
            await thread.opened()

            async def start(services: Any) -> Batch:
                return await services.batches.start(  # type: ignore[no-any-return]
                    experiment, spec, owner=owner, prices=prices or None
                )

            batch: Batch = await asyncio.wrap_future(thread.submit(start))
        except BaseException:
            thread.close()
            raise
        old = self._threads.pop(batch.id, None)
        if old is not None:
            old.close()
        self._threads[batch.id] = thread  # run() uses it: its store and models are ready
        return batch

    def run(self, batch_id: str, *, resume: bool = False) -> None:
        """Run (or resume) the batch on its own thread; returns at once."""
        if self.is_running(batch_id):
            raise SimulatorError(
                "This batch is already running in this session.", title="Already running"
            )
        self._starting.add(batch_id)
        thread = self._threads.get(batch_id)
        if thread is None or not thread.alive:
            thread = self._threads[batch_id] = self._new_thread(batch_id[:8])
        self.app.run_worker(
            self._start(thread, batch_id, resume),
            name=f"batch {batch_id}",
            group=f"batch-{batch_id}",
            exit_on_error=False,
        )

    async def _start(self, thread: BatchThread, batch_id: str, resume: bool) -> None:
        try:
            await thread.opened()
        except BaseException as exc:
            self._starting.discard(batch_id)
            self._threads.pop(batch_id, None)
            run = self.runs.get(batch_id)
            if run is not None:
                run.touch()
            if isinstance(exc, SimulatorError):
                self.app.show_error(exc)
                return
            raise
        thread.drive(batch_id, resume)

    async def cancel(self, batch_id: str) -> None:
        """Stop the batch (every stored message is kept); ``run(..., resume=True)`` continues.
        A batch running here is cancelled by its own runner, on its own thread."""
        thread = self._threads.get(batch_id)
        if thread is not None and thread.alive and self.is_running(batch_id):

            async def cancel(services: Any) -> Batch:
                return await services.batches.cancel(  # type: ignore[no-any-return]
                    batch_id, reason=REASON_CANCELLED
                )

            batch = await asyncio.wrap_future(thread.submit(cancel))
        else:  # a batch done stays done
            batch = await self.runner.cancel(batch_id, reason=REASON_CANCELLED)
        run = self.runs.get(batch_id)
        if run is not None:
            run.batch = batch
            run.touch()

    def interrupt(self, reason: str) -> list[str]:
        """Stop every batch running here as ``interrupted`` with ``reason`` (each stores it on
        its own thread); returns their ids."""
        stopped = []
        for batch_id, thread in list(self._threads.items()):
            thread.stop(reason)
            if self.is_running(batch_id):
                stopped.append(batch_id)
        return stopped

    async def shutdown(self, reason: str = REASON_CLOSED, timeout_s: float = JOIN_S) -> None:
        """The app closes: stop every batch thread (``interrupted``, with ``reason`` unless
        one was given before) and wait for each to end."""
        threads = [t for t in self._started if t.alive]
        self._threads.clear()
        for thread in threads:
            thread.stop(reason)
            thread.close()
        for thread in threads:
            await asyncio.to_thread(thread.thread.join, timeout_s)
            if thread.alive:
                log.warning("%s did not end within %.0f s", thread.thread.name, timeout_s)

    # ------------------------------------------------------------------ what threads report

    def receive(self, report: BatchReport) -> None:
        """A batch thread's report (on the UI's loop): apply it, in order."""
        run = self.runs.get(report.batch_id)
        bus = getattr(self.services, "bus", None)
        for item in report.items:
            if isinstance(item, RunLoaded):
                run = self._loaded(item.snapshot)
            elif isinstance(item, RunEnded):
                self._ended(report.batch_id, item)
                run = self.runs.get(report.batch_id)
            elif isinstance(item, RowRead):
                if run is not None:
                    self._row_read(run, item.row)
            elif isinstance(item, SpeakerAsked):
                self._questions.append((report.batch_id, item))
                self._next_question()
            elif isinstance(item, SpeakerWithdrawn):
                self._withdraw(item.answer)
            else:
                if run is not None:
                    self._on_event(run, item)
                if bus is not None:  # the screens' live views listen there (on the UI's loop)
                    bus.publish(item)

    def _loaded(self, snapshot: Snapshot) -> BatchRun:
        run = self.runs.get(snapshot.batch.id)
        if not (run is not None and run.running and run.rows):
            run = self._apply_snapshot(snapshot)
        run.running, run.started, run.ended = True, time.monotonic(), None
        run.progress_at_start, run.finished_at_start = run.calls_progress, run.finished
        self._starting.discard(snapshot.batch.id)
        run.touch()
        return run

    def _ended(self, batch_id: str, item: RunEnded) -> None:
        self._starting.discard(batch_id)
        thread = self._threads.pop(batch_id, None)
        if thread is not None:  # it ends by itself now: reap it off the UI's loop
            self.app.run_worker(
                asyncio.to_thread(thread.thread.join, JOIN_S),
                group="batch-threads",
                exit_on_error=False,
            )
        run = self.runs.get(batch_id)
        if item.snapshot is not None:
            run = self._apply_snapshot(item.snapshot, final=True)
        if run is not None:
            if run.running:
                run.ended = time.monotonic()
            run.running = False
            run.recent.clear()
            run.choices.clear()
            run.touch()
        if item.error is not None:
            self.app.show_error(item.error)
        elif run is not None and item.snapshot is not None:
            self._announce(run)

    def _row_read(self, run: BatchRun, fresh: ConversationRow) -> None:
        row = run.rows.get(fresh.id)
        if row is not None and run.running and fresh.status is Status.running:
            fresh.status = row.status  # the event may be newer than the stored status
        fresh.rev = (row.rev if row else 0) + 1
        run.rows[fresh.id] = fresh
        run.touch()

    def _announce(self, run: BatchRun) -> None:
        batch = run.batch
        name = f"Batch {batch.id[:8]} ({run.experiment_name})"
        if batch.status is Status.done:
            self.app.notify(
                f"{name} done: {plural(run.total, 'conversation')}.", title="Batch done"
            )
        elif batch.status is Status.failed:
            self.app.notify(
                f"{name}: {batch.error or 'failed'}", title="Batch failed", severity="warning"
            )
        else:
            self.app.notify(f"{name} {batch.status.value}; r in the monitor resumes it.")

    def _on_event(self, run: BatchRun, event: Any) -> None:
        if isinstance(event, BatchProgress):
            run.touch()
            return
        if isinstance(event, LedgerUpdated):
            run.ledger = event.ledger
            run.touch()
            return
        cid = getattr(event, "conversation_id", None)
        row = run.rows.get(cid) if isinstance(cid, str) else None
        if row is None or not isinstance(cid, str):
            return
        if isinstance(event, MessageStored):
            m = event.message
            row.tokens += m.usage.total_tokens
            if m.kind in AGENT_KINDS:
                row.done += 1
            if m.model is not None:
                row.calls += 1
            row.problems += "fallback" in m.flags
            recent = run.recent.setdefault(cid, deque(maxlen=RECENT_MESSAGES))
            recent.append(m)
            row.status = Status.running
        elif isinstance(event, ConversationStarted):
            row.status, row.error = Status.running, None
        elif isinstance(event, ConversationFinished):
            row.status = event.status
            run.recent.pop(cid, None)
            run.choices.pop(cid, None)
        elif isinstance(event, ConversationFailed):
            row.status, row.error = Status.failed, event.error
            row.problems += 1
            run.recent.pop(cid, None)
            run.choices.pop(cid, None)
        elif isinstance(event, SpeakerChoiceNeeded):
            run.choices[cid] = (event.day, event.turn)
        elif isinstance(event, ConversationWarning):
            if event.warning in row.warnings:
                return
            first = event.warning not in run.warnings
            row.warnings.append(event.warning)
            if first:  # one toast per batch and warning; the monitor keeps showing it
                self.app.notify(
                    f"Batch {run.id[:8]}: {event.text}",
                    title="Warning",
                    severity="warning",
                    timeout=20,
                    markup=False,
                )
        else:
            return
        run.touch(row)

    # ------------------------------------------------------------------ manual speaker selection

    def _next_question(self) -> None:
        """Show the next open question (one dialog at a time, in the order asked)."""
        from simulator.tui.screens.speaker_dialog import SpeakerDialog, SpeakerQuestion

        if self._asking is not None:
            return
        while self._questions:
            batch_id, asked = self._questions.popleft()
            if asked.answer.done():  # withdrawn before its turn came
                continue
            run = self.runs.get(batch_id)
            cid = asked.conversation_id
            day, turn = run.choices.get(cid, (0, 0)) if run else (0, 0)
            recent = list(run.recent.get(cid, ())) if run else []
            row = run.rows.get(cid) if run else None
            label = f"#{row.index + 1} {row.label}" if row else cid[:8]
            question = SpeakerQuestion(
                conversation_id=cid,
                label=label,
                day=day,
                turn=turn,
                candidates=list(asked.candidates),
                recent=[(m.speaker, m.content) for m in recent],
            )
            dialog = SpeakerDialog(question)
            self._asking = (asked, dialog)
            self.app.push_screen(dialog, callback=partial(self._answered, asked))
            return

    def _answered(self, asked: SpeakerAsked, value: str | None) -> None:
        if self._asking is not None and self._asking[0] is asked:
            self._asking = None
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            if not asked.answer.done():
                asked.answer.set_result(value)
        self._next_question()

    def _withdraw(self, answer: concurrent.futures.Future[str | None]) -> None:
        if self._asking is not None and self._asking[0].answer is answer:
            dialog = self._asking[1]
            if self.app.screen is dialog:
                dialog.dismiss(None)  # the answer is cancelled: nothing is cancelled twice
            else:
                self._asking = None
                self._next_question()

    def close(self) -> None:
        """This registry is replaced (the app reconnected): its batches stop."""
        self.interrupt(REASON_CLOSED)


#: Slow first imports of a run, done in a thread so the event loop never waits for them:
#: preparing conversations needs ``inflect`` (seconds: typeguard instruments it at import), the
#: transcript's role colours come from the analysis layer (pandas, pyarrow: about a second).
def warm_up(*, freeze: bool = False) -> None:
    """Import what a run and its screens need late and slowly (the inflection engine, the
    analysis layer with pandas): call it in a thread; later imports are free. With ``freeze``,
    also take the objects alive now out of the garbage collector's reach.

    Why freeze: with Textual, pandas and pyarrow loaded the heap holds millions of long-lived
    objects, and each full collection walks all of them: 150-200 ms with the event loop stopped,
    several times during a busy batch. Frozen objects (modules, classes, the app's screens) are
    never walked again, so a full collection only looks at what the run itself creates. Done
    once per batch, before it starts: cyclic garbage alive at that instant is kept for good,
    a small price for a UI that never stalls.
    """
    import gc

    import inflect  # noqa: F401

    import simulator.analysis.exports  # noqa: F401

    if freeze:
        gc.freeze()


def runs_of(app: Any) -> RunRegistry:
    """The app's registry of batches (created on first use, kept for the app's lifetime)."""
    registry = getattr(app, "_batch_runs", None)
    if registry is None or registry.services is not app.services:
        if registry is not None:
            registry.close()
        registry = RunRegistry(app)
        app._batch_runs = registry
    return registry  # type: ignore[no-any-return]


def duration_label(seconds: float | None) -> str:
    """``0:03:07``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


__all__ = [
    "RESUMABLE",
    "BatchReport",
    "BatchRun",
    "BatchThread",
    "ConversationRow",
    "RunRegistry",
    "duration_label",
    "read_snapshot",
    "running_elsewhere",
    "runs_of",
    "warm_up",
]
