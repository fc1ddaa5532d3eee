"""Editor tab "Game": the parameters of a game experiment (``Experiment.game``).

The form is generated from the kind's pydantic model (its ``GameParams``, declared in its package
under scenarios/: ``CommonsParams``, ``ReputationParams``, ...): a row per parameter with its
default and its description. A nested model (``policy``, ``monitors``, ``pd_payoffs``) becomes a
group of rows, a mapping with fixed keys (``credibility_weights``) a row per key, and anything
richer (``bounds``, ``member_models``, ``monitors.model``, ``personas``) a small YAML editor. An
empty field is not stored, so the game uses its default. Every change is checked against the
model at once and each problem is written under the field it belongs to; saving checks once more
through the kind's ``load`` (``check_game``). What the model cannot say (the tab's intro, the
YAML fields' examples, the keys stored beside the model's) the kind declares.

A fidelity preset (``preset``: ``chatcpr``, ``repunet``) changes what an empty field means: the
form shows the preset's values as the defaults (for reputation, of the chosen ``game``: the
kind's ``preset_keys``) and is rebuilt when one of them changes; a value typed in a field still
wins.

Kinds without game parameters (dialogue) have no Game tab: the editor hides it for them. The
parameter modules are imported in a thread (the scenario packages take a few hundred ms to
import) and the form is built when they are there.
"""

from __future__ import annotations

import asyncio
import math
import re
import types
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static, TextArea

from simulator.domain.models import ExperimentKind
from simulator.scenarios.kind import GameParams
from simulator.scenarios.registry import KINDS
from simulator.tui.draft import Draft
from simulator.tui.messages import DraftChanged


def no_game_text() -> str:
    games = ", ".join(k.name for k in KINDS.games())
    return (
        f"Dialogue experiments have no game parameters. Choose a game kind ({games}) on the "
        "Experiment tab (F2) to set them here."
    )


FieldKind = Literal["int", "float", "text", "list", "choice", "yaml"]


def is_game(kind: ExperimentKind) -> bool:
    """Whether ``kind`` has game parameters (a Game tab)."""
    return kind in KINDS and KINDS.get(kind).game


def game_params(kind: ExperimentKind) -> GameParams:
    params = KINDS.get(kind).params
    if params is None:
        raise ValueError(f"kind {kind} has no game parameters")
    return params


def params_model(kind: ExperimentKind) -> type[BaseModel]:
    return game_params(kind).model()


def check_game(kind: ExperimentKind, game: dict[str, Any]) -> dict[str, Any]:
    """Validate ``game`` through the kind's ``load`` (a SpecError saying what is wrong and
    where) and return it as it is stored: the parameters that were set, as JSON values."""
    return KINDS.check_game(kind, game)


# --------------------------------------------------------------------------- the form's fields


@dataclass(frozen=True)
class FieldSpec:
    """One row of the form: a parameter (``path`` into ``Experiment.game``) and how it is edited."""

    path: tuple[str, ...]
    kind: FieldKind
    default: Any  # as JSON
    description: str = ""
    choices: tuple[tuple[str, Any], ...] = ()  # (label, value) of a choice
    fill: dict[str, Any] | None = None  # a key of a fixed-key mapping: the whole default mapping

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def widget_id(self) -> str:
        return "game-" + "-".join(re.sub(r"[^A-Za-z0-9_]", "_", p) for p in self.path)

    def label_of(self, value: Any) -> str:
        for label, choice in self.choices:
            if choice == value and type(choice) is type(value):
                return label
        return self.choices[0][0]


@dataclass(frozen=True)
class Heading:
    """The title of a nested model's group of rows."""

    path: tuple[str, ...]
    description: str

    @property
    def name(self) -> str:
        return ".".join(self.path)


def _json(annotation: Any, value: Any) -> Any:
    return TypeAdapter(annotation).dump_python(value, mode="json")


def _unwrap_optional(annotation: Any) -> tuple[Any, bool, bool]:
    """(inner type, None allowed, a union of several other types)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0], len(rest) < len(args), False
        return annotation, len(rest) < len(args), True
    return annotation, False, False


def _choices(inner: Any, optional: bool) -> tuple[tuple[str, Any], ...] | None:
    if inner is bool:
        base: tuple[tuple[str, Any], ...] = (("on", True), ("off", False))
    elif get_origin(inner) is Literal:
        base = tuple((str(v), v) for v in get_args(inner))
    else:
        return None
    return ((("auto", None),) if optional else ()) + base


def preset_defaults(kind: ExperimentKind, game: dict[str, Any]) -> dict[str, Any] | None:
    """Every parameter's value under the draft's preset (what an empty field means), or None
    for no preset (the model's own defaults)."""
    if game.get("preset") in (None, "neutral"):
        return None
    spec = game_params(kind)
    try:
        params = spec.load({k: game[k] for k in spec.preset_keys if k in game})
    except Exception:  # an invalid game or preset: its field shows the problem
        return None
    values: dict[str, Any] = params.model_dump(mode="json")
    return values


def field_specs(
    model: type[BaseModel],
    prefix: tuple[str, ...] = (),
    defaults: dict[str, Any] | None = None,
    fixed: Collection[str] = ("preset",),
) -> list[FieldSpec | Heading]:
    """The form of ``model``: a row per field, nested models (one level) as groups; ``defaults``
    (a preset's values) replace the model's defaults, except those of the ``fixed`` fields (the
    preset itself, and what the preset's values depend on)."""
    out: list[FieldSpec | Heading] = []
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        annotation = info.annotation
        default = _json(annotation, info.get_default(call_default_factory=True))
        if defaults is not None and name in defaults and name not in fixed:
            default = defaults[name]
        description = info.description or ""
        inner, optional, several = _unwrap_optional(annotation)
        choices = None if several else _choices(inner, optional)
        if choices is not None:
            out.append(FieldSpec(path, "choice", default, description, choices))
        elif several:
            out.append(FieldSpec(path, "yaml", default, description))
        elif inner in (int, float, str):
            kind: FieldKind = {int: "int", float: "float", str: "text"}[inner]  # type: ignore[assignment]
            out.append(FieldSpec(path, kind, default, description))
        elif get_origin(inner) is list and get_args(inner) == (str,):
            out.append(FieldSpec(path, "list", default, description))
        elif isinstance(inner, type) and issubclass(inner, BaseModel) and not prefix:
            out.append(Heading(path, description))
            nested = defaults.get(name) if defaults is not None else None
            out += field_specs(inner, path, nested if isinstance(nested, dict) else None, fixed)
        elif (
            get_origin(inner) is dict
            and get_args(inner)[1:] in ((float,), (int,))
            and isinstance(default, dict)
            and default
        ):
            # A mapping with fixed keys (credibility_weights): a row per key, set as a whole.
            out.append(Heading(path, description))
            value_kind: FieldKind = "float" if get_args(inner)[1] is float else "int"
            for key, value in default.items():
                out.append(FieldSpec((*path, key), value_kind, value, "", fill=default))
        else:
            out.append(FieldSpec(path, "yaml", default, description))
    return out


def fields_of(items: list[FieldSpec | Heading]) -> list[FieldSpec]:
    return [i for i in items if isinstance(i, FieldSpec)]


# --------------------------------------------------------------------------- values in the game

_MISSING = object()


def get_path(game: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path``, or ``_MISSING``."""
    node: Any = game
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def is_set(game: dict[str, Any], spec: FieldSpec) -> bool:
    return get_path(game, spec.path) is not _MISSING


def current(game: dict[str, Any], spec: FieldSpec) -> Any:
    value = get_path(game, spec.path)
    return spec.default if value is _MISSING else value


def set_value(game: dict[str, Any], spec: FieldSpec, value: Any) -> None:
    node = game
    for i, key in enumerate(spec.path[:-1]):
        child = node.get(key)
        if not isinstance(child, dict):
            last = i == len(spec.path) - 2
            child = dict(spec.fill) if (last and spec.fill is not None) else {}
            node[key] = child
        node = child
    node[spec.path[-1]] = value


def unset_value(game: dict[str, Any], spec: FieldSpec) -> None:
    """Back to the default: the key goes (a fixed-key mapping keeps its key at the default), and
    groups left empty, or equal to their default mapping, go too."""
    if get_path(game, spec.path) is _MISSING:
        return
    parents = [game]
    for key in spec.path[:-1]:
        parents.append(parents[-1][key])
    leaf = parents[-1]
    if spec.fill is not None:
        leaf[spec.path[-1]] = spec.fill[spec.path[-1]]
        if leaf == spec.fill:
            leaf.clear()
    else:
        del leaf[spec.path[-1]]
    for depth in range(len(spec.path) - 1, 0, -1):
        if parents[depth]:
            break
        del parents[depth - 1][spec.path[depth - 1]]


def format_value(spec: FieldSpec, value: Any) -> str:
    """A value as its field shows it."""
    if value is None:
        return ""
    if spec.kind == "list":
        return ", ".join(str(v) for v in value)
    if spec.kind == "yaml":
        if value in ({}, [], None):
            return ""
        text: str = yaml.safe_dump(value, default_flow_style=None, sort_keys=False, width=72)
        return text.removesuffix("...\n").rstrip("\n")
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{value:.1f}"
    return str(value)


def parse_value(spec: FieldSpec, raw: str) -> tuple[bool, Any]:
    """What the user typed as (is set, value); ValueError with a message for the field."""
    text = raw.strip()
    if not text:
        return False, None
    if spec.kind == "int":
        try:
            return True, int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
    if spec.kind == "float":
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{text!r} is not a finite number")
        return True, number
    if spec.kind == "list":
        return True, [part.strip() for part in text.split(",") if part.strip()]
    if spec.kind == "yaml":
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(exc, "problem", None) or "cannot be read"
            raise ValueError(f"not valid YAML ({where}{problem})") from None
        if value == spec.default:
            return False, None
        return True, value
    return True, text


def _owner(loc: tuple[str, ...], specs: list[FieldSpec]) -> FieldSpec | None:
    best: FieldSpec | None = None
    for spec in specs:
        if loc[: len(spec.path)] == spec.path and (best is None or len(spec.path) > len(best.path)):
            best = spec
    return best


def _mentioned(message: str, specs: list[FieldSpec]) -> FieldSpec | None:
    """The field a whole-model error is about, from the words of its message."""
    words = set(re.findall(r"[a-z_]+", message.lower()))
    for spec in specs:  # a parameter named in full first ("bounds need exactly ...")
        if spec.path[0] in words and len(spec.path) == 1:
            return spec
    for spec in specs:  # then a key ("credibility weight of neutral must be ...")
        if len(spec.path[-1]) >= 3 and spec.path[-1] in words:
            return spec
    return None


def validate_game(
    kind: ExperimentKind, game: dict[str, Any], specs: list[FieldSpec]
) -> tuple[dict[str, str], list[str]]:
    """Each problem of ``game`` under the field it belongs to (by field name), and the ones that
    belong to no field."""
    data = dict(game)
    for key in game_params(kind).extra_keys:  # stored beside the parameters (load drops them)
        data.pop(key, None)
    try:
        params_model(kind).model_validate(data)
    except ValidationError as exc:
        fields: dict[str, list[str]] = {}
        general: list[str] = []
        for err in exc.errors():
            loc = tuple(str(p) for p in err.get("loc", ()))
            msg = str(err.get("msg", "")).removeprefix("Value error, ")
            spec = _owner(loc, specs) if loc else _mentioned(msg, specs)
            if spec is None:
                general.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
                continue
            rest = ".".join(loc[len(spec.path) :])
            fields.setdefault(spec.name, []).append(f"{rest}: {msg}" if rest else msg)
        return {name: "; ".join(msgs) for name, msgs in fields.items()}, general
    return {}, []


def unknown_keys(game: dict[str, Any], model: type[BaseModel]) -> list[str]:
    return [k for k in game if k not in model.model_fields]


# --------------------------------------------------------------------------- the pane


class GamePane(Vertical):
    """The Game tab: a form of the draft's game parameters (see the module docstring)."""

    class Ready(Message):
        """The parameter module of ``kind`` is imported: the form can be built."""

        def __init__(self, kind: ExperimentKind) -> None:
            super().__init__()
            self.kind = kind

    def __init__(self, draft: Draft) -> None:
        super().__init__(id="game-pane")
        self.draft = draft
        self.shown: ExperimentKind | None = None  # the kind the form was built for
        self.items: list[FieldSpec | Heading] = []
        self.by_id: dict[str, FieldSpec] = {}
        self.problems: dict[str, str] = {}  # field name -> what is wrong (shown under it)
        self.general: list[str] = []
        self.builds = 0  # forms built (tests wait on it)
        self._dropped: list[str] = []
        self._errors: dict[str, Static] = {}  # field name -> the line under it
        self._shown: dict[str, str] = {}  # what each of those lines shows
        self._texts: dict[str, str] = {}  # what the pane's own lines show, by selector
        self._imported: set[ExperimentKind] = set()
        self._preset: dict[str, Any] = {}  # the preset (and game) the form's defaults follow
        self._examples: dict[str, str] = {}  # placeholders of the YAML fields

    def compose(self) -> ComposeResult:
        yield Static("", id="game-intro", classes="hint", markup=False)
        yield Static("", id="game-general", classes="issues", markup=False)
        # Not focusable itself: blurring a container restyles every row under it.
        yield VerticalScroll(id="game-form", can_focus=False)
        yield Static("", id="game-help", classes="hint", markup=False)

    def on_mount(self) -> None:
        self.query_one("#game-general").display = False
        self.sync()

    @property
    def fields(self) -> list[FieldSpec]:
        return fields_of(self.items)

    # ------------------------------------------------------------------ building

    def sync(self) -> None:
        """Follow the draft: rebuild the form when the kind changed, else re-check it."""
        kind = self.draft.kind
        if kind == self.shown:
            self._check()
            self._paint_intro()
            return
        self.shown = None
        if not is_game(kind):
            self.query_one("#game-form", VerticalScroll).remove_children()
            self.items, self.by_id = [], {}
            self._errors, self._shown = {}, {}
            self.shown = kind
            self._update("#game-intro", no_game_text())
            self._update("#game-help", "")
            self._update("#game-general", "")
            self.query_one("#game-general").display = False
            return
        self._update("#game-intro", f"Loading the {kind.value} parameters…")
        if kind in self._imported and not self._visible():
            return  # nothing to do until the tab is shown
        self._import(kind)

    @work(exclusive=True, group="game-import", exit_on_error=False)
    async def _import(self, kind: ExperimentKind) -> None:
        await asyncio.to_thread(params_model, kind)
        self._imported.add(kind)
        self.post_message(self.Ready(kind))

    @on(Ready)
    async def _ready(self, message: Ready) -> None:
        if message.kind is not self.draft.kind or self.shown is message.kind:
            return
        if not self._visible():
            return  # built when the tab is opened (its sync): an editor opens without the cost
        await self._build(message.kind)

    def _visible(self) -> bool:
        """Whether the pane's tab is the one shown (the tabs hide the others' panes)."""
        return self.parent is None or bool(self.parent.display)

    async def _build(self, kind: ExperimentKind) -> None:
        spec = game_params(kind)
        model = spec.model()
        self._dropped = [
            k for k in unknown_keys(self.draft.game, model) if k not in spec.extra_keys
        ]
        for key in self._dropped:
            del self.draft.game[key]
        self._preset = {k: self.draft.game.get(k) for k in spec.preset_keys}
        self._examples = dict(spec.examples)
        defaults = preset_defaults(kind, self.draft.game)
        self.items = field_specs(model, defaults=defaults, fixed=spec.preset_keys)
        self.by_id = {spec.widget_id: spec for spec in self.fields}
        form = self.query_one("#game-form", VerticalScroll)
        self._errors, self._shown = {}, {}
        await form.remove_children()
        await form.mount_all(self._rows())
        self.shown = kind
        self.builds += 1
        self._paint_intro()
        self._check()
        if self._dropped:
            self.post_message(DraftChanged(self))

    def _rows(self) -> list[Widget]:
        rows: list[Widget] = []
        for item in self.items:
            if isinstance(item, Heading):
                text = f"{item.name}: {item.description}" if item.description else item.name
                rows.append(Static(text, classes="game-group", markup=False))
                continue
            rows += self._field_rows(item)
        return rows

    def _field_rows(self, spec: FieldSpec) -> list[Widget]:
        game = self.draft.game
        label = Label(spec.path[-1] if len(spec.path) > 1 else spec.name, classes="game-label")
        if len(spec.path) > 1:
            label.add_class("nested")
        desc = Static(spec.description, classes="game-desc", markup=False)
        error = Static("", id=f"{spec.widget_id}-error", classes="game-error", markup=False)
        error.display = False
        self._errors[spec.name] = error
        if spec.kind == "yaml":
            shown = current(game, spec)
            area = TextArea(
                format_value(spec, shown),
                id=spec.widget_id,
                classes="game-yaml",
                soft_wrap=True,
                compact=True,
                placeholder=self._examples.get(spec.name, "none"),
            )
            lines = max(2, min(6, len(format_value(spec, shown).splitlines()) + 1))
            area.styles.height = lines
            return [Horizontal(label, desc, classes="game-row"), area, error]
        widget: Widget
        if spec.kind == "choice":
            value = current(game, spec)
            widget = Select(
                [(text, text) for text, _ in spec.choices],
                value=spec.label_of(value),
                allow_blank=False,
                id=spec.widget_id,
                compact=True,
                classes="game-input",
            )
        else:
            value = get_path(game, spec.path)
            placeholder = format_value(spec, spec.default) or "none"
            widget = Input(
                "" if value is _MISSING else format_value(spec, value),
                placeholder=f"{placeholder}",
                id=spec.widget_id,
                compact=True,
                classes="game-input",
            )
        return [Horizontal(label, widget, desc, classes="game-row"), error]

    def _paint_intro(self) -> None:
        kind = self.draft.kind
        if not is_game(kind):
            return
        roles = self.draft.role_names() or ["Member"]
        members = ", ".join(f"{r[:1].upper()}{r[1:]} 1, {r[:1].upper()}{r[1:]} 2, …" for r in roles)
        self._update("#game-intro", game_params(kind).intro.format(members=members))

    def _update(self, selector: str, text: str) -> bool:
        """Repaint a line only when its text changes (the editor re-syncs on every keystroke
        of the Experiment tab, and each repaint of a line is a layout pass)."""
        if self._texts.get(selector) == text:
            return False
        self._texts[selector] = text
        self.query_one(selector, Static).update(text)
        return True

    # ------------------------------------------------------------------ editing

    def _edited(self, spec: FieldSpec, raw: str) -> None:
        game = self.draft.game
        problems = self.draft.game_problems
        before = (is_set(game, spec), get_path(game, spec.path), problems.get(spec.name))
        try:
            present, value = parse_value(spec, raw)
        except ValueError as exc:
            problems[spec.name] = str(exc)
        else:
            problems.pop(spec.name, None)
            if present:
                set_value(game, spec, value)
            else:
                unset_value(game, spec)
        after = (is_set(game, spec), get_path(game, spec.path), problems.get(spec.name))
        if after != before:
            self._check()
            self.post_message(DraftChanged(self))

    def _chosen(self, spec: FieldSpec, label: str) -> None:
        values = dict(spec.choices)
        if label not in values:
            return
        value = values[label]
        old = current(self.draft.game, spec)
        if value == old and type(value) is type(old):
            return
        set_value(self.draft.game, spec, value)
        self._check()
        self.post_message(DraftChanged(self))
        keys = game_params(self.shown).preset_keys if self.shown is not None else ()
        if spec.name in keys and self.shown is not None:
            now = {k: self.draft.game.get(k) for k in keys}
            preset = now.get("preset") not in (None, "neutral")
            if now.get("preset") != self._preset.get("preset") or (preset and now != self._preset):
                # the defaults an empty field means changed: show them
                self.run_worker(self._build(self.shown), exclusive=True, group="game-build")

    @on(Input.Changed, ".game-input")
    def _input_changed(self, event: Input.Changed) -> None:
        event.stop()
        spec = self.by_id.get(event.input.id or "")
        if spec is not None:
            self._edited(spec, event.value)

    @on(TextArea.Changed, ".game-yaml")
    def _yaml_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        spec = self.by_id.get(event.text_area.id or "")
        if spec is not None:
            self._edited(spec, event.text_area.text)

    @on(Select.Changed, ".game-input")
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        spec = self.by_id.get(event.select.id or "")
        if spec is not None and isinstance(event.value, str):
            self._chosen(spec, event.value)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        spec = None
        node: Any = event.widget
        while node is not None and node is not self and spec is None:
            spec = self.by_id.get(getattr(node, "id", None) or "")
            node = node.parent
        if spec is None:
            return
        default = format_value(spec, spec.default) or "none"
        text = f"{spec.name}: {spec.description} " if spec.description else f"{spec.name}: "
        self._update("#game-help", f"{text}(default {default})".strip())

    # ------------------------------------------------------------------ checking

    def _check(self) -> None:
        kind = self.draft.kind
        if not is_game(kind) or self.shown is not kind:
            return
        specs = self.fields
        problems, general = validate_game(kind, self.draft.game, specs)
        for name, text in self.draft.game_problems.items():
            problems[name] = text  # what does not parse hides the model's view of it
        self.problems, self.general = problems, general
        for spec in specs:  # only lines that change: each change is a layout pass
            text = problems.get(spec.name, "")
            error = self._errors.get(spec.name)
            if error is None or self._shown.get(spec.name, "") == text:
                continue
            self._shown[spec.name] = text
            error.update(text)
            error.display = bool(text)
        lines = list(general)
        if self._dropped:
            lines.append(
                f"Not {kind.value} parameters, removed: {', '.join(self._dropped)} "
                "(saving stores the experiment without them)."
            )
        if self._update("#game-general", "\n".join(lines)):
            general_widget = self.query_one("#game-general", Static)
            general_widget.display = bool(lines)
            general_widget.set_class(bool(lines), "has-issues")
