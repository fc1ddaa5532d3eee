"""Annotating an experiment from the library (``a``): choose the annotator (a judge with one of
the experiment's rubrics or a rubric file, and its model; moderation; a Python scorer), start,
and watch the progress (done / total, failures) until it ends or you stop it.

The job runs in the app's registry of annotation jobs (``simulator.tui.annotate``), through the
same service as ``simulator annotate --experiment``: the experiment's finished conversations,
nothing asked twice. This dialog only reads the job's counters, on a timer (STYLE.md #8);
closing it while the job runs leaves the job running (its end is a toast).
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, ProgressBar, Select, Static

from simulator.domain.models import Experiment
from simulator.tui.annotate import (
    DEFAULT_JUDGE_MODEL,
    DEFAULT_MODERATION_MODEL,
    DEFAULT_RUBRIC,
    KINDS,
    AnnotationJob,
    jobs_of,
)

RUBRIC_FILE = "\x00file"  # the rubric Select's "a file" option (no rubric name can be this)


class AnnotateExperimentScreen(ModalScreen[None]):
    """Annotate the finished conversations of one experiment, with progress; cancellable."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="annotate_experiment.close"),
    ]

    def __init__(self, experiment: Experiment) -> None:
        super().__init__()
        self.experiment = experiment
        self.job: AnnotationJob | None = None
        self._shown_rev = -1

    def compose(self) -> ComposeResult:
        names = self.experiment.rubric_names()
        rubrics = [(f"{n} (this experiment's rubric)", n) for n in names]
        rubrics.append(("A rubric file", RUBRIC_FILE))
        with Vertical(classes="dialog wide", id="annotate-experiment"):
            yield Static(
                f"Annotate the finished conversations of {self.experiment.name!r}",
                classes="dialog-title",
                markup=False,
            )
            with Vertical(id="annotate-form"):
                yield Label("Annotator")
                yield Select(KINDS, value="judge", allow_blank=False, id="annotate-kind")
                yield Label("Rubric", id="annotate-rubric-choice-label")
                yield Select(
                    rubrics, value=rubrics[0][1], allow_blank=False, id="annotate-rubric-choice"
                )
                yield Label("Rubric file (YAML)", id="annotate-rubric-label")
                yield Input(str(DEFAULT_RUBRIC), id="annotate-rubric")
                yield Label("Model", id="annotate-model-label")
                yield Input(DEFAULT_JUDGE_MODEL, id="annotate-model")
                yield Label(
                    "Scorer (package.module:function or entry point)", id="annotate-scorer-label"
                )
                yield Input("", placeholder="mylab.scores:toxicity", id="annotate-scorer")
            with Vertical(id="annotate-job"):
                yield ProgressBar(id="annotate-progress", show_eta=False)
                yield Static("", id="annotate-status", markup=False)
            yield Static(
                "Items already annotated are not asked again; a stopped job keeps what it "
                "stored (docs/annotations.md).",
                classes="hint",
            )
            with Horizontal(classes="buttons"):
                yield Button("Start", id="start", variant="primary")
                yield Button("Stop", id="stop", variant="error")
                yield Button("Close (esc)", id="close")

    def on_mount(self) -> None:
        self.query_one("#annotate-job").display = False
        self.query_one("#stop").display = False
        self._show_fields()
        self.query_one("#annotate-kind", Select).focus()
        self.set_interval(0.2, self._refresh_job)

    # ------------------------------------------------------------------ the form

    def _show_fields(self) -> None:
        kind = str(self.query_one("#annotate-kind", Select).value)
        from_file = self.query_one("#annotate-rubric-choice", Select).value == RUBRIC_FILE
        for name, shown in (
            ("rubric-choice", kind == "judge"),
            ("rubric", kind == "judge" and from_file),
            ("model", kind in ("judge", "moderation")),
            ("scorer", kind == "python"),
        ):
            self.query_one(f"#annotate-{name}").display = shown
            self.query_one(f"#annotate-{name}-label").display = shown

    @on(Select.Changed, "#annotate-kind")
    def _kind_changed(self) -> None:
        kind = str(self.query_one("#annotate-kind", Select).value)
        model = self.query_one("#annotate-model", Input)
        if kind == "moderation" and model.value in ("", DEFAULT_JUDGE_MODEL):
            model.value = DEFAULT_MODERATION_MODEL
        elif kind == "judge" and model.value in ("", DEFAULT_MODERATION_MODEL):
            model.value = DEFAULT_JUDGE_MODEL
        self._show_fields()

    @on(Select.Changed, "#annotate-rubric-choice")
    def _rubric_changed(self) -> None:
        self._show_fields()

    def spec(self) -> Any:
        """The annotator chosen (an ``AnnotatorSpec``): an experiment's rubric is passed as the
        rubric itself, so a file of the same name cannot stand in for it."""
        from simulator.annotations.service import AnnotatorSpec

        kind = str(self.query_one("#annotate-kind", Select).value)
        model = self.query_one("#annotate-model", Input).value.strip() or None
        if kind == "python":
            scorer = self.query_one("#annotate-scorer", Input).value.strip()
            return AnnotatorSpec(annotator=f"python:{scorer}")
        if kind == "moderation":
            return AnnotatorSpec(annotator="moderation", model=model)
        choice = self.query_one("#annotate-rubric-choice", Select).value
        rubric: Any = self.query_one("#annotate-rubric", Input).value.strip()
        if choice != RUBRIC_FILE:
            rubric = self._experiment_rubric(str(choice))
        return AnnotatorSpec(annotator="judge", rubric=rubric, model=model)

    def _experiment_rubric(self, name: str) -> Any:
        from simulator.domain.rubric import parse_rubric

        for raw in self.experiment.rubrics:
            if str(raw.get("name") or "").strip() == name:
                source = f"rubric {name!r} of experiment {self.experiment.name!r}"
                return parse_rubric(raw, source=source)
        return name  # not there any more: the service says which rubrics there are

    # ------------------------------------------------------------------ the job

    @on(Button.Pressed, "#start")
    @on(Input.Submitted)
    def _start(self) -> None:
        if self.job is not None:
            return
        self.job = jobs_of(self.app).start(self.spec(), [], experiment_id=self.experiment.id)
        self.query_one("#annotate-form").display = False
        self.query_one("#annotate-job").display = True
        self.query_one("#start").display = False
        self.query_one("#stop").display = True
        self._refresh_job()

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        if self.job is not None:
            jobs_of(self.app).cancel(self.job)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)

    def _refresh_job(self) -> None:
        job = self.job
        if job is None or job.rev == self._shown_rev:
            return
        self._shown_rev = job.rev
        bar = self.query_one("#annotate-progress", ProgressBar)
        if job.todo:
            bar.update(total=job.todo, progress=job.done + job.failed)
        elif not job.running:
            bar.update(total=1, progress=1)  # nothing was left to do
        status = self.query_one("#annotate-status", Static)
        if job.error:
            status.update(job.error)
        elif job.cancelled:
            status.update(f"{job.summary[:1].upper()}{job.summary[1:]}.")
        elif job.running:
            status.update(f"{job.label}: {job.done}/{job.todo} done, {job.failed} failed")
        else:
            status.update(f"Done: {job.summary}.")
        if not job.running:
            self.query_one("#stop").display = False


__all__ = ["AnnotateExperimentScreen"]
