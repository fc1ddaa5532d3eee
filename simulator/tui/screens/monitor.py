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
    workers_elsewhere,
    workers_label,
)
from simulator.tui.screens.base import ReportsWorkerErrors
from simulator.tui.screens.dialogs import ConfirmDialog
from simulator.tui.screens.library import clip
from simulator.tui.widgets.game_chart import (
    GameChart,
    GamePoint,
    chart_of,
    point_from_event,
    points_from_states,
)
from simulator.tui.widgets.transcript import TranscriptView, kind_clock
from simulator.words import plural

if TYPE_CHECKING:
    from simulator.services.container import Services

FLUSH_S = 0.25  # how often the screen repaints from the registry
# The transcript grows at most once a second: each growth costs the whole screen a layout pass.
TRANSCRIPT_FLUSH_S = 1.0
LIST_REFRESH_S = 1.0
ELSEWHERE_REFRESH_S = 2.0  # a batch that other processes run: how often its stored state is read
MAX_BATCHES = 100

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


Columns = list[tuple[str, int, bool]]
# How a table of columns gives way when the screen is narrow: ("shrink", label, minimum width)
# or ("drop", label), tried in order until the line fits.
FitStep = tuple[str, str, int]
CONVERSATION_FIT: list[FitStep] = [
    ("shrink", "Errors", 6),
    ("shrink", "Model", 8),
    ("shrink", "Cell", 16),
    ("shrink", "Tokens", 6),
]


def line_width(columns: Columns) -> int:
    return sum(width for _, width, _ in columns) + len(COLUMN_GAP) * max(len(columns) - 1, 0)


def fit_columns(columns: Columns, width: int, steps: list[FitStep], grow: str = "") -> Columns:
    """``columns`` in at most ``width`` characters: each step shrinks or drops a column until
    the line fits; spare room goes to the ``grow`` column."""
    fitted = list(columns)
    for action, label, minimum in steps:
        over = line_width(fitted) - width
        if over <= 0:
            break
        index = next(i for i, (name, _, _) in enumerate(fitted) if name == label)
        name, current, right = fitted[index]
        if action == "drop":
            fitted.pop(index)
        else:
            fitted[index] = (name, max(minimum, current - over), right)
    spare = width - line_width(fitted)
    if grow and spare > 0:
        fitted = [(n, w + spare if n == grow else w, r) for n, w, r in fitted]
    return fitted


def pick(values: list[str], columns: Columns, fitted: Columns) -> list[str]:
    """The values of the columns ``fit_columns`` kept."""
    by_label = {label: value for (label, _, _), value in zip(columns, values, strict=True)}
    return [by_label[label] for label, _, _ in fitted]


def conversation_header(columns: Columns = CONVERSATION_COLUMNS) -> Text:
    return columns_header(columns)


def conversation_line(row: ConversationRow, columns: Columns = CONVERSATION_COLUMNS) -> Text:
    """The row's columns in one line; the status in its colour."""
    values = pick(conversation_cells(row), CONVERSATION_COLUMNS, columns)
    status = next(i for i, (label, _, _) in enumerate(columns) if label == "Status")
    return columns_line(values, columns, {status: RICH_STATUS_STYLE.get(row.status, "")})


def summary_text(run: BatchRun, now: float | None = None) -> str:
    """Two lines, the first with what matters most (cut last in a narrow terminal): which batch,
    its status and its time (elapsed, ETA) or its problem; then the counts."""
    batch = run.batch
    here = run.running
    status = batch_status_label(batch, here)
    first = (
        f"[b]Batch {batch.id[:8]}[/b] · {escape(clip(run.experiment_name, 24))} · "
        f"[b]{status}[/b] · elapsed {duration_label(run.elapsed_s(now))}"
    )
    if here:
        first += f" · ETA {duration_label(run.eta_s(now))}"
    elif batch.error and batch.status is Status.failed:
        first += f" · [red]{escape(clip(batch.error, 200))}[/red]"
    elif batch.status in RESUMABLE:
        if batch.stop_reason and "budget cap" in batch.stop_reason:
            first += f" · [yellow]{escape(clip(batch.stop_reason, 120))}[/yellow]"
        first += " · r resumes it"
    running = run.count(Status.running) if here else 0
    tokens = sum(r.tokens for r in run.rows.values())
    budget = run.messages_budget
    messages = f"{run.messages_done:,}/{budget:,}" if budget else f"{run.messages_done:,}"
    created = batch.created_at.strftime("%Y-%m-%d %H:%M")
    second = " · ".join(
        [
            f"{run.count(Status.done)}/{run.total} done",
            f"{run.count(Status.failed)} failed",
            f"{running} running",
            f"messages {messages}",
            f"tokens {tokens:,}",
            f"created {created} UTC by {escape(batch.owner or '?')}",
        ]
    )
    workers = workers_label(run.rows.values())
    if workers and not here:  # run by workers elsewhere: who runs how many
        second = f"{second} · workers {escape(workers)}"
    if run.warnings:  # first on its line, so a narrow screen never cuts it off
        warned = ", ".join(escape(w) for w in run.warnings)
        second = f"[yellow]⚠ {warned}[/yellow] · {second}"
    third = ledger_line(run)
    return f"{first}\n{second}" + (f"\n{third}" if third else "")


def ledger_line(run: BatchRun) -> str:
    """Cost so far, answers from the response cache, the prompt tokens served from the
    servers' caches, the caps and the remaining cost (docs/cost.md); empty when none of it
    says anything (a dryrun batch without caps or cache)."""
    from simulator.domain import CacheMode
    from simulator.engine.ledger import remaining_cost

    ledger, spec = run.ledger, run.batch.spec
    capped = spec.max_cost_usd is not None or spec.max_total_tokens is not None
    if ledger is None or not (
        capped
        or spec.cache is not CacheMode.off
        or ledger.cost_usd
        or ledger.unpriced_calls
        or ledger.cached_tokens
    ):
        return ""
    cost = f"${ledger.cost_usd:,.4f}" + (" + ?" if ledger.unpriced_calls else "")
    parts = [f"cost {cost}", f"calls {ledger.calls:,}"]
    if spec.cache is not CacheMode.off or ledger.cache_hits:
        parts.append(f"from cache {ledger.cache_hits:,}")
    share = ledger.cached_share
    if ledger.cached_tokens and share is not None:
        parts.append(f"prompt cached {share:.0%}")
    if spec.max_cost_usd is not None:
        parts.append(f"cap ${spec.max_cost_usd:g}")
    if spec.max_total_tokens is not None:
        parts.append(f"tokens {ledger.tokens:,}/{spec.max_total_tokens:,}")
    left = remaining_cost(run.batch.estimate, ledger) if run.running else None
    if left is not None:
        parts.append(f"≈ ${left:,.4f} to go")
    return " · ".join(parts)


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
        Binding(
            "escape",
            "back",
            "Back",
            id="monitor.back",
            tooltip="From the transcript: back to the table; from the table: back",
        ),
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
        self._elsewhere_loaded = time.monotonic()
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
        self._columns = CONVERSATION_COLUMNS  # narrowed to the table's width (on_resize)
        self._batch_widths: dict[str, int] = {}  # the list's columns shown, by key (on_resize)

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
                "Batches, newest first · enter opens one · r resumes · c cancels",
                id="monitor-title",
            )
            yield DataTable(id="monitor-batches", cursor_type="row", zebra_stripes=True)
            yield Static("", id="monitor-batch-details")
        else:
            yield Static("Loading the batch…", id="monitor-summary")
            yield ProgressBar(total=1, show_eta=False, id="monitor-progress")
            table: DataTable[Any] = DataTable(
                id="monitor-conversations", cursor_type="row", zebra_stripes=True
            )
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

    def on_resize(self) -> None:
        if self.batch_id is None:
            self._fit_batch_columns()
            return
        table = self.query_one("#monitor-conversations", DataTable)
        width = table.size.width - 4  # the cell's padding and the scrollbar
        columns = fit_columns(CONVERSATION_COLUMNS, width, CONVERSATION_FIT)
        if width <= 0 or columns == self._columns:
            return
        self._columns = columns
        table.clear(columns=True)
        table.add_column(conversation_header(columns), key="row")
        self._table_ids = []  # every row again, in the new columns
        if self.run is not None:
            self._paint_rows(self.run)

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
        self.query_one("#monitor-transcript", TranscriptView).set_clock(kind_clock(self.kind))
        if chart_of(self.kind) is not None and self._chart is None:
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
            not run.running
            and now - self._elsewhere_loaded >= ELSEWHERE_REFRESH_S
            and running_elsewhere(run.batch)
        ):  # workers of other processes run it: read their progress again
            self._elsewhere_loaded = now
            self.load_batch()
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
            # a layout pass only when the ledger's line comes or goes (2 or 3 lines)
            relayout = text.count("\n") != self._summary.count("\n")
            self._summary = text
            self.query_one("#monitor-summary", Static).update(text, layout=relayout)
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
                table.add_row(conversation_line(row, self._columns), key=row.id)
                self._row_revs[row.id] = row.rev
            self._table_ids = ids
            if rows:
                table.move_cursor(row=min(max(cursor, 0), len(rows) - 1))
        else:
            for row in rows:
                if self._row_revs.get(row.id) == row.rev:
                    continue
                self._row_revs[row.id] = row.rev
                table.update_cell(row.id, "row", conversation_line(row, self._columns))
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
        transcript.set_clock(kind_clock(self.kind))
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
        """The chart's points so far: from the latest snapshot when it holds every round's
        record (commons), else from every step's snapshot (reputation: each holds its step's
        metrics); the kind's chart says which."""
        states = self.services.store.states
        chart = chart_of(self.kind)
        if chart is not None and chart.latest_only:
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
            point = point_from_event(event, self.kind)
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

    def _fit_batch_columns(self) -> None:
        """The list's columns for its width: at 80 columns the owner gives way and the
        experiment's name shortens."""
        table = self.query_one("#monitor-batches", DataTable)
        full = [(key, width, False) for key, _, width in BATCH_COLUMNS]
        steps: list[FitStep] = [("drop", "owner", 0), ("shrink", "experiment", 10)]
        fitted = {key: width for key, width, _ in fit_columns(full, table.size.width - 4, steps)}
        if fitted == self._batch_widths:
            return
        self._batch_widths = fitted
        table.clear(columns=True)
        for key, label, _ in BATCH_COLUMNS:
            if key in fitted:
                table.add_column(label, key=key, width=fitted[key])
        self._fill_batches(self.selected_batch_id())

    @on(BatchesLoaded)
    def _batches_loaded(self, message: BatchesLoaded) -> None:
        self.batch_rows = message.rows
        self._fill_batches(message.select)
        self.loads += 1

    def _fill_batches(self, select: str | None) -> None:
        if not self._batch_widths:
            self._fit_batch_columns()
            return
        table = self.query_one("#monitor-batches", DataTable)
        table.clear()
        for row in self.batch_rows:
            table.add_row(*self._batch_cells(row).values(), key=row.batch.id)
        for index, row in enumerate(self.batch_rows):
            if row.batch.id == select:
                table.move_cursor(row=index)
                break
        self._paint_batch_details()

    def _batch_cells(self, row: BatchListRow) -> dict[str, Any]:
        """The row's cells by column key, for the columns shown."""
        b = row.batch
        label = batch_status_label(b, row.here)
        status = Status.running if label == "running" else b.status
        cells = {
            "batch": b.id[:8],
            "experiment": clip(row.experiment, self._batch_widths.get("experiment", 18)),
            "status": status_text(status, label),
            "done": str(row.done),
            "failed": str(row.failed),
            "total": str(b.cells_total),
            "created": b.created_at.strftime("%Y-%m-%d %H:%M"),
            "owner": clip(b.owner, 8),
        }
        return {key: value for key, value in cells.items() if key in self._batch_widths}

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
            for key, value in self._batch_cells(row).items():
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
        days = f"1..{spec.days} days" if spec.every_day_count else plural(spec.days, "day")
        text = (
            f"[b]{b.id[:8]}[/b] · {plural(spec.total_messages, 'message')} over {days} · agents "
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
        # One key from a detail back to its list: the transcript (or chart) to the table first.
        table_id = "#monitor-batches" if self.batch_id is None else "#monitor-conversations"
        table = self.query_one(table_id, DataTable)
        if self.focused is not None and self.focused is not table:
            table.focus()
            return
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
                f"Batch {batch_id[:8]} is running in {', '.join(workers_elsewhere(batch))}; "
                "cancel it there first.",
                severity="warning",
            )
            return
        self.registry.run(batch_id, resume=True)
        if self.batch_id is None:
            self.app.push_screen(RunMonitorScreen(batch_id))
        else:
            self.load_batch()
