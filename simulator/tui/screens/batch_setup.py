"""Batch setup: the grid to run an experiment on, a preview of its cells and what it will cost.

The form on the left is read on every change and planned by the batch service
(``simulator.services.batches.plan_batch``, which ``simulator run`` uses too): each problem is
shown under the field it belongs to and the batch cannot start until there is none. The right
side lists the grid's cells and the totals (conversations, LLM calls, tokens, cost estimate).
ctrl+s asks once more, stores the batch and opens the run monitor; the batch then runs in the
app, whichever screen is shown.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    Select,
    Static,
)

from simulator.domain import BatchSpec, Experiment, ExperimentKind, GridCell, SpeakerSelection
from simulator.domain.errors import SimulatorError
from simulator.engine.grid import Prices
from simulator.services.batches import (
    GRID,
    BatchPlan,
    choose_models,
    max_agents_key,
    models_of,
    plan_batch,
    prepare_kind,
)
from simulator.tui.context import services_of
from simulator.tui.screens.base import ReportsWorkerErrors
from simulator.tui.screens.dialogs import ConfirmDialog
from simulator.tui.screens.library import clip
from simulator.tui.screens.monitor import FitStep, columns_header, columns_line, fit_columns, pick
from simulator.words import plural

log = logging.getLogger(__name__)

PREVIEW_ROWS = 200  # cells listed in the preview table (the totals count them all)
SAME = ""  # Select value: "the default model"

# The speaker selection checkboxes, two a line (the note under them explains auto and manual).
SPEAKER_BOXES = {
    SpeakerSelection.round_robin: "round robin",
    SpeakerSelection.random: "random",
    SpeakerSelection.auto: "auto",
    SpeakerSelection.manual: "manual",
}


#: The form's inputs: BatchSpec field -> the key of its input (#in-KEY) and error (#err-KEY).
INPUTS = {
    "total_messages": "total",
    "days": "days",
    "repeats": "repeats",
    "seed": "seed",
    "concurrency": "concurrency",
    "rounds": "rounds",
    "max_cost_usd": "cap-cost",
    "max_total_tokens": "cap-tokens",
}
#: Other fields with an error line of their own: BatchSpec field -> its key (#err-KEY).
OTHER_ERRORS = {"speaker_selection": "speaker"}


def _default(name: str) -> str:
    """What a number input shows first: BatchSpec's own default."""
    return str(BatchSpec.model_fields[name].default)


def cost_label(plan: BatchPlan, prices: Prices | None, price_problem: str = "") -> str:
    est = plan.estimate
    if est is None:
        return ""
    if est.cost_usd is not None:
        return f"about ${est.cost_usd:,.2f}"
    if plan.only_dryrun:
        return "$0.00 (dryrun)"
    if price_problem:
        return f"unknown ({price_problem})"
    return "unknown (a model has no price)" if prices else "unknown (no PRICE_TABLE)"


def _count(n: int, noun: str) -> str:
    number, words = plural(n, noun).split(" ", 1)
    return f"[b]{number}[/b] {words}"


def totals_text(plan: BatchPlan, prices: Prices | None, price_problem: str = "") -> str:
    """Three short lines (each cut at the edge in a narrow terminal, never wrapped)."""
    est = plan.estimate
    if est is None:
        return "Fix the fields marked in red to see the grid."
    return (
        f"{_count(est.conversations, 'conversation')} · {_count(est.llm_calls, 'LLM call')}\n"
        f"~{_count(est.tokens, 'token')} · {cost_label(plan, prices, price_problem)}\n"
        f"[dim]{plan.grid}[/dim]"
    )


def cell_row(index: int, cell: GridCell) -> list[str]:
    levels = list(cell.factors.values())
    if cell.speaker_selection is not SpeakerSelection.round_robin:
        levels.append(cell.speaker_selection.value)
    factors = ", ".join(levels) or "-"
    return [
        str(index + 1),
        cell.counts_label,
        str(cell.days),
        factors,
        str(cell.repeat + 1),
        str(cell.seed),
    ]


# (label, width, right-aligned): a cell of the grid is one pre-formatted line (cheap to repaint).
PREVIEW_COLUMNS: list[tuple[str, int, bool]] = [
    ("#", 3, True),
    ("Agents", 6, False),
    ("Days", 4, True),
    ("Factors", 14, False),
    ("Rep", 3, True),
    ("Seed", 8, False),
]
# A narrow preview drops the seed, then the repeat, then shortens the factors; room to spare
# goes to the factors.
PREVIEW_FIT: list[FitStep] = [("drop", "Seed", 0), ("drop", "Rep", 0), ("shrink", "Factors", 6)]


# --------------------------------------------------------------------------- the screen


class BatchSetupScreen(ReportsWorkerErrors, Screen[None]):
    """Choose the grid of a batch, see what it costs, start it."""

    HELP_TITLE = "Batch setup"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "start", "Start batch", id="batch_setup.start", priority=True),
        Binding("escape", "back", "Back", id="batch_setup.back"),
    ]

    CSS_PATH = "batch_setup.tcss"

    class Started(Message):
        def __init__(self, batch_id: str) -> None:
            super().__init__()
            self.batch_id = batch_id

    class NewerVersion(Message):
        """The experiment is an older version: ``latest`` supersedes it."""

        def __init__(self, latest: Experiment) -> None:
            super().__init__()
            self.latest = latest

    def __init__(self, experiment: Experiment) -> None:
        super().__init__()
        self.experiment = experiment
        self.models = models_of(experiment)
        self.fields: dict[str, object] = {}  # the form as last read (BatchSpec's field names)
        self.prices: dict[str, dict[str, float]] = {}
        self.price_problem = ""
        self.plan = BatchPlan()
        self.checks = 0  # plans computed (tests wait on it)
        self._recheck_timer: Timer | None = None
        self._starting = False
        self._preview_columns = PREVIEW_COLUMNS  # fitted to the preview's width (on_resize)

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        exp = self.experiment
        dialogue = exp.kind is ExperimentKind.dialogue
        model_options = [(clip(m.label, 30), str(i)) for i, m in enumerate(self.models)]
        same = [("same as default", SAME)]
        yield Header(show_clock=False)
        yield Static(self._banner(), id="setup-banner", markup=False)
        with Horizontal(id="setup-body"):
            with VerticalScroll(id="setup-form"):
                yield Static("Models", classes="setup-heading first")
                yield from self._row(
                    "Default",
                    Select(
                        model_options,
                        value="0",
                        allow_blank=False,
                        id="model-default",
                        compact=True,
                    ),
                )
                for i, role in enumerate(exp.roles):
                    yield from self._row(
                        clip(role.name, 16),
                        Select(
                            same + model_options,
                            value=SAME,
                            allow_blank=False,
                            id=f"model-role-{i}",
                            compact=True,
                        ),
                    )
                if dialogue:
                    yield from self._row(
                        "Summarizer",
                        Select(
                            same + model_options,
                            value=SAME,
                            allow_blank=False,
                            id="model-summarizer",
                            compact=True,
                        ),
                    )
                    yield from self._row(
                        "Manager (auto)",
                        Select(
                            same + model_options,
                            value=SAME,
                            allow_blank=False,
                            id="model-manager",
                            compact=True,
                        ),
                    )
                yield Static("Length", classes="setup-heading")
                if dialogue:
                    yield from self._row(
                        "Total messages", self._input(_default("total_messages"), "total"), "total"
                    )
                    yield from self._row(
                        "Days",
                        self._input(_default("days"), "days", narrow=True),
                        "days",
                        Checkbox("each 1..N", id="every-day-count", compact=True),
                    )
                else:
                    yield from self._row(
                        "Rounds", self._input("", "rounds", placeholder="the game's own"), "rounds"
                    )
                yield Static("Agents per role (maximum)", classes="setup-heading")
                for i, role in enumerate(exp.roles):
                    yield from self._row(
                        clip(role.name, 16), self._input("1", f"max-{i}", narrow=True), f"max-{i}"
                    )
                yield from self._row(
                    "",
                    Checkbox("every combination", value=True, id="every-combination", compact=True),
                )
                yield Static("Run", classes="setup-heading")
                if dialogue:
                    # One or more methods (a grid dimension), two a line: space toggles one.
                    first, second, third, fourth = (
                        Checkbox(
                            SPEAKER_BOXES[s],
                            value=s is SpeakerSelection.round_robin,
                            id=f"speaker-{s.value}",
                            compact=True,
                        )
                        for s in SpeakerSelection
                    )
                    yield from self._row("Speaker", first, None, second, label_class="short")
                    yield from self._row("", third, "speaker", fourth, label_class="short")
                    yield Static("", id="speaker-note", classes="setup-note")
                yield from self._row(
                    "Repeats",
                    self._input("1", "repeats", narrow=True),
                    "repeats",
                    Label("Seed", classes="setup-label inline"),
                    self._input("0", "seed", narrow=True),
                    more_errors=("seed",),
                )
                yield from self._row(
                    "At once",
                    self._input(_default("concurrency"), "concurrency", narrow=True),
                    "concurrency",
                )
                yield from self._row(
                    "Max cost (USD)",
                    self._input("", "cap-cost", narrow=True, placeholder="no cap"),
                    "cap-cost",
                )
                yield from self._row(
                    "Max tokens",
                    self._input("", "cap-tokens", narrow=True, placeholder="no cap"),
                    "cap-tokens",
                )
            with Vertical(id="setup-side"):
                table: DataTable[str] = DataTable(
                    id="setup-grid", cursor_type="row", zebra_stripes=True
                )
                table.add_column(columns_header(self._preview_columns), key="cell")
                yield table
                yield Static("", id="setup-grid-error")
                yield Static("", id="setup-totals")
                with Horizontal(id="setup-buttons"):
                    yield Button("Back", id="setup-back", compact=True)
                    yield Button(
                        "Start (ctrl+s)", id="setup-start", variant="primary", compact=True
                    )
        yield Footer()

    def _banner(self, latest: Experiment | None = None) -> str:
        exp = self.experiment
        text = f"New batch of '{clip(exp.name, 30)}' v{exp.version} ({exp.kind.value})"
        if latest is not None:
            return f"{text} · an OLDER version: v{latest.version} is the latest"
        return f"{text} · ctrl+s starts it · esc goes back"

    def _input(self, value: str, key: str, *, narrow: bool = False, placeholder: str = "") -> Input:
        return Input(
            value,
            id=f"in-{key}",
            compact=True,
            placeholder=placeholder,
            classes="narrow" if narrow else "",
        )

    def _row(
        self,
        label: str,
        widget: Any,
        error_key: str | None = None,
        *extra: Any,
        more_errors: tuple[str, ...] = (),
        label_class: str = "",
    ) -> ComposeResult:
        with Horizontal(classes="setup-row"):
            yield Label(label, classes=f"setup-label {label_class}".strip(), markup=False)
            yield widget
            yield from extra
        for key in (error_key, *more_errors):
            if key is not None:
                yield Static("", classes="setup-error", id=f"err-{key}", markup=False)

    def on_mount(self) -> None:
        self._check_version()
        self._warm_up()
        self._load_prices()
        self.query_one("#in-total" if self._dialogue else "#in-rounds", Input).focus()
        if self._dialogue:
            self.recheck()  # a game's estimate imports its scenario: after the warm-up

    @work(group="batch-setup-version", exit_on_error=False)
    async def _check_version(self) -> None:
        latest = await services_of(self.app).experiments.latest_version(self.experiment)
        if latest.id != self.experiment.id:
            self.post_message(self.NewerVersion(latest))

    @on(NewerVersion)
    def _newer_version(self, message: NewerVersion) -> None:
        """Say it, and offer the latest: a batch runs exactly the version it is set up on."""
        old, latest = self.experiment, message.latest
        self.query_one("#setup-banner", Static).update(self._banner(latest))
        added = [m.label for m in latest.models if m not in old.models]
        offers = f" v{latest.version} also offers {', '.join(added)}." if added else ""
        saved = latest.created_at.astimezone().strftime("%Y-%m-%d %H:%M")

        def answered(switch: bool | None) -> None:
            if switch:
                self.app.switch_screen(BatchSetupScreen(latest))

        self.app.push_screen(
            ConfirmDialog(
                "An older version",
                f"'{old.name}' v{old.version} is not the latest version: v{latest.version} "
                f"(saved {saved}) is.{offers} A batch runs exactly the version it is set up "
                f"on. Set up the batch on v{latest.version} instead?",
                yes=f"Use v{latest.version}",
                no=f"Keep v{old.version}",
            ),
            callback=answered,
        )

    @work(thread=True, group="batch-setup-warm-up", exit_on_error=False)
    def _warm_up(self) -> None:
        # While the user fills the form: the first batch then starts without a pause. A game's
        # scenario (its call estimator; reputation pulls in networkx) is imported here too.
        from simulator.tui.runs import warm_up

        if not self._dialogue:
            try:
                prepare_kind(self.experiment.kind)
            except SimulatorError as exc:  # a kind this version does not know: the plan says so
                log.warning("cannot prepare kind %s: %s", self.experiment.kind.value, exc)
            self.app.call_from_thread(self.recheck)
        warm_up(freeze=True)

    @property
    def _dialogue(self) -> bool:
        return self.experiment.kind is ExperimentKind.dialogue

    def _load_prices(self) -> None:
        path = services_of(self.app).settings.price_table
        if path is None:
            return
        from simulator.engine.spec import load_price_table

        try:
            self.prices = load_price_table(path)
        except SimulatorError as exc:
            self.price_problem = "the PRICE_TABLE file has problems"
            self.notify(str(exc), title="Price table not used", severity="warning", timeout=10)

    # ------------------------------------------------------------------ reading the form

    def read_form(self) -> dict[str, object]:
        """What the form holds, by ``BatchSpec`` field (numbers as typed): the batch service
        checks it."""
        exp = self.experiment

        def value(selector: str) -> str:
            found = self.query(selector)
            v = getattr(found.first(), "value", "") if found else ""
            return v if isinstance(v, str) else ""

        def index(selector: str) -> int | None:
            v = value(selector)
            return int(v) if v.isdigit() else None

        def checked(selector: str, default: bool) -> bool:
            try:
                return bool(self.query_one(selector, Checkbox).value)
            except Exception:
                return default

        fields: dict[str, object] = {name: value(f"#in-{key}") for name, key in INPUTS.items()}
        models = choose_models(
            exp,
            default=index("#model-default") or 0,
            per_role={r.name: index(f"#model-role-{i}") for i, r in enumerate(exp.roles)},
            summarizer=index("#model-summarizer"),
            manager=index("#model-manager"),
        )
        fields.update(
            model_sets=[models],
            max_agents={r.name: value(f"#in-max-{i}") for i, r in enumerate(exp.roles)},
            every_day_count=checked("#every-day-count", False),
            every_combination=checked("#every-combination", True),
            speaker_selection=[  # the methods ticked (each a level of the grid)
                s
                for s in SpeakerSelection
                if checked(f"#speaker-{s.value}", s is SpeakerSelection.round_robin)
            ],
        )
        return fields

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _changed(self) -> None:
        # Debounced: typing "100" checks once, not three times.
        if self._recheck_timer is not None:
            self._recheck_timer.stop()
        self._recheck_timer = self.set_timer(0.15, self.recheck)

    def recheck(self) -> None:
        self._recheck_timer = None
        if not self.is_attached:  # left before the warm-up finished
            return
        self.fields = self.read_form()
        self.plan = plan_batch(self.experiment, self.fields, self.prices)
        self._show_problems()
        self._show_plan()
        self.checks += 1

    def _show_problems(self) -> None:
        problems = dict(self.plan.problems)
        for name, key in (INPUTS | OTHER_ERRORS).items():  # the error under each field
            if name in problems:
                problems[key] = problems.pop(name)
        if "speaker" in problems:  # how, in this form
            problems["speaker"] = "tick at least one method (space ticks the focused one)"
        for i, role in enumerate(self.experiment.roles):  # the roles' fields go by position
            if max_agents_key(role.name) in problems:
                problems[f"max-{i}"] = problems.pop(max_agents_key(role.name))
        for static in self.query(".setup-error").results(Static):
            text = problems.pop((static.id or "").removeprefix("err-"), "")
            static.update(text)
            static.set_class(bool(text), "shown")
        grid_error = problems.pop(GRID, "")
        rest = "; ".join(f"{k}: {v}" for k, v in problems.items())
        self.query_one("#setup-grid-error", Static).update(
            "\n".join(t for t in (grid_error, rest) if t)
        )
        methods = self.fields.get("speaker_selection")
        methods = methods if isinstance(methods, list) else []
        notes = []
        if len(methods) > 1:
            notes.append(f"{len(methods)} methods: each cell runs one of them")
        if SpeakerSelection.manual in methods:
            notes.append("a dialog asks you before every turn of every conversation")
        if SpeakerSelection.auto in methods:
            notes.append("the manager model picks each speaker (one extra call per turn)")
        note = "; ".join(notes)
        for static in self.query("#speaker-note").results(Static):
            static.update(note)
            static.set_class(bool(note), "shown")

    def on_resize(self) -> None:
        # A narrow terminal gives the form a little less room, the preview a little more.
        self.query_one("#setup-form").styles.width = 42 if self.size.width < 90 else 46
        self.call_after_refresh(self._fit_preview)

    def _fit_preview(self) -> None:
        table = self.query_one("#setup-grid", DataTable)
        width = table.size.width - 4  # the cell's padding and the scrollbar
        columns = fit_columns(PREVIEW_COLUMNS, width, PREVIEW_FIT, grow="Factors")
        if width > 0 and columns != self._preview_columns:
            self._preview_columns = columns
            table.clear(columns=True)
            table.add_column(columns_header(columns), key="cell")
            self._show_plan()

    def _show_plan(self) -> None:
        table = self.query_one("#setup-grid", DataTable)
        table.clear()
        columns = self._preview_columns
        for i, cell in enumerate(self.plan.cells[:PREVIEW_ROWS]):
            values = pick(cell_row(i, cell), PREVIEW_COLUMNS, columns)
            table.add_row(columns_line(values, columns), key=str(i))
        more = len(self.plan.cells) - PREVIEW_ROWS
        if more > 0:
            table.add_row(f"  … and {more:,} more cells")
        self.query_one("#setup-totals", Static).update(
            totals_text(self.plan, self.prices, self.price_problem)
        )
        self.query_one("#setup-start", Button).disabled = not self.plan.ok

    # ------------------------------------------------------------------ starting

    def action_start(self) -> None:
        if self._recheck_timer_pending():
            self.recheck()
        plan = self.plan
        if not plan.ok or plan.estimate is None or plan.spec is None:
            self.notify(
                "Fix the fields marked in red first.", title="Cannot start", severity="warning"
            )
            return
        if self._starting:
            return
        est = plan.estimate
        spec = plan.spec

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._starting = True
                self._create(spec)

        manual = (
            " You choose every speaker: a dialog asks before each turn."
            if SpeakerSelection.manual in spec.speaker_selection
            else ""
        )
        self.app.push_screen(
            ConfirmDialog(
                "Start this batch?",
                f"Run {plural(est.conversations, 'conversation')} of '{self.experiment.name}': "
                f"{plural(est.llm_calls, 'LLM call')}, about {plural(est.tokens, 'token')}, cost "
                f"{cost_label(plan, self.prices, self.price_problem)}. It keeps running when you "
                f"leave the monitor.{manual}",
                yes="Start",
                no="Not yet",
            ),
            callback=confirmed,
        )

    def _recheck_timer_pending(self) -> bool:
        return self._recheck_timer is not None

    @work(exclusive=True, group="batch-setup-start", exit_on_error=False)
    async def _create(self, spec: BatchSpec) -> None:
        from simulator.tui.runs import runs_of

        try:
            registry = runs_of(self.app)
            batch = await registry.create(self.experiment, spec, self.prices)
        except BaseException:
            self._starting = False
            raise
        self.post_message(self.Started(batch.id))

    @on(Started)
    def _started(self, message: Started) -> None:
        from simulator.tui.runs import runs_of
        from simulator.tui.screens.monitor import RunMonitorScreen

        runs_of(self.app).run(message.batch_id)
        self.app.switch_screen(RunMonitorScreen(message.batch_id))

    @on(Button.Pressed, "#setup-start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#setup-back")
    def action_back(self) -> None:
        self.dismiss(None)
