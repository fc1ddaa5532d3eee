"""The kind registry: one typed interface per kind, handed to an engine that imports no scenario,
and kinds named by a plain string the registry (not the domain) knows."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from simulator.commands.kinds import add_group
from simulator.domain import (
    Conversation,
    Experiment,
    ExperimentKind,
    GridCell,
    ModelSet,
    Role,
)
from simulator.domain.errors import ConfigurationError, SpecError
from simulator.engine import kinds as engine_kinds
from simulator.engine.conversation import prepare_conversation, run_conversation
from simulator.engine.kinds import CLOCKS, ROUND
from simulator.scenarios.kind import Kind
from simulator.scenarios.registry import KINDS, KindRegistry
from simulator.services.experiments import ExperimentService

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kind", list(KINDS), ids=lambda k: k.name)
def test_every_kind_declares_the_interface(kind: Kind) -> None:
    assert ExperimentKind(kind.name).value == kind.name
    assert kind.clock in CLOCKS and callable(kind.run) and callable(kind.estimate)
    if kind.params is not None:  # a game: its parameters load, and their defaults are valid
        model = kind.params.model()
        assert isinstance(kind.params.load({}), model)
        assert kind.params.check({}) == {}
        assert set(kind.params.examples) <= {".".join(p) for p in _paths(model.model_fields, model)}
    if kind.commands is not None:  # its command group renders into argparse
        parser = argparse.ArgumentParser()
        add_group(parser.add_subparsers(), kind.name, kind.commands)
        for command in kind.commands.commands:
            names = {o.dest for o in command.options}
            assert len(names) == len(command.options), f"{command.name}: two options, one name"
    if kind.chart is not None:
        assert kind.chart.points([]) == [] and kind.chart.point(object()) is None
    for name in kind.policies().keys() if kind.policies else ():
        assert name.startswith(f"{kind.name}."), "a kind's policies are named after it"


def _paths(
    fields: dict[str, Any], model: Any, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    out = []
    for name, info in fields.items():
        out.append((*prefix, name))
        inner = info.annotation
        sub = getattr(inner, "model_fields", None)
        if isinstance(sub, dict) and not prefix:
            out += _paths(sub, inner, (name,))
    return out


def test_the_engine_imports_no_scenario() -> None:
    """Importing every engine module loads no scenario package, and no engine module names one
    (by import or through importlib)."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import simulator.engine as engine\n"
        "for info in pkgutil.walk_packages(engine.__path__, 'simulator.engine.'):\n"
        "    importlib.import_module(info.name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('simulator.scenarios')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]", out.stdout
    upward = re.compile(r"^\s*(from|import) simulator\.scenarios", re.MULTILINE)
    for path in (ROOT / "simulator" / "engine").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not upward.search(text) and "import_module" not in text, path.name


def test_the_registry_is_handed_to_the_engine_and_refuses_unknown_kinds() -> None:
    assert engine_kinds.installed() is KINDS  # installed once, as the entry point does
    assert KINDS.names()[:3] == ["dialogue", "commons", "reputation"]
    with pytest.raises(ConfigurationError) as caught:
        KINDS.get("poker")
    assert caught.value.title == "Unknown experiment kind"
    assert "'poker'" in str(caught.value) and "known kinds: dialogue, commons" in str(caught.value)
    with pytest.raises(ValueError, match="two experiment kinds are named 'dialogue'"):
        KindRegistry([KINDS.get("dialogue"), KINDS.get("dialogue")])


def test_prepare_plugs_a_kinds_scripted_policies_into_dryrun_once() -> None:
    from simulator.llm import dryrun

    calls: list[int] = []

    def policies() -> dict[str, Any]:
        calls.append(1)
        return {"trial.yes": lambda request: {"ok": True}}

    async def no_run(*_: Any) -> None:
        return None

    trial = Kind("trial", "Trial", "a test kind", ROUND, no_run, lambda *a: None, policies=policies)
    registry = KindRegistry([trial])
    try:
        assert registry.prepare("trial") is trial and registry.prepare("trial") is trial
        assert calls == [1]
        assert dryrun.policy_for(dryrun.ModelRef(provider="dryrun", model="trial.yes"))
    finally:
        dryrun.unregister_policy("trial.yes")


def test_kinds_are_names_not_an_enumeration() -> None:
    """Any well-formed name is a kind to the domain (stored as the same string); the three
    existing ones are the same objects as the constants, read back or not."""
    exp = Experiment(name="A new game", kind="public_goods")
    assert exp.model_dump(mode="json")["kind"] == "public_goods"
    assert Experiment.model_validate_json(exp.model_dump_json()).kind == "public_goods"
    again = Experiment.model_validate({"name": "x", "kind": "commons"}).kind
    assert again is ExperimentKind.commons and again.value == "commons" == f"{again}"
    with pytest.raises(ValueError, match="not the name of an experiment kind"):
        Experiment(name="x", kind="Poker Night")


async def test_a_kind_this_version_does_not_know_is_refused_on_save_and_run(
    store: Any, backends: Any
) -> None:
    service = ExperimentService(store, "alice")
    with pytest.raises(SpecError, match="kind: 'poker' is not an experiment kind this version"):
        await service.create(Experiment(name="Poker", kind="poker"))
    assert await store.experiments.list() == []
    # stored by a newer version: its conversations fail with the reason, nothing else happens
    exp = Experiment(name="Poker", kind="poker", roles=[Role(name="Player")])
    exp = await store.experiments.create(exp)
    cell = GridCell(counts={"Player": 2}, days=1, total_messages=1, models=ModelSet())
    conv = await store.conversations.create(
        Conversation(experiment_id=exp.id, kind="poker", cell=cell)
    )
    ended = await run_conversation(store, backends, conv.id)
    assert ended.error is not None and "Unknown experiment kind" in ended.error
    with pytest.raises(ConfigurationError):
        await prepare_conversation(store, exp, cell)


async def test_a_kinds_tables_pool_over_runs_with_their_conditions(
    store: Any, backends: Any
) -> None:
    """Each game declares its tidy tables as functions of its snapshots; ``game_frame`` pools
    any of them over runs with the runs' conditions (commons rounds, reputation steps)."""
    from simulator.analysis.game_tables import Run, game_frame
    from simulator.scenarios.commons.params import CommonsParams
    from simulator.scenarios.commons.setup import commons_cell, commons_experiment, start_run
    from tests.plugins.reputation import store_reputation

    commons = await start_run(store, commons_experiment(CommonsParams(rounds=2)), commons_cell(3))
    _, reputation = await store_reputation(store, "pd", steps=2, factors={"gossip": "off"})
    for conv in (commons, reputation):
        assert (await run_conversation(store, backends, conv.id)).error is None
    runs = {
        c.id: Run(c, None, await store.states.list(c.id))
        for c in [await store.conversations.get(x.id) for x in (commons, reputation)]
    }
    rounds = game_frame("rounds", [runs[commons.id]], kinds=KINDS)
    assert list(rounds["round"]) == [1, 2] and set(rounds["conversation_id"]) == {commons.id}
    assert list(rounds["repeat"]) == [1, 1] and rounds["members_start"].tolist() == [3, 3]
    steps = game_frame("steps", list(runs.values()), kinds=KINDS)  # the reputation run's
    assert list(steps["step"]) == [0, 1, 2] and set(steps["factor_gossip"]) == {"off"}
    assert {"cooperation", "edges", "fallbacks"} <= set(steps.columns)
