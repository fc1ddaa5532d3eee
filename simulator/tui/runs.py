"""Batches the app runs: an app-level registry, so a batch outlives the screen that started it.

A batch runs as an app worker (not a screen worker): leaving the run monitor does not stop it,
and opening the monitor again shows it where it is. The registry listens to the event bus and
keeps plain counters per conversation (status, messages done, tokens, problems); it never
touches a widget. Screens read it on a timer and repaint what changed (STYLE.md #8), so a batch
of hundreds of conversations costs the UI one small repaint a few times a second, not one per
message.

Manual speaker selection goes through :meth:`RunRegistry.choose_speaker`: it asks the user with
:class:`~simulator.tui.screens.speaker_dialog.SpeakerDialog`, one question at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from simulator.db.store import ConversationFilter
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
from simulator.engine.grid import Prices, describe_cell
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
    error: str | None = None
    agents: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # Conversation.warnings
    worker: str | None = None  # the worker ("host:pid/n") running it now, by its live lease
    rev: int = 0  # bumped on every change; screens repaint rows whose rev moved

    @classmethod
    def of(cls, conv: Conversation) -> ConversationRow:
        failed = conv.status is Status.failed
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
            error=conv.error if failed else None,
            agents=[a.name for a in conv.agents],
            warnings=list(conv.warnings),
            worker=_worker_of(conv),
        )


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
    done_at_start: int = 0  # agent messages already stored when it started
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
    def warnings(self) -> list[str]:
        """Every warning recorded on a conversation of the batch (e.g. a model's server drops
        the system message), each once."""
        return list(dict.fromkeys(w for r in self.ordered for w in r.warnings))

    @property
    def messages_budget(self) -> int:
        return sum(r.budget for r in self.rows.values())

    @property
    def status(self) -> Status:
        return Status.running if self.running else self.batch.status

    def fraction(self) -> float:
        """How much is done, 0..1: by agent messages when the batch has a budget, else by
        finished conversations."""
        budget = self.messages_budget
        if budget:
            return min(1.0, self.messages_done / budget)
        return self.finished / self.total if self.total else 0.0

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left at the pace of this session's run; None when unknown."""
        if not self.running or self.started is None:
            return None
        elapsed = (now if now is not None else time.monotonic()) - self.started
        budget = self.messages_budget
        if budget:
            progressed, left = self.messages_done - self.done_at_start, budget - self.messages_done
        else:
            progressed, left = self.finished - self.finished_at_start, self.total - self.finished
        if progressed <= 0 or elapsed < 0.5:
            return None
        return max(0.0, left * elapsed / progressed)

    def elapsed_s(self, now: float | None = None) -> float | None:
        if self.running and self.started is not None:
            return (now if now is not None else time.monotonic()) - self.started
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


class RunRegistry:
    """The batches of this app session (see the module docstring). One per app: ``runs_of``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.runs: dict[str, BatchRun] = {}
        self.services: Services = services_of(app)
        self._starting: set[str] = set()  # run() was called, the worker has not loaded it yet
        self._dialog_lock = asyncio.Lock()
        self._unsubscribe: Callable[[], None] | None = self.services.bus.subscribe(self._on_event)

    @property
    def runner(self) -> BatchRunner:
        return self.services.batches

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
        batch = await self.runner.get(batch_id)
        experiment = await self.services.store.experiments.get(batch.experiment_id)
        name = experiment.name if experiment else "(deleted experiment)"
        roles = [r.name for r in experiment.roles] if experiment else []
        # Brief (no prompts), paged, converted and turned into rows off the event loop: a batch
        # of thousands of conversations never holds the UI.
        flt = ConversationFilter(batch_id=batch_id)
        convs = await self.services.store.conversations.list(flt, brief=True)
        rows = await asyncio.to_thread(lambda: {c.id: ConversationRow.of(c) for c in convs})
        run = self.runs.get(batch_id)
        if run is None:
            run = self.runs[batch_id] = BatchRun(batch, name, roles)
        elif run.running and run.rows:
            return run  # it started while we read: its live counters are newer
        run.batch, run.experiment_name, run.roles = batch, name, roles
        ledgers = getattr(self.services.store, "ledgers", None)
        if ledgers is not None and not (run.running and run.ledger is not None):
            run.ledger = await ledgers.get(batch_id)
        old = run.rows
        run.rows = rows
        for cid, row in run.rows.items():  # a fresh row must look changed to every screen
            row.rev = old[cid].rev + 1 if cid in old else 0
        run.touch()
        return run

    async def _refresh_row(self, run: BatchRun, conversation_id: str) -> None:
        conv = await self.services.store.conversations.get(conversation_id)
        if conv is None:
            return
        fresh = ConversationRow.of(conv)
        row = run.rows.get(conversation_id)
        if row is not None and run.running and fresh.status is Status.running:
            fresh.status = row.status  # the event may be newer than the stored status
        fresh.rev = (row.rev if row else 0) + 1
        run.rows[conversation_id] = fresh
        run.touch()

    # ------------------------------------------------------------------ creating and running

    async def create(
        self, experiment: Experiment, spec: BatchSpec, prices: Prices | None = None
    ) -> Batch:
        """Store the batch and its pending conversations (nothing runs yet)."""
        await asyncio.to_thread(warm_up, freeze=True)  # no slow import on the event loop
        return await self.runner.start(
            experiment, spec, owner=self.services.user, prices=prices or None
        )

    def run(self, batch_id: str, *, resume: bool = False) -> None:
        """Run (or resume) the batch as an app worker; returns at once."""
        if self.is_running(batch_id):
            raise SimulatorError(
                "This batch is already running in this session.", title="Already running"
            )
        self._starting.add(batch_id)
        self.app.run_worker(
            self._drive(batch_id, resume),
            name=f"batch {batch_id}",
            group=f"batch-{batch_id}",
            exit_on_error=False,
        )

    async def _drive(self, batch_id: str, resume: bool) -> None:
        try:
            run = await self.load(batch_id)
            # A batch another live runner holds is refused by the engine (BatchInUseError).
            run.running, run.started = True, time.monotonic()
            run.done_at_start, run.finished_at_start = run.messages_done, run.finished
            self._starting.discard(batch_id)
            run.touch()
            choose = self.choose_speaker
            if resume:
                await self.runner.resume(batch_id, choose_speaker=choose)
            else:
                await self.runner.run(batch_id, choose_speaker=choose)
        except SimulatorError as exc:
            self.app.show_error(exc)
        finally:
            self._starting.discard(batch_id)
            run_ = self.runs.get(batch_id)
            if run_ is not None:
                run_.running = False
                run_.touch()
            with contextlib.suppress(Exception):
                run_ = await asyncio.shield(self.load(batch_id))
                self._announce(run_)

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

    async def cancel(self, batch_id: str) -> None:
        """Stop the batch (every stored message is kept); ``run(..., resume=True)`` continues."""
        # a batch already done stays done
        batch = await self.runner.cancel(batch_id, reason="cancelled in the app")
        run = self.runs.get(batch_id)
        if run is not None:
            run.batch = batch
            run.touch()

    # ------------------------------------------------------------------ manual speaker selection

    async def choose_speaker(self, conversation: Conversation, candidates: list[str]) -> str:
        """Ask the user who speaks next (one dialog at a time). Cancelling the dialog cancels
        the batch, which can be resumed later from this very turn."""
        from simulator.tui.screens.speaker_dialog import SpeakerDialog, SpeakerQuestion

        async with self._dialog_lock:
            run = self.runs.get(conversation.batch_id or "")
            day, turn = run.choices.get(conversation.id, (0, 0)) if run else (0, 0)
            recent = list(run.recent.get(conversation.id, ())) if run else []
            row = run.rows.get(conversation.id) if run else None
            label = f"#{row.index + 1} {row.label}" if row else conversation.id[:8]
            question = SpeakerQuestion(
                conversation_id=conversation.id,
                label=label,
                day=day,
                turn=turn,
                candidates=list(candidates),
                recent=[(m.speaker, m.content) for m in recent],
            )
            loop = asyncio.get_running_loop()
            answer: asyncio.Future[str | None] = loop.create_future()

            def answered(value: str | None) -> None:
                if not answer.done():
                    answer.set_result(value)

            dialog = SpeakerDialog(question)
            self.app.push_screen(dialog, callback=answered)
            try:
                choice = await answer
            except asyncio.CancelledError:
                if self.app.screen is dialog:
                    dialog.dismiss(None)
                raise
        if choice is None:
            if conversation.batch_id:
                await self.cancel(conversation.batch_id)
            raise asyncio.CancelledError
        return choice

    # ------------------------------------------------------------------ events (no widgets here)

    def _on_event(self, event: Any) -> None:
        batch_id = getattr(event, "batch_id", None)
        run = self.runs.get(batch_id) if batch_id else None
        if run is None:
            return
        if isinstance(event, BatchProgress):
            run.touch()
            return
        if isinstance(event, LedgerUpdated):
            run.ledger = event.ledger
            run.touch()
            return
        cid = event.conversation_id
        row = run.rows.get(cid)
        if row is None:
            if isinstance(event, ConversationStarted):
                self._later(self._refresh_row(run, cid))
            return
        if isinstance(event, MessageStored):
            m = event.message
            row.tokens += m.usage.total_tokens
            if m.kind in AGENT_KINDS:
                row.done += 1
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
            self._later(self._refresh_row(run, cid))
        elif isinstance(event, ConversationFailed):
            row.status, row.error = Status.failed, event.error
            row.problems += 1
            run.recent.pop(cid, None)
            run.choices.pop(cid, None)
            self._later(self._refresh_row(run, cid))
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

    def _later(self, coro: Any) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception:
                log.debug("refreshing a monitor row failed", exc_info=True)

        self.app.run_worker(guarded(), group="batch-rows", exit_on_error=False)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None


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
    "BatchRun",
    "ConversationRow",
    "RunRegistry",
    "duration_label",
    "running_elsewhere",
    "runs_of",
    "warm_up",
]
