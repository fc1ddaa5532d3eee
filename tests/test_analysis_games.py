"""Analysis of a game (commons) run: structured actions, private messages and game roles load,
round-trip and render like dialogue messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.analysis import exports
from simulator.analysis import metrics as m
from simulator.analysis.loading import load_all
from simulator.domain import Status
from simulator.domain.filters import ConversationFilter
from simulator.engine.conversation import run_conversation
from simulator.scenarios.commons.setup import (
    commons_cell,
    commons_experiment,
    scripted_model,
    start_run,
)
from tests.plugins.commons import saboteur_params


async def test_a_commons_run_exports_and_measures(
    store: Any, backends: Any, tmp_path: Path
) -> None:
    exp = commons_experiment(saboteur_params(rounds=2))
    conv = await start_run(store, exp, commons_cell(3, model=scripted_model(chat="public+1")))
    done = await run_conversation(store, backends, conv.id)
    assert done.status is Status.done, done.error

    flt = ConversationFilter(conversation_ids=[conv.id])
    conversations, messages = await load_all(store, flt)
    assert messages["experiment_kind"].unique().tolist() == ["commons"]
    assert list(messages["seq"]) == list(range(len(messages)))
    actions = messages[messages["kind"] == "action"]
    assert not actions.empty
    for data in actions["data"].dropna():
        assert isinstance(json.loads(data), dict)
    assert "count_member" in messages.columns

    [path] = await exports.export(store, flt, fmt="parquet", output=tmp_path)
    pd.testing.assert_frame_equal(pd.read_parquet(path), messages)

    metrics = m.conversation_metrics(messages, conversations)
    assert metrics.loc[0, "messages"] == len(actions) + (messages["kind"] == "utterance").sum()
    assert metrics.loc[0, "messages_member"] > 0

    [page] = await exports.export(store, flt, fmt="html", output=tmp_path / "game.html")
    html = page.read_text(encoding="utf-8")
    assert html.count('<section class="conversation"') == 1
    assert "<script" not in html
