"""Game runs pool in one line: commons rounds (and members), reputation steps (and agents,
gossip, interactions) and public-goods rounds and members export as tidy tables with each run's
conditions as columns, for any set of runs. Each kind declares its tables in its own package;
the analysis pools them through the registry it is handed and imports no kind."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from simulator.analysis import loading
from simulator.analysis.catalog import game_figures, game_tables
from simulator.analysis.game_tables import load_game_table
from simulator.cli import build_parser, main
from simulator.domain import Status
from simulator.domain.filters import ConversationFilter
from simulator.engine.conversation import prepare_conversation, run_conversation
from simulator.scenarios import kind as kind_interface
from simulator.scenarios.commons.params import CommonsParams, Policy
from simulator.scenarios.commons.setup import (
    commons_cell,
    commons_experiment,
    scripted_model,
    start_run,
)
from simulator.scenarios.public_goods.params import PublicGoodsParams
from simulator.scenarios.public_goods.runner import scripted_run
from simulator.scenarios.registry import KINDS
from tests.plugins.commons import saboteur_params
from tests.plugins.reputation import store_reputation

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli_env(store: Any, mongo_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", store.db_name)
    monkeypatch.setenv("SIMULATOR_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SIMULATOR_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def three_commons_runs(store: Any, backends: Any) -> list[str]:
    """Three runs of different conditions: the default lake, a richer lake (the run's own
    parameters, which its cell does not show), and a saboteur with a monitor (another
    experiment)."""
    plain = commons_experiment(CommonsParams(rounds=3, policy=Policy(quota=3.0)), name="Lake")
    sabotaged = commons_experiment(saboteur_params(rounds=3), name="Sabotage")
    ids = []
    for exp, params in (
        (plain, None),
        (plain, CommonsParams(rounds=3, policy=Policy(quota=3.0), start_resource=60.0)),
        (sabotaged, None),
    ):
        conv = await start_run(store, exp, commons_cell(3, model=scripted_model()), params=params)
        done = await run_conversation(store, backends, conv.id)
        assert done.status is Status.done, done.error
        ids.append(conv.id)
    return ids


async def test_three_commons_runs_pool_in_one_line(
    store: Any, backends: Any, cli_env: Path, capsys: Any
) -> None:
    ids = await three_commons_runs(store, backends)
    assert await cli("export", "--what", "rounds", "-o", "rounds.csv") == 0

    # the one line
    means = pd.read_csv("rounds.csv").groupby("condition")["resource_after_growth"].mean()

    assert len(means) == 3
    rounds = pd.read_csv("rounds.csv")
    assert len(rounds) == 3 * 3 and rounds["round"].tolist()[:3] == [1, 2, 3]
    per_run = rounds.groupby("conversation_id")["param_start_resource"].first()
    assert per_run[ids[0]] == 40.0 and per_run[ids[1]] == 60.0
    assert rounds.groupby("conversation_id")["condition_key"].nunique().eq(1).all()
    assert rounds["condition_key"].nunique() == 3
    assert {"cell", "cell_key", "count_member", "preset", "param_policy_quota",
            "experiment_name", "repeat", "seed", "cell_models"} <= set(rounds.columns)  # fmt: skip
    richer = rounds[rounds["conversation_id"] == ids[1]]["condition"].iloc[0]
    assert "start_resource=60.0" in richer  # the run's own parameters name its condition
    assert rounds[rounds["conversation_id"] == ids[2]]["param_saboteurs"].iloc[0] == '["Member 1"]'
    assert rounds[rounds["conversation_id"] == ids[0]]["resource_before"].iloc[0] == 40.0

    # the same from three files, one per run
    files = []
    for i, cid in enumerate(ids):
        assert (
            await cli("export", "--what", "rounds", "--conversation", cid, "-o", f"r{i}.csv") == 0
        )
        files.append(f"r{i}.csv")
    pooled = pd.concat(map(pd.read_csv, files)).groupby("condition")["resource_after_growth"].mean()
    pd.testing.assert_series_equal(pooled, means)

    assert await cli("export", "--what", "round_members", "--format", "parquet", "-o", ".") == 0
    members = pd.read_parquet("round_members.parquet")
    # every member at the start of a round, and a child born in it
    per_round = members.groupby(["conversation_id", "round"]).size()
    started = rounds.set_index(["conversation_id", "round"])["members_start"]
    born = members[members["born_round"] == members["round"]]
    assert (per_round - started.reindex(per_round.index)).sum() == len(born)
    assert members.groupby("conversation_id")["saboteur"].any()[ids[2]]
    assert str(members["extracted_true"].dtype) == "Float64"
    assert str(members["caught"].dtype) == "boolean"
    frame = await load_game_table(store, "round_members")
    pd.testing.assert_frame_equal(members, frame)

    capsys.readouterr()
    assert await cli("export", "--what", "steps", "-o", "steps.csv") == 2
    assert (
        "--what steps is a table of reputation runs; the 3 selected conversation(s) are "
        "commons runs" in capsys.readouterr().err
    )
    assert await cli("export", "--what", "rounds", "--format", "html") == 2


async def test_reputation_steps_agents_gossip_and_interactions(store: Any, backends: Any) -> None:
    from simulator.scenarios.reputation import play

    convs = []
    for gossip in ("on", "off"):
        _, conv = await store_reputation(
            store, "pd", steps=2, factors={"gossip": "true" if gossip == "on" else "false"}
        )
        done = await play(store, backends, conv.id)
        assert done.status is Status.done, done.error
        convs.append(conv)
    flt = ConversationFilter(conversation_ids=[c.id for c in convs])
    steps = await load_game_table(store, "steps", flt)
    assert steps["step"].tolist() == [0, 1, 2, 0, 1, 2]
    assert steps.groupby("conversation_id")["param_gossip"].first().to_dict() == {
        convs[0].id: True,
        convs[1].id: False,
    }
    assert steps["factor_gossip"].tolist() == ["true"] * 3 + ["false"] * 3
    assert str(steps["cooperation"].dtype) == "Float64"
    assert steps.groupby("condition")["cooperation"].mean().size == 2
    agents = await load_game_table(store, "step_agents", flt)
    assert len(agents) == 6 * 4  # 3 snapshots x 2 runs x 4 agents
    assert {"name", "group", "score", "in_degree", "condition"} <= set(agents.columns)
    gossip = await load_game_table(store, "gossip", flt)
    assert set(gossip["conversation_id"]) <= {convs[0].id}  # no gossip with gossip off
    interactions = await load_game_table(store, "interactions", flt)
    assert {"a", "b", "step", "param_game"} <= set(interactions.columns)
    assert set(interactions["param_game"]) == {"pd"}


def test_every_kind_declares_its_tables_and_export_offers_them_all() -> None:
    """The tables are the kinds' declarations: ``--what`` offers their union (public goods'
    ``members`` with no code outside its package), each table with its declared dtypes."""
    assert list(game_tables(KINDS)) == [
        "rounds",
        "round_members",
        "steps",
        "step_agents",
        "gossip",
        "interactions",
        "members",
    ]
    assert set(KINDS.get("public_goods").tables) == {"rounds", "members"}
    assert list(game_figures(KINDS)) == ["rounds", "steps", "network", "heatmap"]
    export = next(
        a
        for a in build_parser()._subparsers._group_actions[0].choices.items()  # type: ignore[union-attr]
        if a[0] == "export"
    )[1]
    what = next(a for a in export._actions if "--what" in a.option_strings)
    assert set(game_tables(KINDS)) <= set(what.choices or ())
    dtypes = {loading.INT, loading.FLOAT, loading.STRING, loading.BOOL}
    assert dtypes == {
        kind_interface.INT,
        kind_interface.FLOAT,
        kind_interface.STRING,
        kind_interface.BOOL,
    }
    for kind in KINDS:
        for name, table in kind.tables.items():
            assert set(table.columns.values()) <= dtypes, (kind.name, name)


def _imported(path: Path) -> set[str]:
    """Every module a file imports (at any depth of the file, lazily or not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            out.add(str(node.args[0].value))
    return out


def test_analysis_services_commands_and_tui_import_no_kind() -> None:
    """Whatever is kind-specific (a table, a figure's data, a clock) comes through the kind
    registry: outside the kinds' packages, only the registry and the interface are imported,
    and the analysis layer imports nothing of simulator.scenarios at all (it is handed the
    registry and knows the plain types of ``simulator.domain.game_data``)."""
    allowed = {"simulator.scenarios", "simulator.scenarios.registry", "simulator.scenarios.kind"}
    allowed |= {f"{m}.{name}" for m in allowed for name in ("KINDS", "install", "kind")}
    offending = {}
    for layer in ("analysis", "services", "commands", "tui"):
        for path in sorted((REPO / "simulator" / layer).rglob("*.py")):
            kinds = {
                m
                for m in _imported(path)
                if m.startswith("simulator.scenarios")
                and (
                    layer == "analysis"
                    or (
                        m not in allowed
                        and not m.startswith(
                            ("simulator.scenarios.kind.", "simulator.scenarios.registry.")
                        )
                    )
                )
            }
            if kinds:
                offending[str(path.relative_to(REPO))] = sorted(kinds)
    assert offending == {}


async def test_public_goods_members_export_and_two_kinds_rounds_never_pool(
    store: Any, backends: Any, cli_env: Path, capsys: Any
) -> None:
    exp, cell = scripted_run(
        PublicGoodsParams(rounds=2, punishment=True), {"conditional_cooperator": 2, "free_rider": 1}
    )
    await store.experiments.create(exp)
    goods = await prepare_conversation(store, exp, cell)
    assert (await run_conversation(store, backends, goods.id)).status is Status.done
    assert await cli("export", "--what", "members", "--format", "parquet", "-o", ".") == 0
    members = pd.read_parquet("members.parquet")
    assert len(members) == 2 * 3 and set(members["conversation_id"]) == {goods.id}
    assert str(members["contribution"].dtype) == "Int64"
    assert members["param_punishment"].all() and members["condition"].notna().all()

    lake = commons_experiment(CommonsParams(rounds=2), name="Lake")
    conv = await start_run(store, lake, commons_cell(3, model=scripted_model()))
    assert (await run_conversation(store, backends, conv.id)).status is Status.done
    capsys.readouterr()
    assert await cli("export", "--what", "rounds", "-o", "rounds.csv") == 2
    assert (
        "--what rounds: the selected runs are commons and public_goods runs, whose rounds "
        "tables differ" in capsys.readouterr().err
    )
    assert not (cli_env / "rounds.csv").exists()
    assert await cli("export", "--what", "rounds", "--experiment", "Lake", "-o", "r.csv") == 0
    assert set(pd.read_csv("r.csv")["experiment_kind"]) == {"commons"}
