"""The run monitor: one batch live.

``RunMonitorScreen(batch_id)`` shows one batch: a progress bar with counts and an ETA (both in
model calls, summaries and manager calls included), a row per conversation (cell, model, status,
calls done of the planned ones, tokens, problems) and the transcript of the highlighted
conversation as it is written. The list of batches is its own screen
(``simulator.tui.screens.batches.BatchListScreen``); both cancel (``c``) and resume (``r``)
through ``BatchActions``.

A game (commons, reputation) also gets a chart beside the transcript: the resource and the
credits per round, or the cooperation and the network's ties per step, growing as they end.

The batch itself runs on its own thread (``simulator.tui.runs``): leaving this screen does not
stop it.
The screen reads the registry's counters a few times a second and repaints only rows that
changed, so a large batch never floods the UI.
"""

from __future__ import annotations

import asyncio
import time
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
from textual.widgets import DataTable, Footer, ProgressBar, Static

from simulator.domain import Batch, Status
from simulator.domain import Message as StoredMessage
from simulator.domain.models import Ledger
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
from simulator.tui.screens.dialogs import ConfirmDialog, MessageDialog
from simulator.tui.screens.library import clip
from simulator.tui.widgets.game_chart import (
    GameChart,
    GamePoint,
    chart_of,
    point_from_event,
    points_from_states,
)
from simulator.tui.widgets.header import AppHeader
from simulator.tui.widgets.transcript import TranscriptView, kind_clock

if TYPE_CHECKING:
    from simulator.services.container import Services

FLUSH_S = 0.25  # how often the screen repaints from the registry
ELSEWHERE_REFRESH_S = 2.0  # a batch that other processes run: how often its stored state is read
# The transcript grows at most once a second: each growth costs the whole screen a layout pass.
TRANSCRIPT_FLUSH_S = 1.0
#: A list longer than this is filled in chunks of it, the loop free between them (one pass over
#: 2,000 rows, the table then measuring them all at its next idle, blocked it for 150-250 ms)
FILL_CHUNK = 200
FILL_PAUSE_S = 0.005

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
    ("Calls", 7, True),
    ("Tokens", 8, True),
    ("Errors", 14, False),
]
COLUMN_GAP = "  "


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


def calls_cell(row: ConversationRow) -> str:
    """Model calls stored of those planned (agent turns, summaries, manager, game decisions)."""
    return f"{row.calls}/{row.planned}" if row.planned else str(row.calls)


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
        calls_cell(row),
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
    budget, planned = run.messages_budget, run.calls_planned
    messages = f"{run.messages_done:,}/{budget:,}" if budget else f"{run.messages_done:,}"
    calls = f"{run.calls_done:,}/{planned:,}" if planned else f"{run.calls_done:,}"
    created = batch.created_at.strftime("%Y-%m-%d %H:%M")
    second = " · ".join(
        [
            f"{run.count(Status.done)}/{run.total} done",
            f"{run.count(Status.failed)} failed",
            f"{running} running",
            f"calls {calls}",
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


def ledger_breakdown(ledger: Ledger) -> str:
    """The ledger by model and role (a role's purposes summed), one aligned line each, then the
    totals: what ``l`` shows in the monitor."""
    head = ("model", "role", "calls", "cache", "prompt", "completion", "cached", "cost")
    rows = [head]
    for r in [*ledger.by_model_and_role(), None]:
        part = ledger if r is None else Ledger(batch_id=ledger.batch_id, rows=[r])
        cost = f"${part.cost_usd:,.4f}" + (" + ?" if part.unpriced_calls else "")
        if part.calls and part.unpriced_calls == part.calls:
            cost = "unknown"
        rows.append(
            (
                "all" if r is None else r.model,
                "" if r is None else r.role,
                f"{part.calls:,}",
                f"{part.cache_hits:,}",
                f"{part.prompt_tokens:,}",
                f"{sum(x.completion_tokens for x in part.rows):,}",
                f"{part.cached_tokens:,}",
                cost,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(len(lines) - 1, "")
    return "\n".join(line.rstrip() for line in lines)


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


class BatchActions:
    """Cancel (``c``) and resume (``r``) the batch a screen shows or highlights, through the
    app's registry of batches (a batch running here is stopped by its own thread)."""

    app: Any
    _target: Any  # () -> (batch id, batch) | None

    @property
    def services(self) -> Services:
        return services_of(self.app)

    @property
    def registry(self) -> Any:
        return runs_of(self.app)

    def action_cancel(self) -> None:
        target = self._target()
        if target is None:
            return
        batch_id, batch = target
        if batch.status is Status.done and not self.registry.is_running(batch_id):
            self.notify("This batch is done; there is nothing to cancel.")  # type: ignore[attr-defined]
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
        self.notify(f"Batch {batch_id[:8]} is stopping; r resumes it.")  # type: ignore[attr-defined]
        self._cancelled(batch_id)

    def _cancelled(self, batch_id: str) -> None:
        """After a cancel (the list reloads)."""

    def action_resume(self) -> None:
        target = self._target()
        if target is None:
            return
        batch_id, batch = target
        if self.registry.is_running(batch_id):
            self.notify("This batch is already running.")  # type: ignore[attr-defined]
            return
        if batch.status is Status.done:
            self.notify("This batch is done; there is nothing to resume.")  # type: ignore[attr-defined]
            return
        if running_elsewhere(batch):
            self.notify(  # type: ignore[attr-defined]
                f"Batch {batch_id[:8]} is running in {', '.join(workers_elsewhere(batch))}; "
                "cancel it there first.",
                severity="warning",
            )
            return
        self.registry.run(batch_id, resume=True)
        self._resumed(batch_id)

    def _resumed(self, batch_id: str) -> None:
        """After a resume: show the batch."""


class RunMonitorScreen(BatchActions, ReportsWorkerErrors, Screen[None]):
    """One batch live."""

    HELP_TITLE = "Run monitor"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape",
            "back",
            "Back",
            id="monitor.back",
            tooltip="From the transcript: back to the table; from the table: back",
        ),
        Binding("c", "cancel", "Cancel batch", id="monitor.cancel"),
        Binding("r", "resume", "Resume batch", id="monitor.resume"),
        Binding("ctrl+r", "refresh", "Refresh", id="monitor.refresh", show=False),
        Binding(
            "l",
            "ledger",
            "Ledger",
            id="monitor.ledger",
            show=False,
            tooltip="What the batch spent so far, by model and role",
        ),
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

    def __init__(self, batch_id: str) -> None:
        super().__init__()
        self.batch_id = batch_id
        self.run: BatchRun | None = None
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
        self._filling: list[str] | None = None  # the ids a chunked fill is putting in the table
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

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield AppHeader(show_clock=False)
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
        self.query_one("#monitor-conversations", DataTable).focus()
        bus = getattr(self.services, "bus", None)
        if bus is not None:  # the registry publishes the batch threads' events there
            self._unsubscribe = bus.subscribe(self._on_bus_event)
        self.load_batch()
        self._timer = self.set_interval(FLUSH_S, self.flush)

    def on_resize(self) -> None:
        table = self.query_one("#monitor-conversations", DataTable)
        width = table.size.width - 4  # the cell's padding and the scrollbar
        columns = fit_columns(CONVERSATION_COLUMNS, width, CONVERSATION_FIT)
        if width <= 0 or columns == self._columns:
            return
        self._columns = columns
        table.clear(columns=True)
        table.add_column(conversation_header(columns), key="row")
        self._table_ids = []  # every row again, in the new columns
        self._filling = None  # a fill under way starts again
        if self.run is not None:
            self._paint_rows(self.run)

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # ------------------------------------------------------------------ one batch

    @work(exclusive=True, group="monitor-load", exit_on_error=False)
    async def load_batch(self) -> None:
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
            if len(rows) > FILL_CHUNK:
                if self._filling != ids:
                    self._filling = ids
                    self._fill_rows(rows, ids)
                return  # the fill paints the selection when it is done
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

    @work(exclusive=True, group="monitor-fill", exit_on_error=False)
    async def _fill_rows(self, rows: list[Any], ids: list[str]) -> None:
        """Put a long list in the table ``FILL_CHUNK`` rows at a time, letting the loop (and
        the table's own measuring of the rows added) run between chunks."""
        table = self.query_one("#monitor-conversations", DataTable)
        cursor = table.cursor_row
        self._table_ids = []
        table.clear()
        try:
            for start in range(0, len(rows), FILL_CHUNK):
                for row in rows[start : start + FILL_CHUNK]:
                    table.add_row(conversation_line(row, self._columns), key=row.id)
                    self._row_revs[row.id] = row.rev
                await asyncio.sleep(FILL_PAUSE_S)
        finally:
            if self._filling == ids:
                self._filling = None
        self._table_ids = ids
        table.move_cursor(row=min(max(cursor, 0), len(rows) - 1))
        self._seen_rev = -1  # rows that moved on meanwhile are repainted at the next flush
        if self.selected is None:
            self._select(ids[0])
        else:
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

    # ------------------------------------------------------------------ actions

    def action_back(self) -> None:
        # One key from a detail back to its list: the transcript (or chart) to the table first.
        table = self.query_one("#monitor-conversations", DataTable)
        if self.focused is not None and self.focused is not table:
            table.focus()
            return
        self.dismiss(None)

    def action_ledger(self) -> None:
        run = self.run
        if run is None or run.ledger is None or not run.ledger.rows:
            self.notify("No model call yet: the ledger is empty.", title="Ledger")
            return
        self.app.push_screen(
            MessageDialog(
                f"Ledger of batch {run.batch.id[:8]}: by model and role",
                ledger_breakdown(run.ledger),
                error=False,
            )
        )

    def action_refresh(self) -> None:
        self.load_batch()

    def _target(self) -> tuple[str, Batch] | None:
        if self.run is None:
            return None
        return self.batch_id, self.run.batch

    def _resumed(self, batch_id: str) -> None:
        self.load_batch()
