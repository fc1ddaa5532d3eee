"""Acceptance: the exports of a real dryrun batch (BatchRunner) round-trip, labelled and ordered."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd
import pytest

from simulator.analysis import exports
from simulator.analysis import metrics as m
from simulator.analysis.loading import load_all, load_messages
from simulator.cli import main
from simulator.domain import BatchSpec, Experiment, ModelRef, ModelSet, Provider
from simulator.domain.filters import ConversationFilter
from simulator.engine.batch import BatchRunner
from simulator.llm.registry import Backends


@pytest.fixture
async def dryrun_batch(store, prison_experiment_with_goal: Experiment) -> str:
    exp = await store.experiments.create(prison_experiment_with_goal)
    spec = BatchSpec(
        experiment_id=exp.id,
        model_sets=[ModelSet(default=ModelRef(provider=Provider.dryrun, model="dryrun"))],
        max_agents={"Guard": 2, "Prisoner": 1},
        days=2,
        total_messages=4,
        seed=7,
    )
    runner = BatchRunner(store, Backends(max_attempts=1, backoff_s=0.0), poll_s=0.05)
    batch = await runner.start(exp, spec, owner="ada")
    await runner.run(batch.id)
    return batch.id


async def test_parquet_export_of_a_dryrun_batch_round_trips(
    store, dryrun_batch: str, tmp_path: Path
) -> None:
    flt = ConversationFilter(batch_id=dryrun_batch)
    frame = await load_messages(store, flt)
    [path] = await exports.export(store, flt, fmt="parquet", output=tmp_path)
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, frame)  # same rows, values and dtypes
    assert dict(back.dtypes) == dict(frame.dtypes)
    keys = list(zip(back["conversation_id"], back["seq"], strict=True))
    assert keys == sorted(keys)  # (conversation, seq) order
    for conv_id, group in back.groupby("conversation_id"):
        assert list(group["seq"]) == list(range(len(group))), conv_id
    # the grid cell and the study factor, each as its own column
    assert set(back["factor_goal"]) == {"escape", "privileges"}
    assert set(zip(back["count_guard"], back["count_prisoner"], strict=True)) == {(1, 1), (2, 1)}
    assert set(back["days"]) == {2}
    assert back["conversation_id"].nunique() == 4
    agent = back[back["kind"].isin(["utterance", "action"])]
    assert agent.groupby("conversation_id").size().tolist() == [4, 4, 4, 4]
    assert set(agent["provider"]) == {"dryrun"}
    assert (back[back["kind"] == "summary"].groupby("conversation_id").size() == 2).all()


async def test_metrics_and_cells_of_a_dryrun_batch(store, dryrun_batch: str) -> None:
    conversations, messages = await load_all(store, batch_id=dryrun_batch)
    assert conversations["conversation_number"].tolist() == [1, 2, 3, 4]  # grid order, from 1
    metrics = m.conversation_metrics(messages, conversations)
    assert (metrics["messages"] == 4).all() and (metrics["summaries"] == 2).all()
    assert (metrics["status"] == "done").all()
    shares = metrics["turn_share_guard"] + metrics["turn_share_prisoner"]
    assert shares.tolist() == pytest.approx([1.0] * 4)
    assert (metrics["total_tokens"] == conversations["total_tokens"]).all()
    cells = m.cell_metrics(metrics)
    assert len(cells) == 4 and (cells["conversations"] == 1).all()


async def test_export_command_on_a_dryrun_batch(
    store, dryrun_batch: str, mongo_uri: str, tmp_data_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", store.db_name)
    page = tmp_path / "batch.html"
    args = ["export", "--batch", dryrun_batch, "--factor", "goal=escape", "--format", "html"]
    assert await asyncio.to_thread(main, [*args, "-o", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.count('<section class="conversation"') == 2  # the 2 cells with goal=escape
    assert text.count('class="day-separator"') == 4
