"""The conversations of one experiment: filter them, read a transcript, see what exactly ran.

Opened from the library with ``c``. The list on the left follows the filters above it (batch,
model, days, agents per role, status, favourites); the right shows the highlighted conversation's
transcript (``TranscriptView``), its details (rendered prompts per agent, models and their
parameters, seed, tokens, errors) or its chart. Favourite, delete (owner only) and export act on
it.

The filters are the app's one ``ConversationFilter`` (``simulator.domain.filters``), which
``simulator export`` uses too, so ``E`` writes the conversations on screen, no more and no fewer;
what each filter can choose among comes from the conversation service (``filter_choices``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message as TextualMessage
from textual.screen import Screen
from textual.widgets import (
    Checkbox,
    DataTable,
    Footer,
    Header,
    Select,
    Static,
    TabbedContent,
    TabPane,
)

from simulator.db.store import PROMPT_FIELDS
from simulator.domain import Conversation, Message
from simulator.domain.cells import conversation_number, repeat_number
from simulator.domain.errors import ConfigurationError
from simulator.domain.filters import ConversationFilter
from simulator.domain.models import Experiment, ModelRef, Status
from simulator.services.conversations import (
    batch_numbers,
    filter_choices,
    list_order,
    parse_counts,
)
from simulator.tui.context import services_of, user_of
from simulator.tui.screens.base import ReportsWorkerErrors
from simulator.tui.screens.dialogs import ConfirmDialog, TextPrompt
from simulator.tui.screens.library import clip
from simulator.tui.widgets.charts import ConversationChart
from simulator.tui.widgets.transcript import TranscriptView, kind_clock, prepare_colours
from simulator.words import plural

if TYPE_CHECKING:
    from simulator.services.container import Services

# (column key, label, width)
COLUMNS: list[tuple[str, str, int]] = [
    ("cell", "#", 3),
    ("favourite", "★", 1),
    ("agents", "Agents", 6),
    ("days", "Days", 4),
    ("messages", "Msgs", 5),
    ("status", "Status", 9),
]


def model_option_label(ref: ModelRef) -> str:
    return "dryrun" if ref.provider.value == "dryrun" else ref.model


def export_format(path: Path) -> str:
    """The export format a file name asks for (``simulator export``'s extensions)."""
    # lazily: the analysis package imports pandas
    from simulator.analysis.catalog import EXTENSIONS

    fmt = {ext: fmt for fmt, ext in EXTENSIONS.items()}.get(path.suffix.lower())
    if fmt is None:
        raise ConfigurationError(
            f"'{path.name}' does not say which format to write: end the file name in "
            ".html, .md or .txt (a transcript) or .csv, .jsonl or .parquet (the messages table).",
            title="Choose a format",
        )
    return fmt


def _params_text(ref: ModelRef) -> str:
    sent = {k: v for k, v in ref.params.model_dump().items() if v is not None}
    text = ", ".join(f"{k} {v}" for k, v in sent.items()) or "provider defaults"
    if ref.options:
        text += " · options " + ", ".join(f"{k}={v}" for k, v in ref.options.items())
    return text


def _sent_text(sent: dict[str, Any]) -> str:
    """Parameters as sent; a JSON schema (structured answers) by name only, it is long."""
    if not sent:
        return "nothing sent (dryrun)"
    parts = []
    for key, value in sent.items():
        if key in ("response_format", "format"):
            value = value.get("type", "schema") if isinstance(value, dict) else value
            value = "json schema" if value in ("json_schema", "object") else value
        parts.append(f"{key} {value}")
    return ", ".join(parts)


def sent_parameters(messages: list[Message]) -> list[tuple[str, str, int]]:
    """(model label, parameters as sent, calls) for every distinct request setting stored with
    the messages (messages stored before ``sent_params`` existed are left out)."""
    seen: dict[tuple[str, str], int] = {}
    for m in messages:
        if m.sent_params is None or m.model is None:
            continue
        text = _sent_text(m.sent_params)
        if m.dropped_params:
            text += " · refused: " + ", ".join(m.dropped_params)
        key = (m.model.label, text)
        seen[key] = seen.get(key, 0) + 1
    return [(label, text, n) for (label, text), n in seen.items()]


def _prompts_by_day(per_day: list[str], day_one: str) -> list[tuple[str, str]]:
    """("", prompt) when every day's prompt is the same, else ("day d", prompt) per day."""
    prompts = per_day or [day_one]
    if len(set(prompts)) <= 1:
        return [("", prompts[0])]
    return [(f"day {day}", prompt) for day, prompt in enumerate(prompts, start=1)]


def conversation_details(
    conv: Conversation,
    experiment: Experiment,
    messages: list[Message] | None = None,
    *,
    prompts: bool = True,
) -> Text:
    """Everything that ran: cell, seed, models and parameters, tokens, errors, rendered prompts.
    With its ``messages``, also the calls that needed retries and the engine's flags. Built as
    Text (never markup): prompts and errors may contain brackets. ``prompts=False``: ``conv``
    is a brief one from the list (its kickoff and summarizer and manager prompts not read yet)."""
    out = Text()

    def heading(title: str) -> None:
        if out:
            out.append("\n")
        out.append(f"{title}\n", style="bold underline")

    def field(name: str, value: str, style: str = "") -> None:
        out.append(f"{name}: ", style="bold")
        out.append(f"{value}\n", style=style)

    cell = conv.cell
    heading(f"Conversation #{conversation_number(conv)}")
    field("id", conv.id)
    field("experiment", f"{experiment.name} (version {conv.experiment_version})")
    field("batch", conv.batch_id or "none (a single run)")
    field("owner", conv.owner or "nobody")
    field("status", conv.status.value, "bold red" if conv.status is Status.failed else "")
    field("agents per role", ", ".join(f"{role} × {n}" for role, n in cell.counts.items()))
    field("days", str(cell.days))
    field("messages", f"{conv.messages_done} of {conv.budget or cell.total_messages}")
    field("speaker selection", cell.speaker_selection.value)
    if cell.factors:
        field("factors", ", ".join(f"{k} = {v}" for k, v in cell.factors.items()))
    field("repeat", str(repeat_number(cell)))
    field("seed", str(conv.seed))
    if conv.parent_id:
        field("forked from", f"{conv.parent_id} at message {conv.forked_at}")
    when = [("created", conv.created_at), ("started", conv.started_at)]
    when.append(("finished", conv.finished_at))
    field(
        "time",
        " · ".join(
            f"{label} {value.astimezone().strftime('%Y-%m-%d %H:%M:%S')}"
            for label, value in when
            if value is not None
        ),
    )

    heading("Tokens")
    tokens = conv.tokens
    field(
        "used",
        f"{tokens.total_tokens} ({tokens.prompt_tokens} prompt, "
        f"{tokens.completion_tokens} completion)",
    )

    heading("Errors")
    if conv.error:
        out.append(f"{conv.error}\n", style="bold red")
    if conv.fallbacks:
        field("fallbacks", f"{plural(conv.fallbacks, 'message')} replaced by a default", "yellow")
    retried = [m for m in messages or [] if m.attempts > 1]
    if retried:
        extra = sum(m.attempts - 1 for m in retried)
        field(
            "retries",
            f"{plural(len(retried), 'call')} needed {plural(extra, 'more attempt')}",
            "yellow",
        )
    flags: dict[str, int] = {}
    for message in messages or []:
        for flag in message.flags:
            flags[flag] = flags.get(flag, 0) + 1
    if flags:
        field("flags", ", ".join(f"{flag} × {n}" for flag, n in flags.items()), "yellow")
    if conv.warnings:
        from simulator.llm.system_check import describe

        for warning in conv.warnings:
            field("warning", f"{warning}: {describe(warning)}", "yellow")
    if not (conv.error or conv.fallbacks or retried or flags or conv.warnings):
        out.append("none\n", style="dim")

    heading("Models and parameters")
    models = cell.models
    field(f"default ({models.default.label})", _params_text(models.default))
    for role, ref in models.per_role.items():
        field(f"{role} ({ref.label})", _params_text(ref))
    field(f"summarizer ({models.summarizer_model.label})", _params_text(models.summarizer_model))
    field(f"manager ({models.manager_model.label})", _params_text(models.manager_model))
    sent = sent_parameters(messages or [])
    if sent:
        heading("Parameters sent (as stored with the messages)")
        for label, text, n in sent:
            field(f"{label} × {n} call(s)", text)

    game = conv.game if conv.game is not None else experiment.game
    if game:
        source = "this run's own" if conv.game is not None else "the experiment's"
        heading(f"Game parameters ({source})")
        for key, value in game.items():
            field(key, str(value))

    if not prompts:
        heading("Kickoff and prompts")
        out.append("loading…\n", style="dim")
        out.rstrip()
        return out
    heading("Kickoff")
    out.append(f"{conv.kickoff or experiment.starting_message}\n")
    for agent in conv.agents:
        for day, prompt in _prompts_by_day(agent.system_prompts, agent.system_prompt):
            which = f" · {day}" if day else ""
            heading(f"Prompt of {agent.name} ({agent.role}){which} · {agent.model.label}")
            out.append(f"{prompt.strip() or '(empty)'}\n")
    if conv.summarizer_prompt:
        for day, prompt in _prompts_by_day(conv.summarizer_prompts, conv.summarizer_prompt):
            heading(f"Summarizer prompt{f' · {day}' if day else ''}")
            out.append(f"{prompt.strip()}\n")
    if conv.manager_prompt:
        heading("Manager prompt")
        out.append(f"{conv.manager_prompt.strip()}\n")
    out.rstrip()
    return out


# What each filter shows when it keeps everything: its own name first, so that a narrow
# terminal (80 columns) still says which filter is which ("All ▼ All ▼ All days" said nothing).
ALL = {
    "batch": "Any batch",
    "model": "Any model",
    "days": "Any days",
    "agents": "Any agents",
    "status": "Any status",
}


class ConversationBrowserScreen(ReportsWorkerErrors, Screen[None]):
    """The conversations of one experiment."""

    HELP_TITLE = "Conversations"
    CSS_PATH = "browser.tcss"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape",
            "back",
            "Back",
            id="browser.back",
            tooltip="Back to the list, then to the library",
        ),
        Binding("enter", "read", "Read", id="browser.read"),
        Binding("t", "tab('transcript')", "Transcript", id="browser.transcript"),
        Binding("i", "tab('details')", "Details", id="browser.details"),
        Binding("g", "tab('chart')", "Chart", id="browser.chart", show=False),
        # Export before favourite and delete: an 80-column footer ends around here.
        Binding("e", "export", "Export", id="browser.export"),
        Binding("a", "annotate", "Annotate", id="browser.annotate", show=False),
        Binding("E", "export_listed", "Export listed", id="browser.export_listed", show=False),
        Binding("f", "favourite", "Favourite", id="browser.favourite"),
        Binding("x,delete", "delete", "Delete", id="browser.delete"),
        Binding("r", "reset_filters", "Reset filters", id="browser.reset", show=False),
        Binding("l", "list", "List", id="browser.list", show=False),
        Binding("ctrl+r", "refresh", "Refresh", id="browser.refresh", show=False),
    ]

    class Loaded(TextualMessage):
        """The list to show: read from the store, or the same list under changed filters."""

        def __init__(
            self, conversations: list[Conversation], select: str | None, from_store: bool = True
        ) -> None:
            super().__init__()
            self.conversations = conversations
            self.select = select
            self.from_store = from_store

    class MessagesLoaded(TextualMessage):
        def __init__(
            self,
            conversation_id: str,
            messages: list[Message],
            conversation: Conversation | None = None,
        ) -> None:
            super().__init__()
            self.conversation_id = conversation_id
            self.messages = messages
            self.conversation = conversation  # as stored, prompts included

    class AnnotationsLoaded(TextualMessage):
        def __init__(self, conversation_id: str, annotations: list[Any]) -> None:
            super().__init__()
            self.conversation_id = conversation_id
            self.annotations = annotations

    class LiveMessage(TextualMessage):
        def __init__(self, message: Message) -> None:
            super().__init__()
            self.message = message

    class RunsChanged(TextualMessage):
        """A conversation started or ended somewhere: the list's statuses are out of date."""

    class Done(TextualMessage):
        def __init__(self, text: str, select: str | None = None) -> None:
            super().__init__()
            self.text = text
            self.select = select

    def __init__(self, experiment: Experiment) -> None:
        super().__init__()
        self.experiment = experiment
        self.all: list[Conversation] = []
        self.rows: list[Conversation] = []
        self.shown_id: str | None = None  # the conversation in the transcript and details
        self.loads = 0  # finished list loads (tests wait on it)
        self.transcript_loads = 0  # finished transcript loads
        self._unsubscribe: Any = None
        self._options: dict[str, list[tuple[str, Any]]] = {}
        self._reload_timer: Any = None
        self._loaded_once = False  # the store's list has arrived
        # The list is brief (no prompts); the prompts of conversations shown, by id (they
        # never change once a conversation exists).
        self._prompts: dict[str, dict[str, Any]] = {}
        self._chart_stale = True  # the chart does not show the transcript's messages yet
        self.annotation_loads = 0  # finished loads of the shown conversation's annotations
        self._jobs_rev = -1  # the annotation jobs' revision last shown

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal(id="browser-filters"):
            yield Select(
                [(ALL["batch"], "")], value="", allow_blank=False, id="batch-filter", compact=True
            )
            yield Select(
                [(ALL["model"], "")], value="", allow_blank=False, id="model-filter", compact=True
            )
            yield Select(
                [(ALL["days"], 0)], value=0, allow_blank=False, id="days-filter", compact=True
            )
            yield Select(
                [(ALL["agents"], "")], value="", allow_blank=False, id="counts-filter", compact=True
            )
            yield Select(
                [(ALL["status"], "")] + [(s.value, s.value) for s in Status],
                value="",
                allow_blank=False,
                id="status-filter",
                compact=True,
            )
            yield Checkbox("★ only", id="favourites-filter", compact=True)
        with Horizontal(id="browser-body"):
            table: DataTable[str] = DataTable(
                id="conversations", cursor_type="row", zebra_stripes=True
            )
            widths = self._column_widths()
            for key, label, _ in COLUMNS:
                table.add_column(label, key=key, width=widths[key])
            # the cells' width, the padding of each, the scrollbar
            table.styles.width = sum(widths.values()) + 2 * len(widths) + 2
            yield table
            with TabbedContent(id="browser-tabs", initial="transcript"):
                with TabPane("Transcript (t)", id="transcript"):
                    yield TranscriptView(
                        [r.name for r in self.experiment.roles], id="transcript-view"
                    )
                with TabPane("Details (i)", id="details"), VerticalScroll(id="details-scroll"):
                    yield Static("", id="details-text")
                with TabPane("Chart (g)", id="chart"):
                    yield ConversationChart(id="chart-view")
        yield Static("", id="browser-status")
        yield Footer()

    def _column_widths(self) -> dict[str, int]:
        """Room for "1v2v1" with every role of the experiment (up to a point)."""
        widths = {key: width for key, _, width in COLUMNS}
        widths["agents"] = max(widths["agents"], min(2 * len(self.experiment.roles) - 1, 14))
        return widths

    def on_mount(self) -> None:
        self.sub_title = f"Conversations of '{self.experiment.name}'"
        roles = " v ".join(r.name for r in self.experiment.roles)
        self.query_one("#counts-filter", Select).tooltip = f"Agents per role ({roles})"
        self.query_one("#conversations", DataTable).focus()
        bus = getattr(self.services, "bus", None)
        if bus is not None:
            self._unsubscribe = bus.subscribe(self._on_event)
        self.set_interval(0.5, self._watch_annotation_jobs)
        self.load()

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # ------------------------------------------------------------------ data

    @property
    def services(self) -> Services:
        return services_of(self.app)

    @property
    def user(self) -> str:
        return user_of(self.app)

    @property
    def transcript(self) -> TranscriptView:
        return self.query_one("#transcript-view", TranscriptView)

    def current_filter(self) -> ConversationFilter:
        batch = self.query_one("#batch-filter", Select).value
        model = self.query_one("#model-filter", Select).value
        days = self.query_one("#days-filter", Select).value
        counts = self.query_one("#counts-filter", Select).value
        status = self.query_one("#status-filter", Select).value
        return ConversationFilter(
            batch_id=batch if isinstance(batch, str) and batch else None,
            model=model if isinstance(model, str) and model else None,
            days=days if isinstance(days, int) and days else None,
            counts=parse_counts(counts) if isinstance(counts, str) and counts else None,
            status=Status(status) if isinstance(status, str) and status else None,
            favourites_only=self.query_one("#favourites-filter", Checkbox).value,
        )

    @work(exclusive=True, group="browser-load", exit_on_error=False)
    async def load(self, select: str | None = None) -> None:
        await prepare_colours()  # the role colours need the analysis layer (pandas)
        found = await self.services.conversations.list(
            ConversationFilter(experiment_id=self.experiment.id), brief=True
        )
        self.post_message(self.Loaded(found, select))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        if not message.from_store and not self._loaded_once:
            return
        self._loaded_once = True
        self.all = list_order(message.conversations)
        self._update_options()
        flt = self.current_filter()
        self.rows = [c for c in self.all if flt.matches(c)]
        select = message.select or self.shown_id
        table = self.query_one("#conversations", DataTable)
        table.clear()
        for conv in self.rows:
            table.add_row(
                str(conversation_number(conv)),
                "★" if conv.favourite else " ",
                clip(conv.cell.counts_label, self._column_widths()["agents"]),
                str(conv.cell.days),
                f"{conv.messages_done}/{conv.budget or conv.cell.total_messages}",
                conv.status.value,
                key=conv.id,
            )
        index = next((i for i, c in enumerate(self.rows) if c.id == select), 0)
        if self.rows:
            table.move_cursor(row=index)
        self._show_selected()
        self._update_status()
        self.loads += 1

    def _update_options(self) -> None:
        choices = filter_choices(self.all)
        self._set_options(
            "#batch-filter",
            [(ALL["batch"], "")]
            + [
                (f"Batch {number} ({n})" if number is not None else f"Single runs ({n})", key)
                for key, number, n in choices.batches
            ],
        )
        models = sorted((model_option_label(ref), key) for key, ref in choices.models.items())
        self._set_options("#model-filter", [(ALL["model"], ""), *models])
        self._set_options(
            "#days-filter",
            [(ALL["days"], 0)] + [(plural(d, "day"), d) for d in choices.days],
        )
        self._set_options(
            "#counts-filter",
            [(ALL["agents"], "")] + [(f"Agents {label}", key) for key, label in choices.counts],
        )

    def _set_options(self, selector: str, options: list[tuple[str, Any]]) -> None:
        if self._options.get(selector) == options:
            return
        self._options[selector] = options
        select = self.query_one(selector, Select)
        current = select.value
        values = [v for _, v in options]
        with select.prevent(Select.Changed):
            select.set_options(options)
            select.value = current if current in values else values[0]

    def _update_status(self) -> None:
        flt = self.current_filter()
        total = plural(len(self.all), "conversation")
        shown = f"{len(self.rows):,} of {total}" if flt.active else total
        conv = self.selected()
        where = ""
        if conv is not None:
            number = batch_numbers(self.all).get(conv.batch_id)
            batch = f" of batch {number}" if number is not None else " (single run)"
            where = f" · #{conversation_number(conv)}{batch} by {conv.owner or '?'}"
        self.query_one("#browser-status", Static).update(
            f"{shown}{' (filtered)' if flt.active else ''}{where} · "
            f"you are {self.user} · F1 or ? help{self._annotation_status()}"
        )

    def selected(self) -> Conversation | None:
        table = self.query_one("#conversations", DataTable)
        if not self.rows or table.cursor_row is None:
            return None
        if 0 <= table.cursor_row < len(self.rows):
            return self.rows[table.cursor_row]
        return None

    def _show_selected(self) -> None:
        conv = self.selected()
        details = self.query_one("#details-text", Static)
        if conv is None:
            self.shown_id = None
            self.transcript.clear_messages()
            details.update(
                "No conversation matches the filters (r resets them)."
                if self.all
                else "No conversations yet: run a batch of this experiment (b in the library)."
            )
            return
        known = self.transcript.messages if conv.id == self.shown_id else None
        details.update(self._details(conv, known))
        if conv.id != self.shown_id:
            self.shown_id = conv.id
            self.transcript.clear_messages()
            self.transcript.set_clock(kind_clock(conv.kind.value))
            self.load_messages(conv.id)

    def _details(self, conv: Conversation, messages: list[Message] | None) -> Text:
        prompts = self._prompts.get(conv.id)
        if prompts is not None:
            conv = conv.model_copy(update=prompts)
        return conversation_details(conv, self.experiment, messages, prompts=prompts is not None)

    @work(exclusive=True, group="browser-messages", exit_on_error=False)
    async def load_messages(self, conversation_id: str) -> None:
        conversation, messages = await self.services.conversations.transcript(conversation_id)
        self.post_message(self.MessagesLoaded(conversation_id, messages, conversation))

    @on(MessagesLoaded)
    def _messages_loaded(self, message: MessagesLoaded) -> None:
        if message.conversation_id == self.shown_id:
            # keep what arrived live while the stored ones were read
            merged = {m.seq: m for m in self.transcript.messages}
            merged.update((m.seq, m) for m in message.messages)
            self.transcript.set_messages(merged.values())
            self.transcript_loads += 1
            if message.conversation is not None:
                full = message.conversation
                self._prompts[full.id] = {f: getattr(full, f) for f in PROMPT_FIELDS}
            conv = self.selected()
            if conv is not None and conv.id == message.conversation_id:
                self.query_one("#details-text", Static).update(
                    self._details(conv, message.messages)
                )
                self.load_annotations(conv, message.messages)
            self._update_chart()

    @work(exclusive=True, group="browser-annotations", exit_on_error=False)
    async def load_annotations(self, conversation: Conversation, messages: list[Message]) -> None:
        from simulator.annotations.service import AnnotationService

        found = await AnnotationService(self.services.store).conversation_annotations(
            conversation, messages
        )
        self.post_message(self.AnnotationsLoaded(conversation.id, found))

    @on(AnnotationsLoaded)
    def _annotations_loaded(self, message: AnnotationsLoaded) -> None:
        if message.conversation_id == self.shown_id:
            self.transcript.set_annotations(message.annotations)
            self.annotation_loads += 1

    def _annotation_status(self) -> str:
        jobs = getattr(self.app, "_annotation_jobs", None)
        job = jobs.latest() if jobs is not None else None
        return f" · {job.status_text}" if job is not None else ""

    def _watch_annotation_jobs(self) -> None:
        """Show the jobs' progress, and the shown conversation's new annotations (a timer: the
        jobs keep counters, the screen repaints at most twice a second)."""
        jobs = getattr(self.app, "_annotation_jobs", None)
        if jobs is None or jobs.rev == self._jobs_rev:
            return
        self._jobs_rev = jobs.rev
        self._update_status()
        conv = self.selected()
        touched = any(conv is not None and conv.id in job.touched for job in jobs.jobs.values())
        if conv is not None and conv.id == self.shown_id and touched:
            for job in jobs.jobs.values():
                job.touched.discard(conv.id)
            self.load_annotations(conv, list(self.transcript.messages))

    def _on_event(self, event: Any) -> None:
        """Bus subscriber (called from the engine's tasks: posts only, never touches widgets)."""
        from simulator.engine.events import (
            ConversationFailed,
            ConversationFinished,
            ConversationStarted,
            MessageStored,
        )

        if isinstance(event, MessageStored):
            if event.conversation_id == self.shown_id:
                self.post_message(self.LiveMessage(event.message))
        elif isinstance(event, ConversationStarted | ConversationFinished | ConversationFailed):
            self.post_message(self.RunsChanged())

    @on(RunsChanged)
    def _runs_changed(self) -> None:
        # Many conversations may start and end each second: reload at most once a second.
        if self._reload_timer is None:
            self._reload_timer = self.set_timer(1.0, self._reload_after_runs)

    def _reload_after_runs(self) -> None:
        self._reload_timer = None
        self.load(self.shown_id)

    @on(LiveMessage)
    def _live(self, message: LiveMessage) -> None:
        if message.message.conversation_id == self.shown_id:
            self.transcript.add_message(message.message)
            self._update_chart()

    def _update_chart(self) -> None:
        """Chart what the transcript shows; only when the chart is on screen (plotting is not
        free), else when it is next shown."""
        tabs = self.query_one("#browser-tabs", TabbedContent)
        self._chart_stale = tabs.active != "chart"
        if not self._chart_stale:
            self.query_one("#chart-view", ConversationChart).show(self.transcript.messages)

    @on(TabbedContent.TabActivated, "#browser-tabs")
    def _tab_shown(self) -> None:
        if self._chart_stale:
            self._update_chart()

    @on(DataTable.RowHighlighted, "#conversations")
    def _highlighted(self) -> None:
        self._show_selected()
        self._update_status()

    @on(DataTable.RowSelected, "#conversations")
    def _selected(self) -> None:
        self.action_read()

    @on(Select.Changed)
    @on(Checkbox.Changed, "#favourites-filter")
    def _filter_changed(self) -> None:
        if self._loaded_once:  # Changed events of the filters' first mount are not choices
            self.post_message(self.Loaded(self.all, self.shown_id, from_store=False))

    @on(Done)
    def _done(self, message: Done) -> None:
        if message.text:
            self.notify(message.text)
        self.load(message.select)

    # ------------------------------------------------------------------ actions

    def _require_selection(self) -> Conversation | None:
        conv = self.selected()
        if conv is None:
            self.notify("Select a conversation first.", severity="warning")
        return conv

    def action_back(self) -> None:
        table = self.query_one("#conversations", DataTable)
        if self.focused is not None and self.focused is not table:
            table.focus()  # from the transcript, details or a filter: back to the list first
            return
        self.app.pop_screen()

    def action_read(self) -> None:
        self.query_one("#browser-tabs", TabbedContent).active = "transcript"
        self.transcript.focus()

    def action_list(self) -> None:
        self.query_one("#conversations", DataTable).focus()

    def action_tab(self, tab: str) -> None:
        """Show the transcript or the details, ready to scroll with the keys."""
        self.query_one("#browser-tabs", TabbedContent).active = tab
        panes = {"transcript": "#transcript-view", "details": "#details-scroll"}
        self.query_one(panes.get(tab, "#chart-view")).focus()

    def action_refresh(self) -> None:
        self.shown_id = None  # reload the transcript too
        self.load(self.selected_id())

    def selected_id(self) -> str | None:
        conv = self.selected()
        return conv.id if conv else None

    def action_reset_filters(self) -> None:
        with self.prevent(Select.Changed, Checkbox.Changed):
            for selector in ("#batch-filter", "#model-filter", "#counts-filter", "#status-filter"):
                self.query_one(selector, Select).value = ""
            self.query_one("#days-filter", Select).value = 0
            self.query_one("#favourites-filter", Checkbox).value = False
        if self._loaded_once:
            self.post_message(self.Loaded(self.all, self.shown_id, from_store=False))

    def _refused(self, conv: Conversation, action: str) -> bool:
        if self.services.conversations.can_delete(conv):
            return False
        whose = f"belongs to {conv.owner}" if conv.owner else "has no owner"
        self.notify(
            f"Conversation #{conversation_number(conv)} {whose}; only its owner can {action}.",
            title="Not allowed",
            severity="error",
            timeout=10,
        )
        return True

    def action_favourite(self) -> None:
        conv = self._require_selection()
        if conv is not None and not self._refused(conv, "mark it as favourite"):
            self._favourite(conv.id)

    @work(group="browser-action", exit_on_error=False)
    async def _favourite(self, conversation_id: str) -> None:
        updated = await self.services.conversations.toggle_favourite(conversation_id)
        text = "Marked as favourite." if updated.favourite else "No longer a favourite."
        self.post_message(self.Done(text, conversation_id))

    def action_delete(self) -> None:
        conv = self._require_selection()
        if conv is None or self._refused(conv, "delete it"):
            return

        index = self.rows.index(conv)
        neighbours = self.rows[index + 1 : index + 2] or self.rows[max(index - 1, 0) : index]
        then = neighbours[0].id if neighbours else None

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._delete(conv.id, conversation_number(conv), then)

        self.app.push_screen(
            ConfirmDialog(
                "Delete conversation?",
                f"Delete conversation #{conversation_number(conv)} ({conv.cell.counts_label}, "
                f"{plural(conv.cell.days, 'day')}) and its "
                f"{plural(conv.messages_done, 'agent message')}? "
                "This cannot be undone.",
                yes="Delete",
                no="Keep",
                danger=True,
            ),
            callback=confirmed,
        )

    @work(group="browser-action", exit_on_error=False)
    async def _delete(self, conversation_id: str, number: int, then: str | None) -> None:
        await self.services.conversations.delete(conversation_id)
        self.post_message(self.Done(f"Deleted conversation #{number}.", then))

    def action_annotate(self) -> None:
        """Annotate the highlighted conversation or every listed one (a judge with a rubric,
        moderation scores, a Python scorer); the job runs in the app, progress in the status."""
        from simulator.tui.annotate import AnnotateDialog, jobs_of

        if not self.rows:
            self.notify("No conversations listed: nothing to annotate.", severity="warning")
            return
        conv = self.selected()
        listed = [c.id for c in self.rows]
        one = f"#{conv.cell_index}" if conv is not None else None

        def chosen(choice: Any) -> None:
            if choice is None:
                return
            ids = [conv.id] if choice.scope == "one" and conv is not None else listed
            jobs_of(self.app).start(choice, ids)
            self._update_status()

        self.app.push_screen(AnnotateDialog(one, len(listed)), callback=chosen)

    def action_export(self) -> None:
        conv = self._require_selection()
        if conv is not None:
            number = conversation_number(conv)
            name = f"conversation-{number}-{conv.id[:8]}.html"
            self._ask_export([conv.id], f"Export conversation #{number}", name)

    def action_export_listed(self) -> None:
        if not self.rows:
            self.notify("No conversations listed: nothing to export.", severity="warning")
            return
        ids = [c.id for c in self.rows]
        title = f"Export the {plural(len(ids), 'listed conversation')}"
        self._ask_export(ids, title, "transcripts.html")

    def _ask_export(self, ids: list[str], title: str, name: str) -> None:
        default = Path.cwd() / "exports" / name

        def entered(path: str | None) -> None:
            if path and path.strip():
                self._export(ids, Path(path.strip()).expanduser())

        self.app.push_screen(
            TextPrompt(
                title,
                value=str(default),
                hint="The file name's ending chooses the format: .html, .md or .txt for a "
                "transcript; .csv, .jsonl or .parquet for the messages table (docs/analysis.md).",
            ),
            callback=entered,
        )

    @work(group="browser-action", exit_on_error=False)
    async def _export(self, ids: list[str], path: Path) -> None:
        from simulator.analysis.exports import export

        fmt = export_format(path)
        written = await export(
            self.services.store, ConversationFilter(conversation_ids=ids), fmt=fmt, output=path
        )
        where = ", ".join(str(p) for p in written)
        self.post_message(self.Done(f"Exported to {where}.", self.selected_id()))
