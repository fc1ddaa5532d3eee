"""Editor tab "Preview": an agent's system prompt (or the summarizer's, or the starting message)
rendered for chosen agent counts and factor levels; every placeholder problem is listed above it
and marked ⚠ where it stands in the text."""

from __future__ import annotations

import re
from itertools import islice, product

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select, Static, TextArea

from simulator.domain.errors import SpecError
from simulator.domain.models import Experiment, Section
from simulator.roles import (
    agent_names,
    render_starting_message,
    render_summarizer_prompt,
    render_system_prompt,
    validate_experiment,
    validate_text,
)
from simulator.tui.draft import Draft

SUMMARIZER = "@summarizer"
MAX_COMBINATIONS = 500  # factor-level combinations offered in the Levels list
STARTING = "@starting"
NO_LEVELS = ("no study factors", "@none")  # the Levels list of an experiment without factors


def parse_pairs(text: str, what: str, sep: str = ",") -> dict[str, str]:
    """``Guard=1, Prisoner=2`` as a dict; SpecError naming the bad part."""
    out: dict[str, str] = {}
    for part in text.split(sep):
        part = part.strip()
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise SpecError(f"{what}: write name=value pairs separated by '{sep}', got {part!r}")
        out[key.strip()] = value.strip()
    return out


def parse_counts(text: str, roles: list[str]) -> dict[str, int]:
    pairs = parse_pairs(text, "agents per role")
    lookup = {r.casefold(): r for r in roles}
    counts = {r: 1 for r in roles}
    for key, value in pairs.items():
        role = lookup.get(key.casefold())
        if role is None:
            raise SpecError(
                f"agents per role: there is no role {key!r} (roles: {', '.join(roles)})"
            )
        if not value.isdigit() or int(value) < 1:
            raise SpecError(f"agents per role: {key} needs a whole number of at least 1")
        counts[role] = int(value)
    return counts


# A bad placeholder is swapped for a sentinel (plain text to the renderer) before rendering, so
# the rest of the prompt still renders, and is shown afterwards as "⚠<TAG>" where it stands.
_OPEN, _CLOSE = "\ue000", "\ue001"
_SENTINEL = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
MARK = "⚠"


def mark_bad_placeholders(exp: Experiment) -> tuple[Experiment, list[str]]:
    """A copy of ``exp`` that renders even with bad placeholders, and the tags they stand for
    (``unmark`` turns the rendered sentinels back into ``⚠<TAG>``)."""
    roles = [r.name for r in exp.roles]
    factors = [f.name for f in exp.factors]
    tags: list[str] = []

    def fix(text: str, allow_name: bool) -> str:
        issues = validate_text(
            text, section="", roles=roles, factors=factors, allow_name=allow_name
        )
        for issue in sorted(issues, key=lambda i: i.position, reverse=True):
            tags.append(issue.tag)
            end = issue.position + len(issue.tag)
            text = f"{text[: issue.position]}{_OPEN}{len(tags) - 1}{_CLOSE}{text[end:]}"
        return text

    def fix_section(sec: Section, allow_name: bool) -> Section:
        return sec.model_copy(
            update={
                "title": fix(sec.title, allow_name),
                "content": fix(sec.content, allow_name),
                "variants": {k: fix(v, allow_name) for k, v in sec.variants.items()},
            }
        )

    marked = exp.model_copy(
        update={
            "starting_message": fix(exp.starting_message, False),
            "shared_sections": [fix_section(s, True) for s in exp.shared_sections],
            "summarizer_sections": [fix_section(s, False) for s in exp.summarizer_sections],
            "roles": [
                r.model_copy(update={"sections": [fix_section(s, True) for s in r.sections]})
                for r in exp.roles
            ],
        }
    )
    return marked, tags


def unmark(text: str, tags: list[str]) -> str:
    return _SENTINEL.sub(lambda m: MARK + tags[int(m.group(1))], text)


class PreviewPane(Vertical):
    def __init__(self, draft: Draft) -> None:
        super().__init__(id="preview-pane")
        self.draft = draft
        self._roles: list[str] = []
        self._chosen: str | None = None
        self._combos: list[dict[str, str]] = []  # the factor levels on offer
        self._level_index = 0

    def compose(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label("Agents", classes="field-label")
            yield Input(id="preview-counts", compact=True, placeholder="Guard=1, Prisoner=2")
            yield Label("Show", classes="field-label short")
            # No blank entry: there is always something to show (a "-" entry showed nothing).
            yield Select(
                [("Starting message", STARTING)],
                value=STARTING,
                allow_blank=False,
                id="preview-agent",
                compact=True,
            )
        with Horizontal(classes="form-row"):
            yield Label("Levels", classes="field-label")
            yield Select(
                [NO_LEVELS],
                value=NO_LEVELS[1],
                allow_blank=False,
                id="preview-levels",
                compact=True,
            )
        yield Static("", id="preview-issues", classes="issues", markup=False)
        yield TextArea("", id="preview-text", read_only=True, soft_wrap=True)

    # Rendered when the tab opens (EditorScreen calls sync), not on mount: most edits never
    # look at the preview.

    def _experiment(self) -> Experiment:
        return self.draft.to_experiment()

    def sync(self) -> None:
        """Re-render from the draft (called when the tab opens and after every edit)."""
        roles = self.draft.role_names()
        counts_input = self.query_one("#preview-counts", Input)
        if roles != self._roles:
            # Keep the counts the user typed for roles that still exist.
            try:
                old = parse_counts(counts_input.value, self._roles) if self._roles else {}
            except SpecError:
                old = {}
            with counts_input.prevent(Input.Changed):
                counts_input.value = ", ".join(f"{r}={old.get(r, 1)}" for r in roles)
            self._roles = roles
        self._sync_levels()
        self.render_preview()

    def _sync_levels(self) -> None:
        """Offer every combination of factor levels (as a batch would run them)."""
        try:
            factors = self.draft.factors()
        except SpecError:
            factors = []
        combos = [
            dict(zip([f.name for f in factors], levels, strict=True))
            for levels in islice(product(*[f.levels for f in factors]), MAX_COMBINATIONS)
        ]
        if not factors:
            combos = []
        select = self.query_one("#preview-levels", Select)
        if combos == self._combos:
            return
        keep = self._combos[self._level_index] if self._combos else None
        self._combos = combos
        self._level_index = combos.index(keep) if keep in combos else 0
        with select.prevent(Select.Changed):
            select.set_options(
                [
                    ("; ".join(f"{k}={v}" for k, v in c.items()), str(i))
                    for i, c in enumerate(combos)
                ]
                or [NO_LEVELS]
            )
            select.value = str(self._level_index) if combos else NO_LEVELS[1]
        select.disabled = not combos

    def render_preview(self) -> None:
        issues_widget = self.query_one("#preview-issues", Static)
        text_widget = self.query_one("#preview-text", TextArea)
        agent_select = self.query_one("#preview-agent", Select)
        problems: list[str] = []
        text = ""
        try:
            exp = self._experiment()
        except SpecError as exc:
            issues_widget.update(f"⚠ Not a complete experiment yet: {exc}")
            issues_widget.add_class("has-issues")
            text_widget.load_text("")
            return
        problems += [f"⚠ {issue}" for issue in validate_experiment(exp)]
        try:
            counts = parse_counts(self.query_one("#preview-counts", Input).value, self._roles)
        except SpecError as exc:
            counts = {r: 1 for r in self._roles}
            problems.append(f"⚠ {exc}")
        levels = self._combos[self._level_index] if self._combos else {}
        agents = agent_names(exp.roles, counts)
        options = [(f"{name} ({role})", f"{name}|{role}") for name, role in agents]
        options += [("Summarizer", SUMMARIZER), ("Starting message", STARTING)]
        values = [v for _, v in options]
        with agent_select.prevent(Select.Changed):
            if values != getattr(self, "_agent_values", None):
                agent_select.set_options(options)
                self._agent_values = values
            agent_select.value = self._chosen if self._chosen in values else values[0]
        choice = str(agent_select.value)
        marked, tags = mark_bad_placeholders(exp)
        try:
            if choice == SUMMARIZER:
                text = render_summarizer_prompt(marked, counts, factors=levels)
            elif choice == STARTING:
                text = render_starting_message(marked, counts, factors=levels)
            else:
                name, _, role = choice.partition("|")
                text = render_system_prompt(marked, role, counts, name=name, factors=levels)
        except SpecError as exc:
            if not problems:
                problems.append(f"⚠ {exc}")
        text = unmark(text, tags)
        if problems:
            issues_widget.update("\n".join(problems))
            issues_widget.add_class("has-issues")
        else:
            issues_widget.update("No placeholder problems.")
            issues_widget.remove_class("has-issues")
        text_widget.load_text(text)

    @on(Input.Changed)
    def _changed(self) -> None:
        self.render_preview()

    @on(Select.Changed, "#preview-levels")
    def _levels_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value.isdigit():
            self._level_index = int(event.value)
            self.render_preview()

    @on(Select.Changed, "#preview-agent")
    def _agent_chosen(self, event: Select.Changed) -> None:
        # Before the first render the list holds a placeholder (its mount posts Changed too).
        if isinstance(event.value, str) and getattr(self, "_agent_values", None):
            self._chosen = event.value
            self.render_preview()
