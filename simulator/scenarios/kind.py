"""The one interface every experiment kind implements, in its own package under scenarios/.

A kind is a ``Kind``: plain data and functions, no Textual and no argparse. The engine uses its
runner and call estimator (``simulator.engine.kinds``); the rest of the app renders what the kind
declares:

- ``params``: its game parameters (a pydantic model in ``Experiment.game``) and how the editor's
  Game tab shows them (``GameParams``); none for a dialogue;
- ``policies``: its scripted players for the dryrun backend (rehearsals, calibration, tests);
- ``chart``: the monitor's live chart, as series computed by pure functions of its stored
  snapshots and live events (``Chart``, ``GamePoint``); the widget only draws;
- ``commands``: its ``simulator <name> ...`` command group, declared as data and handlers taking
  plain values (``Commands``, ``Command``, ``Option``); ``simulator.commands.kinds`` renders it
  into argparse;
- ``tables``: its tidy tables (``rounds``, ``steps``, ...) as pure functions of a run's stored
  snapshots with the dtypes of their columns (``Table``), which ``simulator.analysis.game_tables``
  pools over runs with their conditions (``simulator export --what <table>``);
- ``figures``: the figures of one run's state after a round or step (``SnapshotFigure``: a
  ``Network`` or a ``ScoreMatrix``), which ``simulator.analysis.plots`` draws
  (``simulator plot --figure <name>``);
- ``interview``: the context of one of its agents for an interview after the run (else the run
  is replayed read-only through its runner).

Games play through one decision seam (``simulator.engine.decisions``). The registry that lists
the kinds is ``simulator.scenarios.registry``; docs/architecture.md says how to add one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from simulator.domain.game_data import (
    BOOL,
    FLOAT,
    INT,
    STRING,
    Network,
    NetworkNode,
    RunParams,
    ScoreMatrix,
    SnapshotFigure,
    Snapshots,
    Table,
    TableRows,
)
from simulator.engine.kinds import CLOCKS, CellEstimator, Runner

if TYPE_CHECKING:
    from pydantic import BaseModel

    from simulator.db.store import Store
    from simulator.domain import Conversation, Experiment
    from simulator.llm.dryrun import Policy
    from simulator.llm.registry import Backends


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class GameParams:
    """A game's parameters (``Experiment.game``) and how the Game tab shows them.

    The form is generated from the pydantic model: a row per field with its default and
    description (see simulator/tui/editor/game.py); what is declared here is what the model
    cannot say."""

    #: The parameters' pydantic model (imported when first asked: kinds load lazily).
    model: Callable[[], type[BaseModel]]
    #: ``load(game)``: the parameters ``game`` stands for (a preset applied); SpecError saying
    #: which field is wrong and why.
    load: Callable[[Mapping[str, Any]], BaseModel]
    #: The Game tab's first line; ``{members}`` stands for the members' names (Member 1, ...).
    intro: str = ""
    #: Placeholders of the fields edited as YAML, by field path (``monitors.model``).
    examples: Mapping[str, str] = field(default_factory=dict)
    #: Fields whose value changes what the others default to (a preset, the game of a family).
    preset_keys: tuple[str, ...] = ("preset",)
    #: Keys stored beside the model's fields and kept by the form (reputation's ``rounds``, the
    #: batch grid's name for its steps).
    extra_keys: tuple[str, ...] = ()
    #: ``of_run(experiment, conversation, snapshots)``: the parameters a stored run played with
    #: (its own ``Conversation.game`` or the experiment's, study factors and the cell's rounds
    #: applied; what its snapshots stored first): the ``param_<name>`` columns of its tables.
    of_run: RunParams | None = None

    def check(self, game: Mapping[str, Any]) -> dict[str, Any]:
        """``game`` validated (SpecError when it is not valid) as it is stored: the parameters
        that were set, as JSON values."""
        params = self.load(game)
        data: dict[str, Any] = params.model_dump(mode="json", exclude_unset=True)
        return data


# --------------------------------------------------------------------------- the chart


@dataclass
class GamePoint:
    """The state of a game at the end of a round (or step) ``x``: its series' values, and a
    value per member when the chart draws one line per member."""

    x: int
    values: dict[str, float | None] = field(default_factory=dict)  # series key -> value
    members: dict[str, float] = field(default_factory=dict)  # member -> value
    total: int | None = None  # rounds/steps of the run, when known


@dataclass(frozen=True)
class Series:
    """One line of a chart (or, ``plotted=False``, a value its caption shows)."""

    key: str  # in ``GamePoint.values``
    label: str
    side: Literal["left", "right"] = "left"
    digits: int = 1  # decimals in the caption
    plotted: bool = True
    color: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class Chart:
    """The run monitor's live chart of one conversation of the kind."""

    title: str  # "Resource and credits per round": what the chart shows before any point
    series: tuple[Series, ...]
    #: ``points(states)``: the points of a stored run, from its snapshots ``(step, state)``
    #: (only the latest one when ``latest_only``).
    points: Callable[[Sequence[tuple[int, Mapping[str, Any]]]], list[GamePoint]]
    #: ``point(event)``: a point from an engine event (a stored message, a step's end), or None.
    point: Callable[[object], GamePoint | None]
    #: What the per-member lines are (``credits``); None: no per-member lines.
    members: str | None = None
    #: The latest snapshot holds every round's record (commons); else one snapshot per point.
    latest_only: bool = False


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Option:
    """One command-line option (``--rounds``) or positional argument (``conversation``)."""

    flags: tuple[str, ...]  # ("--rounds",), ("-o", "--output") or ("conversation",)
    help: str = ""
    type: Callable[[str], Any] | None = None  # int, float; None: text
    default: Any = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    required: bool = False
    flag: bool = False  # on when given (no value)
    repeat: bool = False  # may be given several times: a list of values

    @property
    def dest(self) -> str:
        """The name of the handler's parameter: ``--at-round`` gives ``at_round``."""
        longest = max(self.flags, key=len)
        return longest.lstrip("-").replace("-", "_")

    @property
    def positional(self) -> bool:
        return not self.flags[0].startswith("-")


#: ``handler(context, **values)``: the command's work, given the value of each option by name.
Handler = Callable[..., Awaitable[int]]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    handler: Handler
    description: str = ""
    options: tuple[Option, ...] = ()
    uses_database: bool = True  # False: it never asks the context for the store


@dataclass(frozen=True)
class Commands:
    """The kind's command group: ``simulator <name> <command> ...``."""

    name: str
    help: str
    description: str
    commands: tuple[Command, ...]
    aliases: tuple[str, ...] = ()


class CommandContext(Protocol):
    """What a kind's command handler is given by the command line (simulator/commands/kinds.py):
    the database, opened on first use as the current user and closed after the command."""

    async def store(self) -> Store: ...

    async def user(self) -> str: ...

    async def backends(self) -> Backends:
        """The session's model backends (closed with it)."""
        ...

    async def conversation(self, ref: str) -> Conversation:
        """The conversation ``ref`` names (an id or a unique prefix), a run of this kind."""
        ...

    async def experiment(self, ref: str) -> Experiment:
        """The experiment ``ref`` names (id, unique prefix or name), of this kind."""
        ...


# --------------------------------------------------------------------------- the kind


#: ``interview(store, conversation, agent, messages, day)``: an agent's context for an interview.
InterviewContext = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Kind:
    """An experiment kind (see the module docstring)."""

    name: str  # as stored in ``Experiment.kind`` and ``Conversation.kind``
    title: str  # "Commons game": how the app names it
    summary: str  # one line: what it is
    clock: str  # "day", "round" or "step": what one unit of its time is called
    run: Runner
    estimate: CellEstimator
    params: GameParams | None = None
    #: ``policies()``: its scripted dryrun players by policy name (``commons.honest``).
    policies: Callable[[], Mapping[str, Policy]] | None = None
    chart: Chart | None = None
    commands: Commands | None = None
    #: Its tidy tables by name (``rounds``: one row per round), from a run's snapshots.
    tables: Mapping[str, Table] = field(default_factory=dict)
    #: Its figures of one run after a round or step by name (``network``, ``heatmap``).
    figures: Mapping[str, SnapshotFigure] = field(default_factory=dict)
    interview: InterviewContext | None = None
    #: Modules a run imports, for a warm-up in a thread before the first one (its rules, a
    #: heavy library it draws with).
    modules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.clock not in CLOCKS:
            raise ValueError(f"kind {self.name}: clock {self.clock!r} is not one of {CLOCKS}")

    @property
    def game(self) -> bool:
        """Whether it has game parameters (a Game tab, ``Experiment.game``)."""
        return self.params is not None


__all__ = [
    "BOOL",
    "FLOAT",
    "INT",
    "STRING",
    "Chart",
    "Command",
    "CommandContext",
    "Commands",
    "GameParams",
    "GamePoint",
    "Handler",
    "InterviewContext",
    "Kind",
    "Network",
    "NetworkNode",
    "Option",
    "ScoreMatrix",
    "Series",
    "SnapshotFigure",
    "Snapshots",
    "Table",
    "TableRows",
]
