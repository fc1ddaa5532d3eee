"""Home: the experiment library (every experiment the user can see) and what to do with them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Checkbox, DataTable, Footer, Header, Input, Select, Static

from simulator.db.store import ExperimentFilter
from simulator.domain.models import Experiment
from simulator.services.experiments import latest_versions
from simulator.tui.context import services_of, user_of
from simulator.tui.screens.base import ReportsWorkerErrors
from simulator.tui.screens.dialogs import ConfirmDialog, TextPrompt
from simulator.words import plural

if TYPE_CHECKING:
    from simulator.services.container import Services

# (column key, label, width): the table shows every column from FULL_WIDTH on, and gives a wider
# terminal's room to GROWS; a narrower one first DROPS the columns the details lines repeat, then
# SHRINKS the long ones down to a minimum.
COLUMNS: list[tuple[str, str, int]] = [
    ("favourite", "★", 1),
    ("name", "Name", 14),
    ("version", "Ver", 6),
    ("kind", "Kind", 10),
    ("roles", "Roles", 15),
    ("models", "Models", 9),
    ("conversations", "Conv", 4),
    ("owner", "Owner", 7),
    ("created", "Created", 10),
    ("note", "Note", 8),
]
SORTABLE = ["created", "name", "owner", "kind", "conversations", "favourite"]
GROWS = {"name": 3, "roles": 1, "models": 1, "note": 3}  # shares of the extra width
DROPS = ["note", "created"]  # first to go in a narrow terminal (the details show them)
SHRINKS = {"models": 6, "roles": 10, "name": 10}  # then these shrink, down to these widths
CELL_PADDING = 2  # a DataTable cell's padding, left and right
FULL_WIDTH = sum(width + CELL_PADDING for _, _, width in COLUMNS)  # every column at its width


def column_widths(table_width: int) -> dict[str, int]:
    """The width of each column shown in a table ``table_width`` wide (in COLUMNS' order): at
    100x30 all but the note, at 80x24 neither the note nor the date."""
    widths = {key: width for key, _, width in COLUMNS}
    extra = table_width - FULL_WIDTH
    if extra >= 0:
        total = sum(GROWS.values())
        for key, share in GROWS.items():
            widths[key] += extra * share // total
        return widths
    for key in DROPS:
        if extra >= 0:
            break
        extra += widths.pop(key) + CELL_PADDING
    for key, minimum in SHRINKS.items():
        if extra >= 0:
            break
        cut = min(widths[key] - minimum, -extra)
        widths[key] -= cut
        extra += cut
    widths["name"] += max(extra, 0)
    return widths


def version_label(exp: Experiment, latest: Experiment | None) -> Text:
    """``v2``; an experiment a newer version supersedes is dimmed: ``v1 old``."""
    if latest is None:
        return Text(f"v{exp.version}")
    return Text(f"v{exp.version} old", style="dim")


def _kind_names() -> list[str]:
    """The registered experiment kinds (imported when the filter is built, not at start-up)."""
    from simulator.scenarios.registry import KINDS

    return KINDS.names()


def clip(text: str, width: int) -> str:
    """One line of at most ``width`` characters, with an ellipsis when cut."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def models_label(exp: Experiment, width: int = 10) -> str:
    """The models on offer in ``width`` characters: all of them, or the first and how many more."""
    names = [m.model if m.provider.value != "dryrun" else "dryrun" for m in exp.models]
    text = ", ".join(names)
    if len(text) <= width or len(names) < 2:
        return clip(text, width)
    more = f" +{len(names) - 1}"
    return clip(names[0], width - len(more)) + more


def created_label(exp: Experiment) -> str:
    return exp.created_at.astimezone().strftime("%Y-%m-%d")


def export_file_name(exp: Experiment) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", exp.name).strip("-").lower() or "experiment"
    return f"{slug}.yaml"


@dataclass
class Row:
    experiment: Experiment
    conversations: int
    latest: Experiment | None = None  # a newer version that supersedes this one


def sort_rows(rows: list[Row], key: str, reverse: bool) -> list[Row]:
    def value(row: Row) -> Any:
        exp = row.experiment
        if key == "name":
            return exp.name.casefold()
        if key == "owner":
            return (exp.owner.casefold(), exp.name.casefold())
        if key == "kind":
            return (exp.kind.value, exp.name.casefold())
        if key == "conversations":
            return row.conversations
        if key == "favourite":
            return (not exp.favourite, exp.name.casefold())
        return exp.created_at

    return sorted(rows, key=value, reverse=reverse)


class LibraryScreen(ReportsWorkerErrors, Screen[None]):
    """The experiment library."""

    HELP_TITLE = "Experiment library"
    # In the footer's order: the main actions first (an 80-column footer shows up to Delete;
    # every key is in F1's help and the command palette).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new", "New", id="library.new", tooltip="Create an experiment"),
        Binding(
            "enter,o",
            "open",
            "Open",
            id="library.open",
            tooltip="Open the experiment in the editor",
        ),
        Binding("b", "batch", "Batch", id="library.batch", tooltip="Set up a batch of runs of it"),
        Binding("r", "runs", "Runs", id="library.runs", tooltip="Watch running batches"),
        Binding(
            "c",
            "conversations",
            "Conversations",
            id="library.conversations",
            tooltip="Read its stored conversations",
        ),
        Binding(
            "e", "export", "Export", id="library.export", tooltip="Write it to a YAML or JSON file"
        ),
        Binding(
            "x,delete",
            "delete",
            "Delete",
            id="library.delete",
            tooltip="Delete it with its conversations (owner only)",
        ),
        Binding(
            "d",
            "duplicate",
            "Duplicate",
            id="library.duplicate",
            tooltip="Copy the experiment into your library",
        ),
        Binding("f", "favourite", "Favourite", id="library.favourite", tooltip="Star or unstar it"),
        Binding("t", "note", "Note", id="library.note", tooltip="Edit its note"),
        Binding(
            "i", "import", "Import", id="library.import", tooltip="Add an experiment from a file"
        ),
        Binding(
            "a",
            "annotate",
            "Annotate",
            id="library.annotate",
            tooltip="Annotate its finished conversations: a judge, moderation or a scorer",
            show=False,
        ),
        Binding("s", "sort", "Sort", id="library.sort", show=False),
        Binding("slash", "search", "Search", id="library.search", show=False),
        Binding("ctrl+r", "refresh", "Refresh", id="library.refresh", show=False),
        Binding("escape", "clear_search", "Clear filters", id="library.clear", show=False),
    ]

    class Loaded(Message):
        """The library as read from the database just now."""

        def __init__(self, rows: list[Row], select: str | None) -> None:
            super().__init__()
            self.rows = rows
            self.select = select

    class Done(Message):
        """An action finished: say so and reload, keeping ``select`` highlighted."""

        def __init__(self, text: str, select: str | None = None) -> None:
            super().__init__()
            self.text = text
            self.select = select

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Row] = []
        self.sort_key = "created"
        self.sort_reverse = True
        self.owners: set[str] = set()
        self._first_load = True
        self.loads = 0  # finished loads (tests wait on it)
        self._select_next: str | None = None  # to highlight once loaded (what was just saved)
        self._widths: dict[str, int] = {}

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal(id="library-filters"):
            yield Input(placeholder="Search name or note  (/)", id="search", compact=True)
            yield Select(
                [("All owners", "")],
                value="",
                allow_blank=False,
                id="owner-filter",
                compact=True,
            )
            yield Select(
                [("All kinds", "")] + [(name, name) for name in _kind_names()],
                value="",
                allow_blank=False,
                id="kind-filter",
                compact=True,
            )
            yield Checkbox("★ only", id="favourites-filter", compact=True)
        yield DataTable(id="experiments", cursor_type="row", zebra_stripes=True)
        yield Static("", id="library-details")
        yield Static("", id="library-status", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#experiments", DataTable).focus()

    def on_resize(self) -> None:
        # Only a repaint of the rows already read: the first resize comes before the first load,
        # and taking it for an empty library once offered the example over a full one.
        if column_widths(self.query_one("#experiments", DataTable).size.width) != self._widths:
            self._show_rows(self.selected_id())

    def on_screen_resume(self) -> None:
        self.load(self._select_next or self.selected_id())

    # ------------------------------------------------------------------ data

    @property
    def services(self) -> Services:
        return services_of(self.app)

    @property
    def user(self) -> str:
        return user_of(self.app)

    def current_filter(self) -> ExperimentFilter:
        text = self.query_one("#search", Input).value.strip()
        owner = self.query_one("#owner-filter", Select).value
        kind = self.query_one("#kind-filter", Select).value
        return ExperimentFilter(
            text=text or None,
            owner=owner if isinstance(owner, str) and owner else None,
            favourites_only=self.query_one("#favourites-filter", Checkbox).value,
            kind=kind if isinstance(kind, str) and kind else None,
        )

    @work(exclusive=True, group="library-load", exit_on_error=False)
    async def load(self, select: str | None = None) -> None:
        found = await self.services.experiments.list(self.current_filter())
        latest = latest_versions([r.experiment for r in found])
        rows = [Row(r.experiment, r.conversations, latest.get(r.experiment.id)) for r in found]
        self.post_message(self.Loaded(rows, select))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.rows = message.rows
        if message.select is not None and message.select == self._select_next:
            self._select_next = None
        self._update_owner_options()
        self._show_rows(message.select)
        self.loads += 1
        if self._first_load:
            self._first_load = False
            if not self.rows and not self._filtered() and getattr(self.app, "offer_example", False):
                self._offer_example()

    def _filtered(self) -> bool:
        flt = self.current_filter()
        return any([flt.text, flt.owner, flt.kind, flt.favourites_only])

    def _show_rows(self, select: str | None) -> None:
        """Paint ``self.rows`` in the current sort order, keeping ``select`` highlighted."""
        self.rows = sort_rows(self.rows, self.sort_key, self.sort_reverse)
        table = self.query_one("#experiments", DataTable)
        widths = column_widths(table.size.width)
        if widths != self._widths:
            self._widths = widths
            table.clear(columns=True)
            for key, label, _ in COLUMNS:
                if key in widths:
                    table.add_column(label, key=key, width=widths[key])
        else:
            table.clear()
        for row in self.rows:
            cells = self._cells(row, widths)
            table.add_row(*(cells[key] for key in widths), key=row.experiment.id)
        if select is not None:
            for index, row in enumerate(self.rows):
                if row.experiment.id == select:
                    table.move_cursor(row=index)
                    break
        self._update_details()
        arrow = "↓" if self.sort_reverse else "↑"
        self.query_one("#library-status", Static).update(
            f"{plural(len(self.rows), 'experiment')}{' (filtered)' if self._filtered() else ''} · "
            f"sorted by {self.sort_key} {arrow} · you are {self.user} · F1 or ? help"
        )

    @staticmethod
    def _cells(row: Row, widths: dict[str, int]) -> dict[str, str | Text]:
        exp = row.experiment
        name = clip(exp.name, widths["name"])
        return {
            "favourite": "★" if exp.favourite else " ",
            "name": Text(name, style="dim") if row.latest else name,
            "version": version_label(exp, row.latest),
            "kind": exp.kind.value,
            "roles": clip(", ".join(r.name for r in exp.roles) or "-", widths["roles"]),
            "models": models_label(exp, widths["models"]),
            "conversations": str(row.conversations),
            "owner": clip(exp.owner, widths["owner"]),
            "created": created_label(exp),
            "note": clip(exp.note, widths.get("note", 0)),
        }

    def _update_owner_options(self) -> None:
        self.owners |= {r.experiment.owner for r in self.rows if r.experiment.owner}
        select = self.query_one("#owner-filter", Select)
        options = [("All owners", ""), (f"Mine ({self.user})", self.user)]
        options += [(o, o) for o in sorted(self.owners - {self.user})]
        current = select.value
        if [v for _, v in options] != [v for _, v in getattr(self, "_owner_options", [])]:
            self._owner_options = options
            with select.prevent(Select.Changed):
                select.set_options(options)
                select.value = current if current in [v for _, v in options] else ""

    def selected_row(self) -> Row | None:
        table = self.query_one("#experiments", DataTable)
        if not self.rows or table.cursor_row is None:
            return None
        if 0 <= table.cursor_row < len(self.rows):
            return self.rows[table.cursor_row]
        return None

    def selected_id(self) -> str | None:
        row = self.selected_row()
        return row.experiment.id if row else None

    def _require_selection(self) -> Row | None:
        row = self.selected_row()
        if row is None:
            self.notify(
                "Select an experiment first (or press n for a new one).", severity="warning"
            )
        return row

    def _update_details(self) -> None:
        row = self.selected_row()
        details = self.query_one("#library-details", Static)
        if row is None:
            details.update("No experiment selected. n: new experiment · i: import from a file")
            return
        exp = row.experiment
        roles = ", ".join(r.name for r in exp.roles) or "no roles"
        factors = (
            ", ".join(f"{f.name} ({plural(len(f.levels), 'level')})" for f in exp.factors) or "none"
        )
        # Two lines, each cut with an ellipsis at the screen's edge (app.tcss).
        version = f"v{exp.version}"
        if row.latest is not None:
            version += f" [b](older: v{row.latest.version} is the latest)[/b]"
        details.update(
            f"[b]{escape(exp.name)}[/b] {version} by {escape(exp.owner or '?')} · "
            f"{created_label(exp)} · roles: {escape(roles)} · factors: {escape(factors)}\n"
            f"models: {escape(', '.join(m.label for m in exp.models))}"
            + (f" · note: {escape(exp.note)}" if exp.note else "")
        )

    @on(DataTable.RowHighlighted, "#experiments")
    def _highlighted(self) -> None:
        self._update_details()

    @on(DataTable.RowSelected, "#experiments")
    def _selected(self) -> None:
        self.action_open()

    @on(DataTable.HeaderSelected, "#experiments")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key not in SORTABLE:
            return
        if key == self.sort_key:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_key, self.sort_reverse = key, key in ("created", "conversations")
        self._show_rows(self.selected_id())

    @on(Input.Changed, "#search")
    @on(Select.Changed)
    @on(Checkbox.Changed, "#favourites-filter")
    def _filter_changed(self) -> None:
        self.load(self.selected_id())

    @on(Input.Submitted, "#search")
    def _search_done(self) -> None:
        self.query_one("#experiments", DataTable).focus()

    @on(Done)
    def _done(self, message: Done) -> None:
        if message.text:
            self.notify(message.text)
        self.load(message.select)

    # ------------------------------------------------------------------ actions

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_clear_search(self) -> None:
        self.query_one("#search", Input).value = ""
        self.query_one("#owner-filter", Select).value = ""
        self.query_one("#kind-filter", Select).value = ""
        self.query_one("#favourites-filter", Checkbox).value = False
        self.query_one("#experiments", DataTable).focus()

    def action_refresh(self) -> None:
        self.load(self.selected_id())

    def action_sort(self) -> None:
        index = (SORTABLE.index(self.sort_key) + 1) % len(SORTABLE)
        self.sort_key = SORTABLE[index]
        self.sort_reverse = self.sort_key in ("created", "conversations")
        self._show_rows(self.selected_id())

    def action_new(self) -> None:
        from simulator.tui.screens.editor import EditorScreen

        self.app.push_screen(EditorScreen(None), callback=self._editor_closed)

    def action_open(self) -> None:
        row = self._require_selection()
        if row is None:
            return
        from simulator.tui.screens.editor import EditorScreen

        self.app.push_screen(
            EditorScreen(row.experiment, conversations=row.conversations),
            callback=self._editor_closed,
        )

    def _editor_closed(self, saved_id: str | None) -> None:
        """Highlight what the editor saved last (a new experiment, or a new version)."""
        if saved_id is not None:
            self._select_next = saved_id
            self.load(saved_id)

    def action_duplicate(self) -> None:
        row = self._require_selection()
        if row is not None:
            self._duplicate(row.experiment.id)

    @work(group="library-action", exit_on_error=False)
    async def _duplicate(self, experiment_id: str) -> None:
        copy = await self.services.experiments.duplicate(experiment_id)
        self.post_message(self.Done(f"Duplicated as '{copy.name}' (yours to edit).", copy.id))

    def action_favourite(self) -> None:
        row = self._require_selection()
        if row is not None:
            self._favourite(row.experiment.id)

    @work(group="library-action", exit_on_error=False)
    async def _favourite(self, experiment_id: str) -> None:
        await self.services.experiments.toggle_favourite(experiment_id)
        self.post_message(self.Done("", experiment_id))

    def action_note(self) -> None:
        row = self._require_selection()
        if row is None:
            return
        exp = row.experiment

        def entered(note: str | None) -> None:
            if note is not None:
                self._set_note(exp.id, note.strip())

        self.app.push_screen(
            TextPrompt(f"Note for '{exp.name}'", value=exp.note, placeholder="a short note"),
            callback=entered,
        )

    @work(group="library-action", exit_on_error=False)
    async def _set_note(self, experiment_id: str, note: str) -> None:
        await self.services.experiments.set_note(experiment_id, note)
        self.post_message(self.Done("Note saved.", experiment_id))

    def action_delete(self) -> None:
        row = self._require_selection()
        if row is None:
            return
        exp = row.experiment
        if exp.owner and exp.owner != self.user:
            self.notify(
                f"'{exp.name}' belongs to {exp.owner}; only its owner can delete it. "
                "You can duplicate it (d) and work on your copy.",
                title="Not allowed",
                severity="error",
                timeout=10,
            )
            return
        conversations = (
            f" and its {plural(row.conversations, 'conversation')}" if row.conversations else ""
        )

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._delete(exp.id, exp.name)

        self.app.push_screen(
            ConfirmDialog(
                "Delete experiment?",
                f"Delete '{exp.name}'{conversations}? This cannot be undone.",
                yes="Delete",
                no="Keep",
                danger=True,
            ),
            callback=confirmed,
        )

    @work(group="library-action", exit_on_error=False)
    async def _delete(self, experiment_id: str, name: str) -> None:
        await self.services.experiments.delete(experiment_id)
        self.post_message(self.Done(f"Deleted '{name}'."))

    def action_export(self) -> None:
        row = self._require_selection()
        if row is None:
            return
        exp = row.experiment
        default = Path.cwd() / "exports" / export_file_name(exp)

        def entered(path: str | None) -> None:
            if path and path.strip():
                self._export(exp.id, Path(path.strip()).expanduser())

        self.app.push_screen(
            TextPrompt(
                f"Export '{exp.name}' to a file",
                value=str(default),
                hint="YAML (.yaml) or JSON (.json); import it with i, or 'simulator experiments "
                "import FILE'.",
            ),
            callback=entered,
        )

    @work(group="library-action", exit_on_error=False)
    async def _export(self, experiment_id: str, path: Path) -> None:
        written = await self.services.experiments.export(experiment_id, path)
        self.post_message(self.Done(f"Exported to {written or path}.", experiment_id))

    def action_import(self) -> None:
        def entered(path: str | None) -> None:
            if path and path.strip():
                self._import(Path(path.strip()).expanduser())

        self.app.push_screen(
            TextPrompt(
                "Import an experiment from a file",
                value=str(Path.cwd() / "exports") + "/",
                hint="A YAML or JSON file written by export. It becomes yours, as a new "
                "experiment.",
            ),
            callback=entered,
        )

    @work(group="library-action", exit_on_error=False)
    async def _import(self, path: Path) -> None:
        exp = await self.services.experiments.import_file(path)
        self.post_message(self.Done(f"Imported '{exp.name}'.", exp.id))

    def _offer_example(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._add_example()

        self.app.push_screen(
            ConfirmDialog(
                "Welcome",
                "Your library is empty. Add the ready-made prison study example (a guard and a "
                "prisoner with goal, personality and communication-rules sections, a shared "
                "environment and a summarizer)? You can run it at once with the offline dryrun "
                "model.",
                yes="Add example",
                no="Start empty",
            ),
            callback=answered,
        )

    @work(group="library-action", exit_on_error=False)
    async def _add_example(self) -> None:
        added = await self.services.experiments.ensure_examples()
        if added:
            self.post_message(
                self.Done("Added the prison study example. Press enter to open it.", added[0].id)
            )
        else:  # someone filled the library meanwhile: say what happened
            self.post_message(self.Done("The library is not empty any more: nothing was added."))

    # ------------------------------------------------------------------ part-2 screens

    # The other screens are imported when first opened: the library shows sooner.

    def action_batch(self) -> None:
        from simulator.tui.screens.batch_setup import BatchSetupScreen

        row = self._require_selection()
        if row is not None:
            self.app.push_screen(BatchSetupScreen(row.experiment))

    def action_runs(self) -> None:
        from simulator.tui.screens.batches import BatchListScreen

        self.app.push_screen(BatchListScreen())

    def action_annotate(self) -> None:
        from simulator.tui.screens.annotate_experiment import AnnotateExperimentScreen

        row = self._require_selection()
        if row is not None:
            self.app.push_screen(AnnotateExperimentScreen(row.experiment))

    def action_conversations(self) -> None:
        from simulator.tui.screens.browser import ConversationBrowserScreen

        row = self._require_selection()
        if row is not None:
            self.app.push_screen(ConversationBrowserScreen(row.experiment))
