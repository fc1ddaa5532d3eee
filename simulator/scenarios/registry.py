"""The registry of experiment kinds: the one list of the kinds this simulator runs.

Each kind is one package under ``simulator/scenarios`` exposing a ``KIND`` (a
``simulator.scenarios.kind.Kind``); adding a kind is adding its package and its entry below.
Importing a kind's package is cheap: its heavy modules (its rules, networkx, ...) load when a
conversation of the kind first runs (``prepare``) or when the app asks for them.

The registry is handed to the engine (``install``, done once by the program's entry point;
``simulator.engine.kinds``), which imports no scenario; the command line, the TUI and the services
ask it what a kind declares (parameters, chart, commands) and branch on no kind themselves.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from simulator.domain.errors import SpecError
from simulator.engine import kinds as engine_kinds
from simulator.scenarios import commons, dialogue, public_goods, reputation
from simulator.scenarios.kind import Kind


class KindRegistry:
    """Kinds by name, in the order listed (what the Experiment tab offers)."""

    def __init__(self, kinds: Iterable[Kind]) -> None:
        self._kinds: dict[str, Kind] = {}
        for kind in kinds:
            if kind.name in self._kinds:
                raise ValueError(f"two experiment kinds are named {kind.name!r}")
            self._kinds[kind.name] = kind
        self._prepared: set[str] = set()
        self._lock = threading.Lock()

    def get(self, name: str) -> Kind:
        """The kind named ``name``; ConfigurationError ("Unknown experiment kind") if none."""
        kind = self._kinds.get(str(name))
        if kind is None:
            raise engine_kinds.unknown_kind(str(name), self.names())
        return kind

    def prepare(self, name: str) -> Kind:
        """The kind, ready to run in this process: its scripted policies plugged into the dryrun
        backend and its modules imported (once; safe from a thread)."""
        kind = self.get(name)
        if kind.name in self._prepared:
            return kind
        with self._lock:
            if kind.name not in self._prepared:
                from simulator.llm.dryrun import register_policy

                for module in kind.modules:
                    importlib.import_module(module)
                for policy, fn in (kind.policies() if kind.policies else {}).items():
                    register_policy(policy, fn)
                self._prepared.add(kind.name)
        return kind

    def names(self) -> list[str]:
        return list(self._kinds)

    def games(self) -> list[Kind]:
        """The kinds with game parameters (a Game tab)."""
        return [k for k in self._kinds.values() if k.game]

    def __iter__(self) -> Iterator[Kind]:
        return iter(self._kinds.values())

    def __contains__(self, name: object) -> bool:
        return str(name) in self._kinds

    def check_kind(self, name: str, where: str = "kind") -> Kind:
        """The kind named ``name``; SpecError naming ``where`` when this version does not know
        it (an imported or edited experiment)."""
        kind = self._kinds.get(str(name))
        if kind is None:
            raise SpecError(
                f"{where}: {str(name)!r} is not an experiment kind this version of the simulator "
                f"knows (known kinds: {', '.join(self.names())})"
            )
        return kind

    def check_game(self, name: str, game: Mapping[str, Any]) -> dict[str, Any]:
        """``game`` checked against the kind's parameters and returned as stored (what was set);
        a kind without parameters keeps ``game`` as it is."""
        kind = self.get(name)
        return kind.params.check(game) if kind.params is not None else dict(game)


#: Every kind this simulator runs. Adding a kind: its package, and its entry here.
KINDS = KindRegistry([dialogue.KIND, commons.KIND, reputation.KIND, public_goods.KIND])


def install(kinds: KindRegistry = KINDS) -> KindRegistry:
    """Hand ``kinds`` to the engine for this process (the entry point calls it once)."""
    engine_kinds.install(kinds)
    return kinds


__all__ = ["KINDS", "KindRegistry", "install"]
