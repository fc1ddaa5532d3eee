"""Experiment kinds as the engine sees them, and the registry the engine is handed.

The engine runs conversations of kinds it knows nothing about. Each kind (dialogue, commons,
reputation, ...) is one package under ``simulator/scenarios`` implementing
``simulator.scenarios.kind.Kind``; the registry that lists them
(``simulator.scenarios.registry.KINDS``) sits above the engine and is handed to it: explicitly
(``run_conversation(..., kinds=)``, ``BatchRunner(..., kinds=)``, ``estimate(..., kinds=)``) or
once per process by the program's entry point (``install``), which every engine function falls
back on. The engine imports no scenario, by name or through importlib.

What the engine needs of a kind (``EngineKind``): its name, its clock (``day`` for a dialogue,
whose conversations spend a message budget over days; ``round`` or ``step`` for a game, whose time
is its grid cell's ``rounds``), its runner and its call estimator. What the rest of the app needs
of a kind (parameters, scripted policies, chart, commands, Game tab) is on ``Kind`` itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from simulator.domain.errors import ConfigurationError

if TYPE_CHECKING:
    from simulator.domain import Conversation, Experiment, GridCell, ModelRef
    from simulator.engine.events import EventBus
    from simulator.engine.journal import Journal
    from simulator.engine.ledger import MeasuredRates

DAY, ROUND, STEP = "day", "round", "step"
#: What one unit of a kind's time is called (``Message.day`` stores it): a dialogue's days, a
#: game's rounds or steps. The analysis tables have a column for each game clock.
CLOCKS = (DAY, ROUND, STEP)

#: ``runner(store, backends, conversation, experiment, journal, bus)`` plays a conversation through
#: the journal (every model call and event is written by it) from wherever its stored messages end.
Runner = Callable[
    [Any, Any, "Conversation", "Experiment", "Journal", "EventBus | None"], Awaitable[None]
]


class Tally(Protocol):
    """Where a kind's estimator adds what one conversation of a cell costs."""

    #: Shared by every cell of one estimate: what an estimator works out once per experiment.
    memo: dict[Any, Any]
    #: What earlier batches of the experiment measured (``engine.ledger.MeasuredRates``), or
    #: None: estimators count a model at its measured rates when there are any.
    measured: MeasuredRates | None

    def add(self, ref: ModelRef, prompt: float, completion: float, calls: float = 1) -> None:
        """``calls`` calls of model ``ref`` sending ``prompt`` and receiving ``completion``
        tokens in all."""
        ...


#: ``estimate(experiment, cell, tally)`` adds the calls and tokens of one conversation of
#: ``cell`` to ``tally``, in closed form: its work never grows with the messages, rounds or days.
CellEstimator = Callable[["Experiment", "GridCell", Tally], None]


class EngineKind(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def clock(self) -> str: ...

    @property
    def run(self) -> Runner: ...

    @property
    def estimate(self) -> CellEstimator: ...


class KindCatalog(Protocol):
    """The registry as the engine uses it."""

    def get(self, name: str) -> EngineKind:
        """The kind named ``name``; ConfigurationError ("Unknown experiment kind") if none."""
        ...

    def prepare(self, name: str) -> EngineKind:
        """The kind, ready to run in this process (its scripted policies plugged into the
        dryrun backend): what the engine asks before it checks models or plays a conversation."""
        ...

    def names(self) -> list[str]: ...


def uses_days(kind: EngineKind) -> bool:
    """Whether the kind's conversations spend a message budget over days (a dialogue)."""
    return kind.clock == DAY


_installed: KindCatalog | None = None


def install(kinds: KindCatalog) -> None:
    """Hand ``kinds`` to the engine for this process (the entry point does it once)."""
    global _installed
    _installed = kinds


def installed() -> KindCatalog:
    """The registry handed to the engine with ``install``."""
    if _installed is None:
        raise ConfigurationError(
            "No experiment kinds are installed in this process: the program's entry point "
            "installs them (simulator.scenarios.registry.install()).",
            title="No experiment kinds",
        )
    return _installed


def resolve(kinds: KindCatalog | None) -> KindCatalog:
    """``kinds`` when given, else the installed registry."""
    return kinds if kinds is not None else installed()


def unknown_kind(name: str, known: list[str]) -> ConfigurationError:
    """The error of a kind no registry entry names."""
    return ConfigurationError(
        f"This version of the simulator cannot run experiments of kind {name!r} "
        f"(known kinds: {', '.join(known) or 'none'}).",
        title="Unknown experiment kind",
    )


__all__ = [
    "CLOCKS",
    "DAY",
    "ROUND",
    "STEP",
    "CellEstimator",
    "EngineKind",
    "KindCatalog",
    "Runner",
    "Tally",
    "install",
    "installed",
    "resolve",
    "unknown_kind",
    "uses_days",
]
