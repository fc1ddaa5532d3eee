"""Annotating from the TUI: the dialog that chooses the annotator, and the app-level registry of
annotation jobs.

A job runs as an app worker (leaving the browser does not stop it), through the same service as
``simulator annotate`` (``simulator.annotations.service``): idempotent, resumable, concurrent
within the endpoints' limits. The registry listens to the event bus and keeps plain counters per
job; it never touches a widget. Screens read it on a timer (STYLE.md #8). Slow first imports (the
analysis layer, a Python scorer's module and its model) happen in a thread, so the event loop
never waits for them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from simulator.domain.errors import SimulatorError
from simulator.domain.filters import ConversationFilter
from simulator.tui.context import services_of

if TYPE_CHECKING:
    from simulator.services.container import Services

log = logging.getLogger(__name__)

DEFAULT_RUBRIC = Path(__file__).resolve().parents[1] / "examples" / "rubrics" / "persuasion.yaml"
DEFAULT_JUDGE_MODEL = "dryrun:judge"
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"


def warm_up() -> None:
    """Import the annotation layer (pandas and friends) in a thread, not on the event loop."""
    import simulator.analysis.loading
    import simulator.annotations.judge
    import simulator.annotations.moderation
    import simulator.annotations.scorers
    import simulator.annotations.service
    import simulator.annotations.tables  # noqa: F401


KINDS = [
    ("Judge (a rubric)", "judge"),
    ("Moderation scores", "moderation"),
    ("Python scorer", "python"),
]


@dataclass(frozen=True)
class AnnotateChoice:
    """What the dialog asks for."""

    annotator: str  # judge | moderation | python
    rubric: str = ""
    model: str = ""
    scorer: str = ""  # python: package.module:function or an entry point's name
    scope: str = "one"  # one | listed

    def spec(self) -> Any:
        from simulator.annotations.service import AnnotatorSpec

        if self.annotator == "python":
            return AnnotatorSpec(annotator=f"python:{self.scorer.strip()}")
        return AnnotatorSpec(
            annotator=self.annotator,
            rubric=self.rubric.strip() if self.annotator == "judge" else None,
            model=self.model.strip() or None,
        )


class AnnotateDialog(ModalScreen[AnnotateChoice | None]):
    """Choose an annotator (judge with a rubric and model, moderation, Python scorer) and which
    conversations: the highlighted one or every listed one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="annotate.cancel"),
    ]

    def __init__(self, one_label: str | None, listed: int) -> None:
        super().__init__()
        self.one_label = one_label
        self.listed = listed

    def compose(self) -> ComposeResult:
        scopes: list[tuple[str, str]] = []
        if self.one_label is not None:
            scopes.append((f"This conversation ({self.one_label})", "one"))
        if self.listed:
            scopes.append((f"The {self.listed} listed conversation(s)", "listed"))
        with Vertical(classes="dialog wide", id="annotate-dialog"):
            yield Static("Annotate conversations", classes="dialog-title")
            yield Label("Annotator")
            yield Select(KINDS, value="judge", allow_blank=False, id="annotate-kind")
            yield Label("Rubric (YAML)", id="annotate-rubric-label")
            yield Input(str(DEFAULT_RUBRIC), id="annotate-rubric")
            yield Label("Model", id="annotate-model-label")
            yield Input(DEFAULT_JUDGE_MODEL, id="annotate-model")
            yield Label(
                "Scorer (package.module:function or entry point)", id="annotate-scorer-label"
            )
            yield Input("", placeholder="mylab.scores:toxicity", id="annotate-scorer")
            yield Label("Conversations")
            yield Select(scopes, value=scopes[0][1], allow_blank=False, id="annotate-scope")
            yield Static(
                "Items already annotated are not asked again; answers appear beside the "
                "messages (docs/annotations.md).",
                classes="hint",
            )
            with Horizontal(classes="buttons"):
                yield Button("Start", id="start", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self._show_fields("judge")
        self.query_one("#annotate-kind", Select).focus()

    def _show_fields(self, kind: str) -> None:
        for name, shown in (
            ("rubric", kind == "judge"),
            ("model", kind in ("judge", "moderation")),
            ("scorer", kind == "python"),
        ):
            self.query_one(f"#annotate-{name}").display = shown
            self.query_one(f"#annotate-{name}-label").display = shown

    @on(Select.Changed, "#annotate-kind")
    def _kind_changed(self, event: Select.Changed) -> None:
        kind = str(event.value)
        model = self.query_one("#annotate-model", Input)
        if kind == "moderation" and model.value in ("", DEFAULT_JUDGE_MODEL):
            model.value = DEFAULT_MODERATION_MODEL
        elif kind == "judge" and model.value in ("", DEFAULT_MODERATION_MODEL):
            model.value = DEFAULT_JUDGE_MODEL
        self._show_fields(kind)

    def choice(self) -> AnnotateChoice:
        return AnnotateChoice(
            annotator=str(self.query_one("#annotate-kind", Select).value),
            rubric=self.query_one("#annotate-rubric", Input).value,
            model=self.query_one("#annotate-model", Input).value,
            scorer=self.query_one("#annotate-scorer", Input).value,
            scope=str(self.query_one("#annotate-scope", Select).value),
        )

    @on(Button.Pressed, "#start")
    @on(Input.Submitted)
    def _start(self) -> None:
        self.dismiss(self.choice())

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


# --------------------------------------------------------------------------- jobs


@dataclass
class AnnotationJob:
    """What the app knows of one job: plain counters, updated from events."""

    id: str
    label: str
    conversation_ids: set[str]
    todo: int = 0
    done: int = 0
    failed: int = 0
    stored_before: int = 0
    running: bool = True
    summary: str = ""
    error: str | None = None
    touched: set[str] = field(default_factory=set)  # conversations with new annotations
    rev: int = 0
    cancelled: bool = False
    worker: Any = None  # the app worker running it (``AnnotationJobs.cancel``)

    @property
    def status_text(self) -> str:
        if self.error:
            return f"{self.label}: {self.error}"
        if self.cancelled:
            return f"{self.label}: {self.summary}"
        if self.running:
            failed = f", {self.failed} failed" if self.failed else ""
            return f"{self.label}: {self.done + self.failed}/{self.todo}{failed}"
        return f"{self.label}: {self.summary}"


class AnnotationJobs:
    """The app's annotation jobs (see the module docstring). One per app: ``jobs_of``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.services: Services = services_of(app)
        self.jobs: dict[str, AnnotationJob] = {}
        self.rev = 0
        self._unsubscribe: Callable[[], None] | None = self.services.bus.subscribe(self._on_event)

    @property
    def running(self) -> list[AnnotationJob]:
        return [j for j in self.jobs.values() if j.running]

    def latest(self) -> AnnotationJob | None:
        return next(reversed(self.jobs.values()), None)

    def start(
        self,
        choice: AnnotateChoice | Any,
        conversation_ids: list[str],
        *,
        experiment_id: str | None = None,
    ) -> AnnotationJob:
        """Start the job as an app worker; returns at once. ``choice``: the dialog's choice or
        an ``AnnotatorSpec``; the conversations: ``conversation_ids``, or the finished ones of
        ``experiment_id``."""
        spec = choice.spec() if isinstance(choice, AnnotateChoice) else choice
        label = spec.annotator + (f" ({spec.model})" if spec.model else "")
        job = AnnotationJob(uuid.uuid4().hex, f"Annotating with {label}", set(conversation_ids))
        self.jobs[job.id] = job
        self._touch(job)
        job.worker = self.app.run_worker(
            self._run(job, spec, list(conversation_ids), experiment_id),
            name=f"annotate {job.id}",
            group="annotate",
            exit_on_error=False,
        )
        return job

    def cancel(self, job: AnnotationJob) -> None:
        """Stop a running job: what is stored stays, and running it again asks only the rest."""
        if job.running and job.worker is not None:
            job.worker.cancel()

    async def _run(
        self,
        job: AnnotationJob,
        spec: Any,
        conversation_ids: list[str],
        experiment_id: str | None = None,
    ) -> None:
        try:
            await asyncio.to_thread(warm_up)
            from simulator.annotations.base import load_prices
            from simulator.annotations.service import (
                AnnotationService,
                check_spec,
                describe_report,
            )

            services = self.services
            prices = await asyncio.to_thread(load_prices, services.settings)
            # a scorer's module (and its model) is imported here, off the event loop
            await asyncio.to_thread(check_spec, spec, backends=services.backends, prices=prices)
            service = AnnotationService(
                services.store, services.backends, services.bus, prices=prices
            )
            if experiment_id is not None:
                flt = ConversationFilter(experiment_id=experiment_id)  # finished ones only
            else:
                flt = ConversationFilter(conversation_ids=conversation_ids)
            prepared = await service.prepare(spec, flt)  # a rubric by name: the experiment's
            job.stored_before = prepared.plan.stored
            job.todo = len(prepared.plan.missing)
            self._touch(job)
            report = await service.run(prepared, job_id=job.id)
            job.summary = describe_report(report)
            self.app.notify(f"{job.label}: {job.summary}.", title="Annotations stored")
        except asyncio.CancelledError:
            job.cancelled = True
            job.summary = (
                f"stopped after {job.done} of {job.todo} item(s); what is stored is kept, "
                "and annotating again asks only the rest"
            )
            raise
        except SimulatorError as exc:
            job.error = f"{exc.title}: {exc}"
            self.app.show_error(exc)
        except Exception as exc:  # a bug: the app says so and keeps running
            job.error = f"{type(exc).__name__}: {exc}"
            self.app.show_error(exc)
        finally:
            job.running = False
            self._touch(job)

    def _on_event(self, event: Any) -> None:
        from simulator.annotations.events import (
            AnnotationFailed,
            AnnotationFinished,
            AnnotationsStored,
            AnnotationStarted,
        )

        job = self.jobs.get(getattr(event, "job_id", ""))
        if job is None:
            return
        if isinstance(event, AnnotationStarted):
            job.todo = event.todo
        elif isinstance(event, AnnotationsStored):
            job.done, job.failed = event.done, event.failed
            job.touched.update(a.conversation_id for a in event.annotations)
        elif isinstance(event, AnnotationFailed | AnnotationFinished):
            job.done, job.failed = event.done, event.failed
        else:
            return
        self._touch(job)

    def _touch(self, job: AnnotationJob) -> None:
        job.rev += 1
        self.rev += 1

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None


def jobs_of(app: Any) -> AnnotationJobs:
    """The app's registry of annotation jobs (created on first use)."""
    registry = getattr(app, "_annotation_jobs", None)
    if registry is None or registry.services is not app.services:
        if registry is not None:
            registry.close()
        registry = AnnotationJobs(app)
        app._annotation_jobs = registry
    return registry  # type: ignore[no-any-return]


__all__ = [
    "AnnotateChoice",
    "AnnotateDialog",
    "AnnotationJob",
    "AnnotationJobs",
    "jobs_of",
]
