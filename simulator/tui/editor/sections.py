"""Editor tab "Sections": shared, private (per role) and summarizer sections, in order, each with
its text in a real editor; placeholder problems of the text are shown under it as you type."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, OptionList, Select, Static, TextArea
from textual.widgets.option_list import Option

from simulator.domain.errors import SpecError
from simulator.domain.models import Section, SectionKind
from simulator.roles import validate_text
from simulator.tui.draft import Draft
from simulator.tui.messages import DraftChanged
from simulator.tui.screens.dialogs import ConfirmDialog
from simulator.tui.widgets.item_list import EditorTextArea, ItemList, side_button

DEFAULT_LEVEL = ""  # the Level select's value for the section's default text
EVERY_ROLE = ("-", "@every")  # the Role select of a shared or summarizer section (disabled)


def section_label(sec: Section, role: str | None) -> str:
    group = {SectionKind.shared: "Shared", SectionKind.summarizer: "Summ."}.get(sec.kind, role)
    return f"{group} · {sec.title or '(untitled)'}"


class SectionsPane(Horizontal):
    def __init__(self, draft: Draft) -> None:
        super().__init__(id="sections-pane")
        self.draft = draft
        self.current: str | None = None
        self.level: str = DEFAULT_LEVEL

    def compose(self) -> ComposeResult:
        with Vertical(classes="side"):
            yield ItemList(self, "section", id="section-list")
            with Horizontal(classes="side-buttons"):
                yield side_button("+ Add", "section-add")
                yield side_button("Remove", "section-remove")
                yield side_button("↑", "section-up")
                yield side_button("↓", "section-down")
        with Vertical(classes="form"):
            with Horizontal(classes="form-row"):
                yield Label("Title", classes="field-label")
                yield Input(id="sec-title", compact=True, placeholder="shown as '## Title'")
            with Horizontal(classes="form-row"):
                yield Label("Seen by", classes="field-label")
                yield Select(
                    [
                        # Short: the drop-down is 13 columns wide at 80x24.
                        ("every agent", SectionKind.shared.value),
                        ("one role", SectionKind.private.value),
                        ("summarizer", SectionKind.summarizer.value),
                    ],
                    allow_blank=False,
                    id="sec-kind",
                    compact=True,
                )
                yield Label("Role", classes="field-label short")
                yield Select(
                    [EVERY_ROLE],
                    value=EVERY_ROLE[1],
                    allow_blank=False,
                    id="sec-role",
                    compact=True,
                )
            with Horizontal(classes="form-row"):
                yield Label("Factor", classes="field-label")
                yield Select(
                    [("none", "")], value="", allow_blank=False, id="sec-factor", compact=True
                )
                yield Label("Level", classes="field-label short")
                yield Select(
                    [("default text", DEFAULT_LEVEL)],
                    value=DEFAULT_LEVEL,
                    allow_blank=False,
                    id="sec-level",
                    compact=True,
                )
            yield EditorTextArea(id="sec-content", soft_wrap=True, show_line_numbers=True)
            yield Static("", id="sec-issues", classes="issues", markup=False)

    def on_mount(self) -> None:
        self.sync()

    # ------------------------------------------------------------------ list

    def sync(self, select: str | None = None) -> None:
        """Rebuild the list and the form from the draft."""
        options = self.query_one("#section-list", OptionList)
        keep = select or self.current
        items = self.draft.all_sections()
        with options.prevent(OptionList.OptionHighlighted):
            options.clear_options()
            for sec, role in items:
                options.add_option(Option(section_label(sec, role), id=sec.id))
        ids = [sec.id for sec, _ in items]
        if not ids:
            self.current = None
        else:
            self.current = keep if keep in ids else ids[0]
            with options.prevent(OptionList.OptionHighlighted):
                options.highlighted = ids.index(self.current)
        self._load_form()

    @on(OptionList.OptionHighlighted, "#section-list")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id != self.current:
            self.current = event.option.id
            self.level = DEFAULT_LEVEL
            self._load_form()

    @on(OptionList.OptionSelected, "#section-list")
    def _edit_selected(self) -> None:
        self.query_one("#sec-content", TextArea).focus()  # enter on a section: edit its text

    # ------------------------------------------------------------------ form

    def _section(self) -> tuple[Section, str | None] | None:
        if self.current is None:
            return None
        try:
            return self.draft.find_section(self.current)
        except KeyError:
            return None

    def _factor_names(self) -> dict[str, list[str]]:
        try:
            return {f.name: f.levels for f in self.draft.factors()}
        except SpecError:
            return {}

    def _load_form(self) -> None:
        found = self._section()
        title = self.query_one("#sec-title", Input)
        kind = self.query_one("#sec-kind", Select)
        role_select = self.query_one("#sec-role", Select)
        factor = self.query_one("#sec-factor", Select)
        level = self.query_one("#sec-level", Select)
        content = self.query_one("#sec-content", TextArea)
        factors = self._factor_names()
        with (
            title.prevent(Input.Changed),
            kind.prevent(Select.Changed),
            role_select.prevent(Select.Changed),
            factor.prevent(Select.Changed),
            level.prevent(Select.Changed),
            content.prevent(TextArea.Changed),
        ):
            found_kind = found[0].kind if found is not None else None
            roles = [(r, r) for r in self.draft.role_names()]
            # A private section picks one of the roles; any other has none to pick (no blank).
            role_select.set_options(
                roles if found_kind is SectionKind.private and roles else [EVERY_ROLE]
            )
            factor_options = [("none", "")] + [(f, f) for f in factors]
            if found is None:
                title.value = ""
                content.load_text("")
                for w in (title, kind, role_select, factor, level, content):
                    w.disabled = True
                self.query_one("#sec-issues", Static).update(
                    "No sections yet: + (in the list) adds one."
                )
                return
            for w in (title, kind, factor, level, content):
                w.disabled = False
            sec, role = found
            title.value = sec.title
            kind.value = sec.kind.value
            role_select.disabled = sec.kind is not SectionKind.private
            if role is not None:
                role_select.value = role
            if sec.factor and sec.factor not in factors:
                factor_options.append((f"{sec.factor} (undefined)", sec.factor))
            factor.set_options(factor_options)
            factor.value = sec.factor or ""
            levels = factors.get(sec.factor or "", [])
            level.set_options([("default text", DEFAULT_LEVEL)] + [(lv, lv) for lv in levels])
            if self.level not in levels:
                self.level = DEFAULT_LEVEL
            level.value = self.level
            level.disabled = not sec.factor
            content.load_text(self._text_of(sec))
        self._check()

    def _text_of(self, sec: Section) -> str:
        if self.level != DEFAULT_LEVEL:
            return sec.variants.get(self.level, "")
        return sec.content

    def _check(self) -> None:
        found = self._section()
        issues_widget = self.query_one("#sec-issues", Static)
        if found is None:
            return
        sec, role = found
        label = section_label(sec, role)
        text = self.query_one("#sec-content", TextArea).text
        kw = {
            "roles": self.draft.role_names(),
            "factors": list(self._factor_names()),
            "role": role,
            "allow_name": sec.kind is not SectionKind.summarizer,
        }
        issues = validate_text(sec.title, section=f"title of {label}", **kw)  # type: ignore[arg-type]
        issues += validate_text(text, section=label, **kw)  # type: ignore[arg-type]
        if issues:
            issues_widget.update("\n".join(f"⚠ {i}" for i in issues))
            issues_widget.add_class("has-issues")
        else:
            hint = (
                f"Text for level {self.level!r} of {sec.factor}; empty leaves the section out."
                if self.level != DEFAULT_LEVEL
                else self._placeholder_hint(sec.kind is not SectionKind.summarizer)
            )
            issues_widget.update(hint)
            issues_widget.remove_class("has-issues")

    def _placeholder_hint(self, allow_name: bool) -> str:
        """A few placeholders valid here, spelled with this experiment's own roles."""
        tags = [
            f"<{r.upper().replace(' ', '_')}_{t}>"
            for r in self.draft.role_names()[:2]
            for t in ("NOUN", "NUM")
        ][:3]
        tags += ["<NAME>"] if allow_name else ["<DAY>"]
        return f"Placeholders such as {', '.join(tags)} ... (docs/roles.md lists them all)"

    def _update(self, **fields: object) -> None:
        if self.current is None:
            return
        try:
            self.draft.update_section(self.current, **fields)
        except SpecError as exc:
            self.notify(str(exc), severity="error")
        self.post_message(DraftChanged(self))

    # Handlers read the widget's current value and act only on a difference: widgets also post
    # Changed when they mount, with their initial value, which must never reach the draft.

    @on(Input.Changed, "#sec-title")
    def _title(self) -> None:
        found = self._section()
        title = self.query_one("#sec-title", Input).value
        if found is None or found[0].title == title:
            return
        self._update(title=title)
        sec, role = self.draft.find_section(found[0].id)
        self.query_one("#section-list", OptionList).replace_option_prompt(
            sec.id, section_label(sec, role)
        )
        self._check()

    @on(Input.Submitted, "#sec-title")
    def _title_done(self) -> None:
        self.query_one("#section-list", ItemList).focus()  # enter there edits the text

    @on(Select.Changed, "#sec-kind")
    def _kind(self) -> None:
        value = self.query_one("#sec-kind", Select).value
        found = self._section()
        if not isinstance(value, str) or found is None or found[0].kind.value == value:
            return
        kind = SectionKind(value)
        if kind is SectionKind.private and not self.draft.roles:
            self.notify("Add a role first (tab Roles).", severity="warning")
            self._load_form()
            return
        self._update(kind=kind)
        self.sync(self.current)

    @on(Select.Changed, "#sec-role")
    def _role(self) -> None:
        value = self.query_one("#sec-role", Select).value
        found = self._section()
        if not isinstance(value, str) or found is None:
            return
        sec, role = found
        if sec.kind is SectionKind.private and value != role:
            self._update(role=value)
            self.sync(self.current)

    @on(Select.Changed, "#sec-factor")
    def _factor(self) -> None:
        value = self.query_one("#sec-factor", Select).value
        found = self._section()
        if not isinstance(value, str) or found is None or (value or None) == found[0].factor:
            return
        sec, _ = found
        factor = value or None
        levels = self._factor_names().get(factor or "", [])
        variants = {k: v for k, v in sec.variants.items() if k in levels}
        self._update(factor=factor, variants=variants)
        self.level = DEFAULT_LEVEL
        self._load_form()

    @on(Select.Changed, "#sec-level")
    def _level(self) -> None:
        value = self.query_one("#sec-level", Select).value
        if isinstance(value, str) and value != self.level:
            self.level = value
            self._load_form()

    @on(TextArea.Changed, "#sec-content")
    def _content(self, event: TextArea.Changed) -> None:
        found = self._section()
        if found is None:
            return
        sec, _ = found
        text = event.text_area.text
        if text == self._text_of(sec):
            return
        if self.level == DEFAULT_LEVEL:
            self._update(content=text)
        else:
            self._update(variants={**sec.variants, self.level: text})
        self._check()

    # ------------------------------------------------------------------ actions

    @on(Button.Pressed, "#section-add")
    def action_add(self) -> None:
        found = self._section()
        kind, role = (found[0].kind, found[1]) if found else (SectionKind.shared, None)
        sec = self.draft.add_section(kind, title="New section", role=role)
        self.level = DEFAULT_LEVEL
        self.sync(sec.id)
        self.post_message(DraftChanged(self))
        self.query_one("#sec-title", Input).focus()

    @on(Button.Pressed, "#section-remove")
    def action_remove(self) -> None:
        found = self._section()
        if found is None:
            return
        sec, role = found
        if not sec.content.strip() and not any(v.strip() for v in sec.variants.values()):
            self._remove(sec.id)  # nothing to lose
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._remove(sec.id)

        self.app.push_screen(
            ConfirmDialog(
                "Remove section?",
                f"Remove '{section_label(sec, role)}' and its text?",
                yes="Remove",
                no="Keep",
                danger=True,
            ),
            callback=confirmed,
        )

    def _remove(self, section_id: str) -> None:
        ids = [s.id for s, _ in self.draft.all_sections()]
        index = ids.index(section_id)
        self.draft.remove_section(section_id)
        ids.pop(index)
        self.current = ids[min(index, len(ids) - 1)] if ids else None
        self.sync(self.current)
        self.post_message(DraftChanged(self))

    @on(Button.Pressed, "#section-up")
    def _up(self) -> None:
        self.action_move(-1)

    @on(Button.Pressed, "#section-down")
    def _down(self) -> None:
        self.action_move(1)

    def action_move(self, delta: int) -> None:
        if self.current is None:
            return
        self.draft.move_section(self.current, delta)
        self.sync(self.current)
        self.post_message(DraftChanged(self))
