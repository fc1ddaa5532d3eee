"""The run monitor: every batch with its progress, and one batch live.

``RunMonitorScreen()`` lists the batches (newest first; those running in this session on top),
with resume for unfinished ones, including batches an earlier session left behind.
``RunMonitorScreen(batch_id)`` shows one batch: a progress bar with counts and an ETA, a row per
conversation (cell, model, status, messages done of the budget, tokens, problems) and the
transcript of the highlighted conversation as it is written.

A game (commons, reputation) also gets a chart beside the transcript: the resource and the
credits per round, or the cooperation and the network's ties per step, growing as they end.

The batch itself runs in the app (``simulator.tui.runs``): leaving this screen does not stop it.
The screen reads the registry's counters a few times a second and repaints only rows that
changed, so a large batch never floods the UI.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static

from simulator.domain import Batch, Status
from simulator.domain import Message as StoredMessage
from simulator.engine.events import MessageStored
from simulator.tui.context import services_of
from simulator.tui.runs import (
    RESUMABLE,
    BatchRun,
    ConversationRow,
    duration_label,
    running_elsewhere,
    runs_of,
    warm_up,
)
from simulator.tui.screens.base import ReportsWorkerErrors
from simulator.tui.screens.dialogs import ConfirmDialog
from simulator.tui.screens.library import clip
from simulator.tui.widgets.game_chart import (
    GameChart,
    GamePoint,
    point_from_event,
    points_from_states,
)
from simulator.tui.widgets.transcript import TranscriptView

if TYPE_CHECKING:
    from simulator.services.container import Services

FLUSH_S = 0.25  # how often the screen repaints from the registry
# The transcript grows at most once a second: each growth costs the whole screen a layout pass.
TRANSCRIPT_FLUSH_S = 1.0
LIST_REFRESH_S = 1.0
MAX_BATCHES = 100
GAME_KINDS = ("commons", "reputation")  # experiment kinds the monitor charts

RICH_STATUS_STYLE = {
    Status.pending: "dim",
    Status.running: "bold yellow",
    Status.done: "green",
    Status.failed: "bold red",
    Status.cancelled: "dim italic",
    Status.interrupted: "italic yellow",
}

# (label, width, right-aligned). A conversation is one pre-formatted line in a one-column table:
# a table renders cell by cell, and one cell per row repaints several times faster than seven
# (the monitor repaints while a batch keeps the event loop busy).
CONVERSATION_COLUMNS: list[tuple[str, int, bool]] = [
    ("#", 3, True),
    ("Cell", 26, False),
    ("Model", 10, False),
    ("Status", 9, False),
    ("Msgs", 7, True),
    ("Tokens", 8, True),
    ("Errors", 14, False),
]
COLUMN_GAP = "  "
BATCH_COLUMNS: list[tuple[str, str, int]] = [
    ("batch", "Batch", 8),
    ("experiment", "Experiment", 18),
    ("status", "Status", 11),
    ("done", "Done", 5),
    ("failed", "Fail", 4),
    ("total", "Total", 5),
    ("created", "Created (UTC)", 16),
    ("owner", "Owner", 8),
]


def status_text(status: Status, label: str | None = None) -> Text:
    return Text(label or status.value, style=RICH_STATUS_STYLE.get(status, ""))


def batch_status_label(batch: Batch, here: bool) -> str:
    """The batch's status in words: a batch stored as running that no process runs any more
    (its session ended) is *interrupted*."""
    if here:
        return "running"
    if batch.status is Status.running:
        return "running" if running_elsewhere(batch) else "interrupted"
    return batch.status.value


def messages_cell(row: ConversationRow) -> str:
    return f"{row.done}/{row.budget}" if row.budget else str(row.done)


def problems_cell(row: ConversationRow) -> str:
    if not row.problems:
        return "0"
    return clip(f"{row.problems} · {row.error}", 14) if row.error else str(row.problems)


def conversation_cells(row: ConversationRow) -> list[str]:
    return [
        str(row.index + 1),
        row.label,
        row.models,
        row.status.value,
        messages_cell(row),
        f"{row.tokens:,}",
        problems_cell(row),
    ]


def _fit(text: str, width: int, right: bool) -> str:
    text = clip(text, width)
    return text.rjust(width) if right else text.ljust(width)


def columns_line(
    values: list[str], columns: list[tuple[str, int, bool]], styles: dict[int, str] | None = None
) -> Text:
    """Values as fixed-width columns of one line (``columns``: label, width, right-aligned)."""
    line = Text()
    for i, (value, (_, width, right)) in enumerate(zip(values, columns, strict=True)):
        if i:
            line.append(COLUMN_GAP)
        line.append(_fit(value, width, right), style=(styles or {}).get(i, ""))
    return line


def columns_header(columns: list[tuple[str, int, bool]]) -> Text:
    return columns_line([label for label, _, _ in columns], columns)


def conversation_header() -> Text:
    return columns_header(CONVERSATION_COLUMNS)


def conversation_line(row: ConversationRow) -> Text:
    """The row's columns in one line; the status in its colour."""
    style = {3: RICH_STATUS_STYLE.get(row.status, "")}
    return columns_line(conversation_cells(row), CONVERSATION_COLUMNS, style)


def summary_text(run: BatchRun, now: float | None = None) -> str:
    batch = run.batch
    here = run.running
    status = batch_status_label(batch, here)
    created = batch.created_at.strftime("%Y-%m-%d %H:%M")
    first = (
        f"[b]Batch {batch.id[:8]}[/b] · {clip(run.experiment_name, 30)} · [b]{status}[/b] · "
        f"created {created} UTC by {batch.owner or '?'}"
    )
    running = run.count(Status.running) if here else 0
    tokens = sum(r.tokens for r in run.rows.values())
    budget = run.messages_budget
    messages = f"{run.messages_done:,}/{budget:,}" if budget else f"{run.messages_done:,}"
    parts = [
        f"{run.count(Status.done)}/{run.total} done",
        f"{run.count(Status.failed)} failed",
        f"{running} running",
        f"messages {messages}",
        f"tokens {tokens:,}",
        f"elapsed {duration_label(run.elapsed_s(now))}",
    ]
    if here:
        parts.append(f"ETA {duration_label(run.eta_s(now))}")
    second = " · ".join(parts)
    if run.warnings:  # first on its line, so a narrow screen never cuts it off
        warned = ", ".join(escape(w) for w in run.warnings)
        second = f"[yellow]⚠ {warned}[/yellow] · {second}"
    if batch.error and not here and batch.status is Status.failed:
        second += f" · [red]{clip(batch.error, 200)}[/red]"
    elif not here and batch.status in RESUMABLE:
        second += " · r resumes it"
    return f"{first}\n{second}"


@dataclass
class BatchListRow:
    batch: Batch
    experiment: str
    done: int
    failed: int
    here: bool


class RunMonitorScreen(ReportsWorkerErrors, Screen[None]):
    """The batches (no ``batch_id``), or one batch live."""

    HELP_TITLE = "Run monitor"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="monitor.back"),
        Binding("enter", "open", "Open batch", id="monitor.open", show=False),
        Binding("c", "cancel", "Cancel batch", id="monitor.cancel"),
        Binding("r", "resume", "Resume batch", id="monitor.resume"),
        Binding("ctrl+r", "refresh", "Refresh", id="monitor.refresh", show=False),
    ]

    CSS_PATH = "monitor.tcss"

    class Loaded(Message):
        def __init__(self, run: BatchRun, kind: str | None = None) -> None:
            super().__init__()
            self.run = run
            self.kind = kind  # the experiment's kind

    class GameLoaded(Message):
        def __init__(self, conversation_id: str, points: list[GamePoint]) -> None:
            super().__init__()
            self.conversation_id = conversation_id
            self.points = points

    class TranscriptLoaded(Message):
        def __init__(self, conversation_id: str, messages: list[StoredMessage]) -> None:
            super().__init__()
            self.conversation_id = conversation_id
            self.messages = messages

    class BatchesLoaded(Message):
        def __init__(self, rows: list[BatchListRow], select: str | None) -> None:
            super().__init__()
            self.rows = rows
            self.select = select

    def __init__(self, batch_id: str | None = None) -> None:
        super().__init__()
        self.batch_id = batch_id
        self.run: BatchRun | None = None
        self.batch_rows: list[BatchListRow] = []
        self.selected: str | None = None  # the conversation whose transcript is shown
        self._transcript_ready = False
        self._live: list[StoredMessage] = []  # live messages of `selected`, not yet shown
        self._seen_rev = -1
        self._summary = ""
        self._progress = -1
        self._transcript_flushed = 0.0
        self._row_revs: dict[str, int] = {}
        self._table_ids: list[str] = []
        self._unsubscribe: Any = None
        self._timer: Timer | None = None
        self.kind: str | None = None  # the experiment's kind (a game gets a chart)
        self._chart: GameChart | None = None
        self._game_ready = False
        self._game_reloaded = False
        self._game_live: list[GamePoint] = []  # live points of `selected`, not yet charted
        self.loads = 0  # finished loads (tests wait on it)
        self.flushes = 0

    @property
    def services(self) -> Services:
        return services_of(self.app)

    @property
    def registry(self) -> Any:
        return runs_of(self.app)

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        if self.batch_id is None:
            yield Static(
                "Batches, newest first · enter opens one · r resumes an unfinished one · c cancels",
                id="monitor-title",
            )
            table: DataTable[Any] = DataTable(
                id="monitor-batches", cursor_type="row", zebra_stripes=True
            )
            for key, label, width in BATCH_COLUMNS:
                table.add_column(label, key=key, width=width)
            yield table
            yield Static("", id="monitor-batch-details")
        else:
            yield Static("Loading the batch…", id="monitor-summary")
            yield ProgressBar(total=1, show_eta=False, id="monitor-progress")
            table = DataTable(id="monitor-conversations", cursor_type="row", zebra_stripes=True)
            table.add_column(conversation_header(), key="row")
            yield table
            yield Static("", id="monitor-selected", markup=False)
            with Horizontal(id="monitor-bottom"):
                yield TranscriptView(id="monitor-transcript")
        yield Footer()

    def on_mount(self) -> None:
        if self.batch_id is None:
            self.query_one("#monitor-batches", DataTable).focus()
            self.load_batches()
            self._timer = self.set_interval(LIST_REFRESH_S, self._refresh_list)
        else:
            self.query_one("#monitor-conversations", DataTable).focus()
            bus = getattr(self.services, "bus", None)
            if bus is not None:
                self._unsubscribe = bus.subscribe(self._on_bus_event)
            self.load_batch()
            self._timer = self.set_interval(FLUSH_S, self.flush)

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def on_screen_resume(self) -> None:
        if self.batch_id is None and self.loads:
            self.load_batches(self.selected_batch_id())

    # ------------------------------------------------------------------ one batch

    @work(exclusive=True, group="monitor-load", exit_on_error=False)
    async def load_batch(self) -> None:
        assert self.batch_id is not None
        run = await self.registry.load(self.batch_id)
        kind = self.kind
        if kind is None:
            exp = await self.services.store.experiments.get(run.batch.experiment_id)
            kind = exp.kind.value if exp is not None else None
        self.post_message(self.Loaded(run, kind))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.run = message.run
        self.kind = message.kind
        if self.kind in GAME_KINDS and self._chart is None:
            # Mounted for games only: plotext is imported when a game is shown.
            self._chart = GameChart(self.kind, id="monitor-game-chart")
            self.query_one("#monitor-bottom", Horizontal).mount(self._chart)
            if self.selected is not None:
                self._select_game(self.selected)
        self._seen_rev = -1
        self.flush()
        self.loads += 1
        if self.selected is None and self._table_ids:
            self._select(self._table_ids[0])

    def flush(self) -> None:
        """Repaint what changed since the last flush (rows, counts, live transcript)."""
        run = self.run
        if run is None:
            return
        if run.rev != self._seen_rev:
            self._seen_rev = run.rev
            self._paint_rows(run)
            self._paint_summary(run)
        elif run.running:
            self._paint_summary(run)  # elapsed and ETA move on their own
        now = time.monotonic()
        if (
            self._transcript_ready
            and self._live
            and (now - self._transcript_flushed >= TRANSCRIPT_FLUSH_S or not run.running)
        ):
            self._transcript_flushed = now
            transcript = self.query_one("#monitor-transcript", TranscriptView)
            live, self._live = self._live, []
            for m in live:
                transcript.add_message(m)
        chart = self._chart
        if chart is not None:
            if self._game_ready and self._game_live:
                points, self._game_live = self._game_live, []
                chart.add(points)
                if chart.total is None and not self._game_reloaded and self.selected:
                    # Selected before its first snapshot: read the start and the length now.
                    self._game_reloaded = True
                    self.load_game(self.selected)
            chart.flush()  # redraws at most once a second
        self.flushes += 1

    def _paint_summary(self, run: BatchRun) -> None:
        # Fixed-size widgets repainted without a layout pass, and only when their text moved:
        # a layout pass re-renders the whole screen (the table and the transcript included).
        text = summary_text(run)
        if text != self._summary:
            self._summary = text
            self.query_one("#monitor-summary", Static).update(text, layout=False)
        progress = round(run.fraction() * 1000)
        if progress != self._progress:
            self._progress = progress
            self.query_one("#monitor-progress", ProgressBar).update(total=1000, progress=progress)

    def _paint_rows(self, run: BatchRun) -> None:
        table = self.query_one("#monitor-conversations", DataTable)
        rows = run.ordered
        ids = [r.id for r in rows]
        if ids != self._table_ids:
            cursor = table.cursor_row
            table.clear()
            for row in rows:
                table.add_row(conversation_line(row), key=row.id)
                self._row_revs[row.id] = row.rev
            self._table_ids = ids
            if rows:
                table.move_cursor(row=min(max(cursor, 0), len(rows) - 1))
        else:
            for row in rows:
                if self._row_revs.get(row.id) == row.rev:
                    continue
                self._row_revs[row.id] = row.rev
                table.update_cell(row.id, "row", conversation_line(row))
        self._paint_selected()

    def _paint_selected(self) -> None:
        run = self.run
        row = run.rows.get(self.selected or "") if run else None
        label = self.query_one("#monitor-selected", Static)
        if row is None:
            label.update("No conversation selected.", layout=False)
            return
        text = f"#{row.index + 1} {row.label} · {', '.join(row.agents)} · {row.id[:8]}"
        if row.error:
            text += f" · {row.error}"
        label.update(clip(text, 400), layout=False)

    @on(DataTable.RowHighlighted, "#monitor-conversations")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value if event.row_key is not None else None
        if key and key != self.selected:
            self._select(str(key))

    def _select(self, conversation_id: str) -> None:
        self.selected = conversation_id
        self._transcript_ready = False
        self._live = []
        transcript = self.query_one("#monitor-transcript", TranscriptView)
        if self.run is not None and transcript.roles != self.run.roles:
            transcript.set_roles(self.run.roles)
        transcript.clear_messages()
        self._paint_selected()
        self.load_transcript(conversation_id)
        if self._chart is not None:
            self._select_game(conversation_id)

    def _select_game(self, conversation_id: str) -> None:
        self._game_ready = False
        self._game_reloaded = False
        self._game_live = []
        if self._chart is not None:
            self._chart.reset(self.kind)
        self.load_game(conversation_id)

    @work(exclusive=True, group="monitor-game", exit_on_error=False)
    async def load_game(self, conversation_id: str) -> None:
        """The chart's points so far: commons from the latest snapshot (it holds every round's
        record), reputation from every step's snapshot (each holds its step's metrics)."""
        states = self.services.store.states
        if self.kind == "commons":
            latest = await states.latest(conversation_id)
            stored = [latest] if latest is not None else []
        else:
            stored = await states.list(conversation_id)
        points = points_from_states(self.kind or "", stored)
        self.post_message(self.GameLoaded(conversation_id, points))

    @on(GameLoaded)
    def _game_loaded(self, message: GameLoaded) -> None:
        if message.conversation_id != self.selected or self._chart is None:
            return
        # Points that ended while loading arrived live; the chart keeps each round once.
        self._chart.add([*message.points, *self._game_live])
        self._chart.flush(force=True)
        self._game_live = []
        self._game_ready = True

    @work(exclusive=True, group="monitor-transcript", exit_on_error=False)
    async def load_transcript(self, conversation_id: str) -> None:
        await asyncio.to_thread(warm_up)  # the view's first render imports the analysis layer
        messages = await self.services.store.messages.list(conversation_id)
        self.post_message(self.TranscriptLoaded(conversation_id, messages))

    @on(TranscriptLoaded)
    def _transcript_loaded(self, message: TranscriptLoaded) -> None:
        if message.conversation_id != self.selected:
            return
        transcript = self.query_one("#monitor-transcript", TranscriptView)
        # Messages stored while loading arrived live; the view keeps each seq once.
        transcript.set_messages([*message.messages, *self._live])
        self._live = []
        self._transcript_ready = True

    def _on_bus_event(self, event: Any) -> None:
        # Called by the engine for every event: only note it, the timer paints (no widgets here).
        if getattr(event, "conversation_id", None) != self.selected:
            return
        if isinstance(event, MessageStored):
            self._live.append(event.message)
        if self._chart is not None:  # a game: a round_end record or a StepEnded is a point
            point = point_from_event(event)
            if point is not None:
                self._game_live.append(point)

    # ------------------------------------------------------------------ the list of batches

    @work(exclusive=True, group="monitor-batches", exit_on_error=False)
    async def load_batches(self, select: str | None = None) -> None:
        registry = self.registry
        batches = (await self.services.store.batches.list())[:MAX_BATCHES]
        names: dict[str, str] = {}
        rows: list[BatchListRow] = []
        for batch in batches:
            if batch.experiment_id not in names:
                exp = await self.services.store.experiments.get(batch.experiment_id)
                names[batch.experiment_id] = exp.name if exp else "(deleted)"
            run = registry.runs.get(batch.id)
            if run is not None and run.running:
                rows.append(
                    BatchListRow(
                        batch,
                        names[batch.experiment_id],
                        run.count(Status.done),
                        run.count(Status.failed),
                        True,
                    )
                )
                continue
            progress = await registry.runner.progress(batch.id)
            rows.append(
                BatchListRow(
                    batch, names[batch.experiment_id], progress.done, progress.failed, False
                )
            )
        rows.sort(key=lambda r: not r.here)  # stable: running here first, then newest first
        if select is None and rows and rows[0].here:
            select = rows[0].batch.id
        self.post_message(self.BatchesLoaded(rows, select))

    @on(BatchesLoaded)
    def _batches_loaded(self, message: BatchesLoaded) -> None:
        self.batch_rows = message.rows
        table = self.query_one("#monitor-batches", DataTable)
        table.clear()
        for row in message.rows:
            table.add_row(*self._batch_cells(row), key=row.batch.id)
        for index, row in enumerate(message.rows):
            if row.batch.id == message.select:
                table.move_cursor(row=index)
                break
        self._paint_batch_details()
        self.loads += 1

    def _batch_cells(self, row: BatchListRow) -> list[Any]:
        b = row.batch
        label = batch_status_label(b, row.here)
        status = Status.running if label == "running" else b.status
        return [
            b.id[:8],
            clip(row.experiment, 18),
            status_text(status, label),
            str(row.done),
            str(row.failed),
            str(b.cells_total),
            b.created_at.strftime("%Y-%m-%d %H:%M"),
            clip(b.owner, 8),
        ]

    def _refresh_list(self) -> None:
        """Live counts of the batches running here (others change only on reload)."""
        table = self.query_one("#monitor-batches", DataTable)
        for row in self.batch_rows:
            run = self.registry.runs.get(row.batch.id)
            if run is None or not (run.running or row.here):
                continue
            row.done, row.failed = run.count(Status.done), run.count(Status.failed)
            row.here = run.running
            row.batch = run.batch
            keys = [k for k, _, _ in BATCH_COLUMNS]
            for key, value in zip(keys, self._batch_cells(row), strict=True):
                table.update_cell(row.batch.id, key, value)
        self._paint_batch_details()

    def selected_batch_row(self) -> BatchListRow | None:
        table = self.query_one("#monitor-batches", DataTable)
        if not self.batch_rows or table.cursor_row is None:
            return None
        if 0 <= table.cursor_row < len(self.batch_rows):
            return self.batch_rows[table.cursor_row]
        return None

    def selected_batch_id(self) -> str | None:
        if self.batch_id is not None:
            return self.batch_id
        row = self.selected_batch_row()
        return row.batch.id if row else None

    def _paint_batch_details(self) -> None:
        details = self.query_one("#monitor-batch-details", Static)
        row = self.selected_batch_row()
        if row is None:
            details.update("No batches yet. In the library, b sets up a batch of an experiment.")
            return
        b = row.batch
        spec = b.spec
        maxima = ", ".join(f"{role} ≤{n}" for role, n in spec.max_agents.items()) or "1 each"
        days = f"1..{spec.days}" if spec.every_day_count else str(spec.days)
        text = (
            f"[b]{b.id[:8]}[/b] · {spec.total_messages} messages over {days} day(s) · agents "
            f"{maxima}{' (every combination)' if spec.every_combination else ''} · speaker "
            f"{spec.speaker_selection.value} · repeats {spec.repeats} · seed {spec.seed}"
        )
        label = batch_status_label(b, row.here)
        if label == "interrupted" and b.stop_reason:
            text += (
                f"\nInterrupted: {clip(b.stop_reason, 120)}. r resumes it from the last message."
            )
        elif label == "interrupted":
            text += "\nIts session ended before it finished: r resumes it from the last message."
        elif b.status is Status.failed and b.error:
            text += f"\n[red]{clip(b.error, 160)}[/red]"
        elif b.status in RESUMABLE and not row.here:
            text += "\nr resumes it from the last stored message."
        details.update(text)

    @on(DataTable.RowHighlighted, "#monitor-batches")
    def _batch_highlighted(self) -> None:
        self._paint_batch_details()

    @on(DataTable.RowSelected, "#monitor-batches")
    def _batch_selected(self) -> None:
        self.action_open()

    # ------------------------------------------------------------------ actions

    def action_back(self) -> None:
        self.dismiss(None)

    def action_refresh(self) -> None:
        if self.batch_id is None:
            self.load_batches(self.selected_batch_id())
        else:
            self.load_batch()

    def action_open(self) -> None:
        if self.batch_id is not None:
            return
        batch_id = self.selected_batch_id()
        if batch_id is not None:
            self.app.push_screen(RunMonitorScreen(batch_id))

    def _target(self) -> tuple[str, Batch] | None:
        if self.batch_id is not None:
            if self.run is None:
                return None
            return self.batch_id, self.run.batch
        row = self.selected_batch_row()
        if row is None:
            self.notify("Select a batch first.", severity="warning")
            return None
        return row.batch.id, row.batch

    def action_cancel(self) -> None:
        target = self._target()
        if target is None:
            return
        batch_id, batch = target
        if batch.status is Status.done and not self.registry.is_running(batch_id):
            self.notify("This batch is done; there is nothing to cancel.")
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._cancel(batch_id)

        self.app.push_screen(
            ConfirmDialog(
                "Cancel this batch?",
                f"Stop batch {batch_id[:8]}? Every stored message is kept, and r resumes it "
                "later from where it stopped.",
                yes="Cancel batch",
                no="Keep running",
                danger=True,
            ),
            callback=confirmed,
        )

    @work(group="monitor-action", exit_on_error=False)
    async def _cancel(self, batch_id: str) -> None:
        await self.registry.cancel(batch_id)
        self.notify(f"Batch {batch_id[:8]} is stopping; r resumes it.")
        if self.batch_id is None:
            self.load_batches(batch_id)

    def action_resume(self) -> None:
        target = self._target()
        if target is None:
            return
        batch_id, batch = target
        if self.registry.is_running(batch_id):
            self.notify("This batch is already running.")
            return
        if batch.status is Status.done:
            self.notify("This batch is done; there is nothing to resume.")
            return
        if running_elsewhere(batch):
            self.notify(
                f"Batch {batch_id[:8]} is running in {batch.runner}; cancel it there first.",
                severity="warning",
            )
            return
        self.registry.run(batch_id, resume=True)
        if self.batch_id is None:
            self.app.push_screen(RunMonitorScreen(batch_id))
        else:
            self.load_batch()
