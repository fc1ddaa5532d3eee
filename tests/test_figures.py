"""Figures a paper can use: every figure returns (and embeds in its PNG) the data it drew, and a
test reads facets, n and intervals from that data, not from pixels. Cells that differ in
anything but the repeat are never pooled (a 1v2 and a 2v1 cell are two panels, two bars)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from simulator.analysis import metrics as m
from simulator.analysis.loading import load_all
from simulator.analysis.plots import (
    OKABE_ITO,
    game_runs_figure,
    heatmap_figure,
    network_figure,
    outcome_figure,
    per_turn_figure,
    read_figure_data,
    role_share_figure,
    words_by_cell_figure,
)
from simulator.analysis.uncertainty import mean_interval, wilson_interval
from simulator.cli import main
from simulator.domain import BatchSpec, ModelRef, ModelSet, Provider
from simulator.engine.batch import BatchRunner
from simulator.llm.registry import Backends
from simulator.scenarios.registry import KINDS
from tests.plugins.batches import make_prison_experiment

PNG = b"\x89PNG\r\n\x1a\n"


async def four_cells(store: Any) -> str:
    """1v1, 1v2, 2v1 and 2v2, three repeats each, 8 messages over 2 days."""
    exp = await store.experiments.create(make_prison_experiment())
    spec = BatchSpec(
        experiment_id=exp.id,
        model_sets=[ModelSet(default=ModelRef(provider=Provider.dryrun, model="dryrun"))],
        max_agents={"Guard": 2, "Prisoner": 2},
        total_messages=8,
        days=2,
        repeats=3,
    )
    runner = BatchRunner(store, Backends(max_attempts=1, backoff_s=0.0), poll_s=0.05)
    batch = await runner.start(exp, spec, owner="ada")
    await runner.run(batch.id)
    return batch.id


def embedded_equals(figure: Any) -> None:
    """The PNG carries exactly the data the function returned."""
    assert figure.path.read_bytes()[:8] == PNG
    title, facets, data = read_figure_data(figure.path)
    assert title == figure.title and facets == figure.facets
    expected = figure.data.astype(object).where(figure.data.notna(), None)
    assert data.astype(object).where(data.notna(), None).values.tolist() == expected.values.tolist()


async def test_dialogue_figures_facet_by_cell_with_n_and_intervals(
    store: Any, tmp_path: Path
) -> None:
    batch = await four_cells(store)
    conversations, messages = await load_all(store, batch_id=batch)
    assert len(conversations) == 12

    tokens = per_turn_figure(messages, tmp_path / "tokens.png")
    embedded_equals(tokens)
    assert tokens.facets == [
        f"Guard={g}, Prisoner={p} (3 conversations)".split(" (")[0]
        for g, p in ((1, 1), (1, 2), (2, 1), (2, 2))
    ]
    data = tokens.data
    assert set(data["facet"]) == set(tokens.facets)
    assert set(data["n"]) == {3}  # each point: the cell's three repeats, nothing pooled
    assert data["x"].tolist() == [int(x) for x in data["x"]]  # whole turns
    assert set(data["x"]) == set(range(1, 9))
    spread = data[data["sd"] > 0]
    assert not spread.empty
    assert (spread["ci_low"] < spread["mean"]).all() and (spread["mean"] < spread["ci_high"]).all()
    agent = m.agent_messages(messages)
    cell = conversations[conversations["cell_counts"] == "Guard=1, Prisoner=2"]["cell_key"].iloc[0]
    first = agent[(agent["cell_key"] == cell) & (agent["agent_turn"] == 1)]["completion_tokens"]
    expected = mean_interval(first.tolist())
    row = data[(data["facet"] == "Guard=1, Prisoner=2") & (data["x"] == 1)].iloc[0]
    assert (row["n"], row["mean"], row["ci_low"]) == pytest.approx(
        (expected.n, expected.mean, expected.ci_low)
    )
    # 8 messages over 2 days: the second day begins at agent turn 5, in every panel
    assert tokens.extra["day_starts"] == {facet: [5] for facet in tokens.facets}

    share = role_share_figure(messages, tmp_path / "share.png")
    embedded_equals(share)
    turns = share.data[share.data["facet"] == "turn share"]
    assert len(turns) == 4 * 2 and set(turns["n"]) == {3}
    guard = turns[turns["series"] == "Guard"].set_index("x")["mean"]
    # pooled, 1v2 and 2v1 would show one guard share; kept apart they differ
    assert guard["Guard=1, Prisoner=2"] != pytest.approx(guard["Guard=2, Prisoner=1"])

    cells = words_by_cell_figure(
        m.conversation_metrics(messages, conversations), tmp_path / "c.png"
    )
    embedded_equals(cells)
    assert len(cells.data) == 4 and set(cells.data["n"]) == {3}
    assert cells.data["ci_low"].notna().all()


def test_an_outcome_by_factor_never_pools_cells(tmp_path: Path) -> None:
    """Two goals x two personas, cells of 4, 5, 6 and 7 conversations: panels by persona (what
    else tells the cells apart), bars by goal, Wilson intervals, n on each bar."""
    rows = []
    sizes = {("Escape", "calm"): 4, ("Yard", "calm"): 5, ("Escape", "rude"): 6, ("Yard", "rude"): 7}
    number = 0
    for (goal, persona), n in sizes.items():
        for i in range(n):
            number += 1
            rows.append(
                {
                    "conversation_id": f"c{number}",
                    "conversation_number": number,
                    "batch_id": "b",
                    "cell_key": f"{goal}-{persona}",
                    "cell": f"goal={goal} · persona={persona}",
                    "cell_counts": "Guard=1, Prisoner=1",
                    "factor_goal": goal,
                    "factor_persona": persona,
                    "yes": i < n // 2,
                }
            )
    frame = pd.DataFrame(rows)
    frame["yes"] = frame["yes"].astype("boolean")
    figure = outcome_figure(frame, "yes", tmp_path / "outcome.png", by="goal")
    embedded_equals(figure)
    assert figure.facets == ["persona=calm", "persona=rude"]
    data = figure.data.set_index(["facet", "x"])
    for (goal, persona), n in sizes.items():
        row = data.loc[(f"persona={persona}", goal)]
        assert row["n"] == n and row["interval"] == "wilson"
        assert row["mean"] == pytest.approx((n // 2) / n)
        lo, hi = wilson_interval(n // 2, n)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi))


def test_game_runs_thin_per_run_and_thick_per_condition(tmp_path: Path) -> None:
    rows = []
    for condition, level, runs in (("k1", 40.0, 3), ("k2", 60.0, 2)):
        for r in range(runs):
            for t in range(1, 5):
                rows.append(
                    {
                        "conversation_id": f"{condition}-{r}",
                        "condition_key": condition,
                        "condition": f"cell · start_resource={level}",
                        "param_start_resource": level,
                        "cell_key": "same",
                        "round": t,
                        "resource_after_growth": level - t * (r + 1),
                    }
                )
    table = pd.DataFrame(rows)
    figure = game_runs_figure(
        table, "resource_after_growth", tmp_path / "rounds.png", clock="round"
    )
    embedded_equals(figure)
    data = figure.data
    assert set(data["series"]) == {"start_resource=40.0", "start_resource=60.0"}
    assert data.groupby("series")["n"].max().to_dict() == {
        "start_resource=40.0": 3,
        "start_resource=60.0": 2,
    }
    first = data[(data["series"] == "start_resource=40.0") & (data["x"] == 1)].iloc[0]
    expected = mean_interval([39.0, 38.0, 37.0])
    assert (first["mean"], first["ci_low"], first["ci_high"]) == pytest.approx(
        (expected.mean, expected.ci_low, expected.ci_high)
    )
    assert figure.extra["runs"]["conversation_id"].nunique() == 5  # a thin line per run


async def test_reputation_network_and_heatmap_with_legends(tmp_path: Path) -> None:
    from simulator.scenarios.reputation import ReputationParams, scripted_population, simulate

    params = ReputationParams(game="pd", steps=3, population=6)
    population = scripted_population({"reputation_following": 4, "always_defect": 2})
    state, _ = await simulate(params, population, seed=2)
    # what to draw is the kind's to say, from a stored snapshot; the figures only draw
    figures = KINDS.get("reputation").figures
    snapshot = state.model_dump(mode="json")
    net = network_figure(figures["network"].data(3, snapshot), tmp_path / "network.png")
    embedded_equals(net)
    assert len(net.data) == 6 and set(net.data["series"]) == set(net.extra["groups"])
    assert len(net.extra["groups"]) == 2
    assert net.data["n"].sum() == len(net.extra["edges"])  # in-degrees sum to the ties
    assert net.title.startswith("Reputation network after step 3")
    heat = heatmap_figure(
        figures["heatmap"].data(3, snapshot), tmp_path / "heatmap.png", facet="step 3"
    )
    embedded_equals(heat)
    assert heat.data["mean"].between(-1, 1).all() and (heat.data["n"] >= 1).all()
    assert heat.facets == ["step 3"] and set(heat.data["facet"]) == {"step 3"}
    assert OKABE_ITO[0] == "#0072B2"


async def test_plot_command_needs_what_a_figure_shows(
    store: Any, mongo_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", store.db_name)
    monkeypatch.chdir(tmp_path)
    await four_cells(store)
    code = await asyncio.to_thread(main, ["plot", "--figure", "outcome"])
    assert code == 2
    assert "--figure outcome needs --outcome NAME" in capsys.readouterr().err
    code = await asyncio.to_thread(main, ["plot", "--figure", "network"])
    assert code == 2
    assert "--figure network draws one reputation run; the filters select 0" in (
        capsys.readouterr().err
    )
    code = await asyncio.to_thread(
        main, ["plot", "--figure", "trajectory", "--score", "words", "-o", "t.png"]
    )
    assert code == 0
    _, facets, data = read_figure_data(tmp_path / "t.png")
    assert len(facets) == 4 and set(data["n"]) == {3}
