"""What a game kind hands the analysis layer: its tidy tables and its figures of one run.

A kind (``simulator.scenarios.kind.Kind``) declares them in its own package (``Kind.tables``,
``Kind.figures``); ``simulator.analysis`` pools the tables over runs and draws the figures
through the kind registry it is handed (``Kinds``), knowing these plain types and no kind.
Nothing here imports anything beyond the domain: both sides depend on it, neither on the other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pydantic import BaseModel

    from simulator.domain.models import Conversation, Experiment

#: A run's stored snapshots ``(step, state)`` (``store.states``), in step order.
Snapshots = Sequence[tuple[int, Mapping[str, Any]]]

#: ``rows(snapshots)``: a table's rows from one run's stored snapshots.
TableRows = Callable[[Snapshots], list[dict[str, Any]]]

#: The dtypes a table declares for its columns: pandas' nullable dtypes, by name (the analysis
#: tables' ``loading.INT`` ...; a test keeps the two in step).
INT, FLOAT, STRING, BOOL = "Int64", "Float64", "string", "boolean"


@dataclass(frozen=True)
class Table:
    """One of a kind's tidy tables: ``simulator export --what <name>`` pools it over runs, each
    row with its run's conditions first (``simulator.analysis.game_tables``)."""

    description: str  # "one row per round of each run": the --what help
    rows: TableRows
    #: The dtypes of its fixed columns (``INT``, ``FLOAT``, ``STRING``, ``BOOL``): the same
    #: whatever the runs; a column not declared is typed from its values.
    columns: Mapping[str, str] = field(default_factory=dict)
    #: Its rows come from the latest snapshot alone (it holds every round's record), so only
    #: that one is read.
    latest_only: bool = False
    #: What ``simulator plot --figure <name>`` draws per round (step) by default, a column of
    #: the table (``--measure`` another); None: the table has no figure.
    measure: str | None = None


@dataclass(frozen=True)
class NetworkNode:
    name: str
    group: str  # its colour and legend entry
    score: float | None = None  # a value the figure's data carries for it (a reputation)


@dataclass(frozen=True)
class Network:
    """A directed network after a round or step: nodes coloured by group, sized by in-degree,
    mutual and one-way ties told apart."""

    title: str  # "Reputation network after step 3"
    nodes: tuple[NetworkNode, ...]
    edges: tuple[tuple[str, str], ...]  # (source, target)
    layout_seed: int = 0  # the same drawing for the same run


@dataclass(frozen=True)
class ScoreMatrix:
    """Scores held by one member about another on a fixed scale (a heatmap, holder by target;
    several scores of one pair are averaged, ``n`` of them)."""

    title: str  # "Reputation scores after step 3"
    names: tuple[str, ...]  # rows and columns, in this order
    scores: tuple[tuple[str, str, float], ...]  # (holder, target, score)
    scale: str  # the colour bar's label
    low: float = -1.0
    high: float = 1.0
    row_label: str = "holder (who holds the record)"
    column_label: str = "target (whom the record is about)"


@dataclass(frozen=True)
class SnapshotFigure:
    """A figure of one run after a round or step (``simulator plot --figure <name> --step N``)."""

    description: str  # the --figure help
    #: ``data(step, state)``: what to draw, from the stored snapshot of that round or step.
    data: Callable[[int, Mapping[str, Any]], Network | ScoreMatrix]


#: ``of_run(experiment, conversation, snapshots)``: the parameters a stored run played with.
RunParams = Callable[["Experiment | None", "Conversation", Snapshots], "BaseModel"]


class GameParamsView(Protocol):
    """What the analysis layer reads of a kind's parameters (``GameParams``)."""

    @property
    def of_run(self) -> RunParams | None: ...

    @property
    def preset_keys(self) -> tuple[str, ...]: ...


class GameKind(Protocol):
    """What the analysis layer reads of a kind (``simulator.scenarios.kind.Kind``)."""

    @property
    def name(self) -> str: ...

    @property
    def clock(self) -> str: ...

    @property
    def params(self) -> GameParamsView | None: ...

    @property
    def tables(self) -> Mapping[str, Table]: ...

    @property
    def figures(self) -> Mapping[str, SnapshotFigure]: ...


class Kinds(Protocol):
    """A registry of kinds as the analysis layer is handed it (``registry.KindRegistry``)."""

    def get(self, name: str) -> GameKind: ...

    def names(self) -> list[str]: ...


__all__ = [
    "BOOL",
    "FLOAT",
    "INT",
    "STRING",
    "GameKind",
    "GameParamsView",
    "Kinds",
    "Network",
    "NetworkNode",
    "RunParams",
    "ScoreMatrix",
    "SnapshotFigure",
    "Snapshots",
    "Table",
    "TableRows",
]
