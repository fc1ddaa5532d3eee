"""Metrics on the hand-built conversations of tests/plugins/analysis.py, against figures worked
out by hand from the messages listed there.

Conversation A's agent messages (words): Guard 1 "Stay in your cell now." (5), Prisoner 1
"I want out" (3), Prisoner 2 "Me too please" (3), Guard 1 "No." (1), Prisoner 1 "Then we riot
together tonight" (5), Prisoner 2 "Quiet" (1). Guard: 2 messages, 6 words; Prisoner: 4 messages,
12 words; 18 words in all.
"""

from __future__ import annotations

import pandas as pd
import pytest

from simulator.analysis import metrics as m
from simulator.analysis.loading import load_all
from tests.plugins.analysis import AnalysisData


@pytest.fixture
async def frames(store, analysis_data: AnalysisData) -> tuple[pd.DataFrame, pd.DataFrame]:
    return await load_all(store, experiment_id=analysis_data.experiment.id)


async def test_conversation_metrics_match_hand_computed_values(frames, analysis_data) -> None:
    conversations, messages = frames
    out = m.conversation_metrics(messages, conversations)
    assert list(out["conversation_id"]) == [analysis_data.a.id, analysis_data.b.id]
    a = out.iloc[0]
    assert a["messages"] == 6
    assert a["summaries"] == 2
    assert a["stored"] == 9
    assert a["words"] == 18
    assert a["mean_words"] == pytest.approx(3.0)
    said = ["Stay in your cell now.", "I want out", "Me too please", "No."]
    said += ["Then we riot together tonight", "Quiet"]
    chars = sum(len(s) for s in said)
    assert a["mean_chars"] == pytest.approx(chars / 6)
    # tokens of every stored message (prompt, completion), the summaries included
    assert a["prompt_tokens"] == 100 + 120 + 130 + 200 + 150 + 160 + 170 + 210 == 1240
    assert a["completion_tokens"] == 10 + 5 + 6 + 20 + 2 + 8 + 3 + 25 == 79
    assert a["total_tokens"] == 1319
    assert a["agent_total_tokens"] == 110 + 125 + 136 + 152 + 168 + 173 == 864
    assert a["fallbacks"] == 1 and a["reasked"] == 1 and a["retries"] == 1
    assert not a["failed"]
    assert a["duration_s"] == 90.0
    assert a["latency_ms_total"] == pytest.approx(100 + 200 + 300 + 50 + 400 + 500 + 600 + 50)
    assert a["latency_ms_mean"] == pytest.approx((100 + 200 + 300 + 400 + 500 + 600) / 6)
    # per role, wide
    assert a["messages_guard"] == 2 and a["messages_prisoner"] == 4
    assert a["words_guard"] == 6 and a["words_prisoner"] == 12
    assert a["mean_words_guard"] == pytest.approx(3.0)
    assert a["mean_words_prisoner"] == pytest.approx(3.0)
    assert a["turn_share_guard"] == pytest.approx(2 / 6)
    assert a["turn_share_prisoner"] == pytest.approx(4 / 6)
    assert a["tokens_guard"] == 110 + 152
    assert a["count_prisoner"] == 2 and a["factor_goal"] == "Escape"

    b = out.iloc[1]
    assert b["failed"] and b["error"] == "model unavailable"
    assert b["messages"] == 1 and b["words"] == 3  # "<b>Hello</b>", "&", "<script>...</script>"
    assert b["messages_guard"] == 1 and b["turn_share_guard"] == 1.0
    # a role present in the cell that never spoke: 0 messages and 0 share, mean undefined
    assert b["messages_prisoner"] == 0 and b["turn_share_prisoner"] == 0.0
    assert pd.isna(b["mean_words_prisoner"])
    assert b["summaries"] == 0 and b["fallbacks"] == 0
    # no finished_at: the span of its messages' timestamps (seq 0 and 1: 10 s apart)
    assert b["duration_s"] == 10.0


async def test_role_and_agent_metrics(frames, analysis_data) -> None:
    _, messages = frames
    roles = m.role_metrics(messages)
    a = roles[roles["conversation_id"] == analysis_data.a.id].set_index("role")
    assert list(a.index) == ["Guard", "Prisoner"]  # summarizer and moderator are not agents
    assert a.loc["Prisoner", "messages"] == 4 and a.loc["Prisoner", "words"] == 12
    assert a.loc["Prisoner", "agents"] == 2 and a.loc["Guard", "agents"] == 1
    assert a.loc["Guard", "word_share"] == pytest.approx(6 / 18)
    assert a.loc["Guard", "fallbacks"] == 1 and a.loc["Prisoner", "fallbacks"] == 0
    assert a.loc["Guard", "completion_tokens"] == 12

    agents = m.agent_metrics(messages)
    a = agents[agents["conversation_id"] == analysis_data.a.id].set_index("speaker")
    assert a.loc["Prisoner 1", "words"] == 8 and a.loc["Prisoner 2", "words"] == 4
    assert a.loc["Prisoner 1", "turn_share"] == pytest.approx(2 / 6)
    assert a.loc["Prisoner 2", "mean_words"] == pytest.approx(2.0)


async def test_cell_metrics_pool_repeats(frames) -> None:
    conversations, messages = frames
    metrics = m.conversation_metrics(messages, conversations)
    # the same cell twice (a repeat) pools with the original
    twice = pd.concat([metrics, metrics.iloc[[0]]], ignore_index=True)
    twice.loc[2, "words"] = 30
    twice.loc[2, "status"] = "failed"
    twice.loc[2, "failed"] = True
    cells = m.cell_metrics(twice)
    assert len(cells) == 2
    first = cells.iloc[0]
    assert first["conversations"] == 2 and first["done"] == 1 and first["failed"] == 1
    assert first["words_mean"] == pytest.approx((18 + 30) / 2)
    assert first["total_tokens_sum"] == 2 * 1319
    assert first["count_guard"] == 1 and first["count_prisoner"] == 2
    assert first["factor_goal"] == "Escape"
    assert first["turn_share_prisoner_mean"] == pytest.approx(4 / 6)
    second = cells.iloc[1]
    assert second["conversations"] == 1 and second["failed"] == 1


async def test_per_turn_series(frames, analysis_data) -> None:
    _, messages = frames
    a = messages[messages["conversation_id"] == analysis_data.a.id]
    series = m.turn_series(a, "words")
    assert series == {
        "Guard": ([1, 4], [5.0, 1.0]),
        "Prisoner": ([2, 3, 5, 6], [3.0, 3.0, 5.0, 1.0]),
    }
    tokens = m.turn_series(a, "completion_tokens")
    assert tokens["Guard"] == ([1, 4], [10.0, 2.0])
    with pytest.raises(ValueError, match="unknown metric"):
        m.per_turn(a, "nope")


def test_metrics_of_nothing_are_empty_frames() -> None:
    from simulator.analysis.loading import conversations_frame, messages_frame

    conversations, messages = conversations_frame([]), messages_frame([], [])
    out = m.conversation_metrics(messages, conversations)
    assert out.empty and "messages" in out.columns
    assert m.role_metrics(messages).empty
    assert m.cell_metrics(out).empty
    assert m.turn_series(messages) == {}
