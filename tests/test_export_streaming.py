"""Exports written chunk by chunk: the same tables as the in-memory frames, whatever the chunk
size (here one conversation per chunk), each chunk appended as it is read (a Parquet row group
per chunk), and every query of an export served by an index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from simulator.analysis import exports, loading
from simulator.analysis.loading import load_all, select
from simulator.domain.filters import ConversationFilter
from tests.plugins.analysis import AnalysisData

TABLES = ["messages", "conversations", "summaries", "metrics", "roles", "agents", "cells"]


@pytest.fixture
def one_per_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "CHUNK_MESSAGES", 1)


@pytest.mark.parametrize("what", TABLES)
async def test_chunked_parquet_equals_the_in_memory_table(
    store: Any, analysis_data: AnalysisData, tmp_path: Path, one_per_chunk: None, what: str
) -> None:
    conversations, messages = await load_all(store)
    expected = exports.table(what, conversations, messages)
    [path] = await exports.export(store, fmt="parquet", what=what, output=tmp_path)
    pd.testing.assert_frame_equal(pd.read_parquet(path), expected)
    if what in ("messages", "conversations"):  # appended chunk by chunk
        assert pq.ParquetFile(path).num_row_groups == len(conversations) > 1


@pytest.mark.parametrize("what", ["messages", "conversations", "metrics"])
async def test_chunked_csv_and_jsonl_equal_the_in_memory_files(
    store: Any, analysis_data: AnalysisData, tmp_path: Path, one_per_chunk: None, what: str
) -> None:
    conversations, messages = await load_all(store)
    expected = exports.table(what, conversations, messages)
    [csv] = await exports.export(store, fmt="csv", what=what, output=tmp_path)
    assert csv.read_text(encoding="utf-8") == expected.to_csv(index=False, lineterminator="\n")
    [jsonl] = await exports.export(store, fmt="jsonl", what=what, output=tmp_path)
    whole = expected.to_json(
        orient="records", lines=True, date_format="iso", date_unit="ms", force_ascii=False
    )
    got = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert got == [json.loads(line) for line in whole.splitlines()]


async def test_a_kind_filter_keeps_the_stored_counts(
    store: Any, analysis_data: AnalysisData, tmp_path: Path, one_per_chunk: None
) -> None:
    flt = ConversationFilter(kinds=["summary"])
    conversations, messages = await load_all(store, flt)
    [path] = await exports.export(store, flt, fmt="parquet", what="metrics", output=tmp_path)
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, exports.table("metrics", conversations, messages))
    [path] = await exports.export(store, flt, fmt="csv", what="messages", output=tmp_path)
    assert set(pd.read_csv(path)["kind"]) == {"summary"}


async def test_the_selection_is_ids_in_the_store_order(
    store: Any, analysis_data: AnalysisData
) -> None:
    conversations, _ = await load_all(store)
    selection = await select(store)
    assert selection.ids == list(conversations["conversation_id"])
    assert set(selection.hints) == set(selection.ids)
    assert all(n > 0 for n in selection.hints.values())
