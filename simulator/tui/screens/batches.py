"""The list of batches: every batch with its progress, newest first, those running here on top.

Enter opens a batch's live monitor (``simulator.tui.screens.monitor.RunMonitorScreen``); resume
(``r``) continues an unfinished one, including batches an earlier session left behind; cancel
(``c``) stops one. Counts of the batches running here move live (from the app's registry of
batches, ``simulator.tui.runs``); the others are read again when the list is shown again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Static

from simulator.domain import Batch, Status
from simulator.tui.runs import RESUMABLE
from simulator.tui.screens.base import ReportsWorkerErrors
from simulator.tui.screens.library import clip
from simulator.tui.screens.monitor import (
    BatchActions,
    FitStep,
    RunMonitorScreen,
    batch_status_label,
    fit_columns,
    status_text,
)
from simulator.words import plural

LIST_REFRESH_S = 1.0
MAX_BATCHES = 100
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


@dataclass
class BatchListRow:
    batch: Batch
    experiment: str
    done: int
    failed: int
    here: bool


class BatchListScreen(BatchActions, ReportsWorkerErrors, Screen[None]):
    """Every batch, newest first (running here on top)."""

    HELP_TITLE = "Batches"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="batches.back"),
        Binding("enter", "open", "Open batch", id="batches.open", show=False),
        Binding("c", "cancel", "Cancel batch", id="batches.cancel"),
        Binding("r", "resume", "Resume batch", id="batches.resume"),
        Binding("ctrl+r", "refresh", "Refresh", id="batches.refresh", show=False),
    ]

    CSS_PATH = "batches.tcss"

    class BatchesLoaded(Message):
        def __init__(self, rows: list[BatchListRow], select: str | None) -> None:
            super().__init__()
            self.rows = rows
            self.select = select

    def __init__(self) -> None:
        super().__init__()
        self.batch_rows: list[BatchListRow] = []
        self._timer: Timer | None = None
        self._batch_widths: dict[str, int] = {}  # the columns shown, by key (on_resize)
        self.loads = 0  # finished loads (tests wait on it)

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static(
            "Batches, newest first · enter opens one · r resumes · c cancels",
            id="monitor-title",
        )
        yield DataTable(id="monitor-batches", cursor_type="row", zebra_stripes=True)
        yield Static("", id="monitor-batch-details")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#monitor-batches", DataTable).focus()
        self.load_batches()
        self._timer = self.set_interval(LIST_REFRESH_S, self._refresh_list)

    def on_resize(self) -> None:
        self._fit_batch_columns()

    def on_screen_resume(self) -> None:
        if self.loads:
            self.load_batches(self.selected_batch_id())

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
            f"{', '.join(m.value for m in spec.speaker_selection)} · repeats {spec.repeats} · "
            f"seed {spec.seed}"
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
        self.load_batches(self.selected_batch_id())

    def action_open(self) -> None:
        batch_id = self.selected_batch_id()
        if batch_id is not None:
            self.app.push_screen(RunMonitorScreen(batch_id))

    def _target(self) -> tuple[str, Batch] | None:
        row = self.selected_batch_row()
        if row is None:
            self.notify("Select a batch first.", severity="warning")
            return None
        return row.batch.id, row.batch

    def _cancelled(self, batch_id: str) -> None:
        self.load_batches(batch_id)

    def _resumed(self, batch_id: str) -> None:
        self.app.push_screen(RunMonitorScreen(batch_id))
