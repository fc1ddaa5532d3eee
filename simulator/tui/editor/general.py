"""Editor tab "Experiment": name, kind, starting message, study factors, note."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Label, Select, Static, TextArea

from simulator.domain.errors import SpecError
from simulator.domain.models import ExperimentKind
from simulator.roles import validate_text
from simulator.scenarios.registry import KINDS
from simulator.tui.draft import Draft
from simulator.tui.messages import DraftChanged
from simulator.tui.widgets.item_list import EditorTextArea


class GeneralPane(VerticalScroll, can_focus=False):
    """Scrolls: in a short terminal (24 rows) the study factors are below the fold."""

    def __init__(self, draft: Draft) -> None:
        super().__init__(id="general-pane")
        self.draft = draft

    def compose(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label("Name", classes="field-label")
            yield Input(self.draft.name, id="exp-name", compact=True)
        with Horizontal(classes="form-row"):
            yield Label("Kind", classes="field-label")
            names = dict.fromkeys([*KINDS.names(), self.draft.kind.value])
            yield Select(
                [(name, name) for name in names],
                value=self.draft.kind.value,
                allow_blank=False,
                id="exp-kind",
                compact=True,
            )
        with Horizontal(classes="form-row"):
            yield Label("Note", classes="field-label")
            yield Input(self.draft.note, placeholder="optional", id="exp-note", compact=True)
        yield Label("Starting message (the researcher's first message of each day)")
        yield EditorTextArea(self.draft.starting_message, id="exp-start", soft_wrap=True)
        yield Static("", id="start-issues", classes="issues", markup=False)
        yield Label("Study factors, one per line: name = level | level (goal = Escape | Yard Time)")
        yield EditorTextArea(self.draft.factors_text, id="exp-factors", soft_wrap=True)
        yield Static("", id="factors-error", classes="issues", markup=False)

    def on_mount(self) -> None:
        self._check()

    def sync(self) -> None:
        """Re-read the draft (another tab may have renamed a role the message mentions)."""
        self._check()

    def _check(self) -> None:
        try:
            factors = [f.name for f in self.draft.factors()]
            self.query_one("#factors-error", Static).update("")
        except SpecError as exc:
            factors = []
            self.query_one("#factors-error", Static).update(str(exc))
        issues = validate_text(
            self.draft.starting_message,
            section="starting message",
            roles=self.draft.role_names(),
            factors=factors,
            allow_name=False,
        )
        self.query_one("#start-issues", Static).update("\n".join(str(i) for i in issues))

    def _changed(self) -> None:
        self._check()
        self.post_message(DraftChanged(self))

    @on(Input.Submitted)
    def _next_field(self) -> None:
        self.screen.focus_next()  # a form without a list: enter goes on to the next field

    @on(Input.Changed, "#exp-name")
    def _name_changed(self, event: Input.Changed) -> None:
        if self.draft.name != event.value:
            self.draft.name = event.value
            self.post_message(DraftChanged(self))

    @on(Input.Changed, "#exp-note")
    def _note_changed(self, event: Input.Changed) -> None:
        if self.draft.note != event.value:
            self.draft.note = event.value
            self.post_message(DraftChanged(self))

    @on(Select.Changed, "#exp-kind")
    def _kind_changed(self) -> None:
        value = self.query_one("#exp-kind", Select).value
        if isinstance(value, str) and value != self.draft.kind.value:
            self.draft.kind = ExperimentKind(value)
            self.post_message(DraftChanged(self))

    @on(TextArea.Changed, "#exp-start")
    def _start(self, event: TextArea.Changed) -> None:
        if self.draft.starting_message != event.text_area.text:
            self.draft.starting_message = event.text_area.text
            self._changed()

    @on(TextArea.Changed, "#exp-factors")
    def _factors(self, event: TextArea.Changed) -> None:
        if self.draft.factors_text != event.text_area.text:
            self.draft.factors_text = event.text_area.text
            self._changed()
