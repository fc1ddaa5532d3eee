"""n, mean, SD and 95 % intervals of every aggregate (t for means, Wilson for proportions), and
aggregates that never pool grid cells differing in anything but the repeat."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from simulator.analysis import metrics as m
from simulator.analysis.loading import load_all
from simulator.analysis.uncertainty import (
    mean_interval,
    proportion_interval,
    summarise,
    wilson_interval,
)


def test_a_mean_gets_a_t_interval() -> None:
    s = mean_interval([2, 4, 6, 8, None, float("nan")])
    assert s.n == 4 and s.mean == 5.0
    sd = math.sqrt((9 + 1 + 1 + 9) / 3)  # sample SD, ddof 1
    assert s.sd == pytest.approx(sd)
    half = 3.182446305284263 * sd / 2  # t(0.975, 3) from a table
    assert (s.ci_low, s.ci_high) == pytest.approx((5 - half, 5 + half))
    assert s.interval == "t"


def test_one_value_has_no_spread_and_none_has_no_mean() -> None:
    one = mean_interval([3.0])
    assert (one.n, one.mean, one.sd, one.ci_low, one.ci_high) == (1, 3.0, None, None, None)
    none = mean_interval([])
    assert (none.n, none.mean) == (0, None)
    assert wilson_interval(0, 0) is None


def test_a_proportion_gets_wilsons_interval() -> None:
    # Wilson (1927) / Newcombe (1998), table I: 3 of 10 -> 0.1078 to 0.6032; 0 of 10 -> 0 to 0.2775
    assert wilson_interval(3, 10) == pytest.approx((0.1078, 0.6032), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    s = proportion_interval([True, False, False] + [False] * 7)
    assert s.n == 10 and s.mean == pytest.approx(0.1) and s.interval == "wilson"
    assert 0.0 <= s.ci_low < 0.1 < s.ci_high < 0.5


def test_summaries_group_by_the_cell_as_well() -> None:
    """Asked "by goal", two cells of the same goal that differ in persona stay apart."""
    frame = pd.DataFrame(
        {
            "experiment_id": ["e"] * 6,
            "batch_id": ["b"] * 6,
            "cell_key": ["k1", "k1", "k2", "k2", "k3", "k3"],
            "cell": ["Escape·calm"] * 2 + ["Escape·rude"] * 2 + ["Yard·calm"] * 2,
            "factor_goal": ["Escape"] * 4 + ["Yard"] * 2,
            "words": [10.0, 12.0, 30.0, 34.0, 5.0, 5.0],
            "yes": pd.array([True, False, True, True, False, False], dtype="boolean"),
        }
    )
    out = summarise(frame, ["words", "yes"], by=["factor_goal"])
    words = out[out["measure"] == "words"].reset_index(drop=True)
    assert words["cell_key"].tolist() == ["k1", "k2", "k3"]  # three rows, not two goals
    assert words["mean"].tolist() == [11.0, 32.0, 5.0]
    assert words["n"].tolist() == [2, 2, 2]
    assert words.loc[2, "sd"] == 0.0 and words.loc[2, "ci_low"] == 5.0
    yes = out[out["measure"] == "yes"].reset_index(drop=True)
    assert yes["interval"].tolist() == ["wilson"] * 3
    assert yes["mean"].tolist() == [0.5, 1.0, 0.0]
    assert yes.loc[1, "ci_high"] == pytest.approx(1.0) and yes.loc[1, "ci_low"] < 1.0


async def test_the_cells_table_gives_n_sd_and_intervals(store, analysis_data) -> None:
    conversations, messages = await load_all(store, experiment_id=analysis_data.experiment.id)
    metrics = m.conversation_metrics(messages, conversations)
    twice = pd.concat([metrics, metrics.iloc[[0]], metrics.iloc[[0]]], ignore_index=True)
    twice.loc[2, "words"] = 30
    twice.loc[3, "words"] = 12
    twice.loc[3, "status"] = "failed"
    twice.loc[3, "failed"] = True
    cells = m.cell_metrics(twice)
    first = cells.iloc[0]
    assert first["conversations"] == 3 and first["words_n"] == 3
    assert first["words_mean"] == pytest.approx(20.0)
    sd = math.sqrt(((18 - 20) ** 2 + 10**2 + 8**2) / 2)
    assert first["words_sd"] == pytest.approx(sd)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2)
    assert first["words_ci_low"] == pytest.approx(20 - half)
    assert first["words_ci_high"] == pytest.approx(20 + half)
    assert first["failed_rate"] == pytest.approx(1 / 3)
    lo, hi = wilson_interval(1, 3)
    assert (first["failed_rate_ci_low"], first["failed_rate_ci_high"]) == pytest.approx((lo, hi))
    second = cells.iloc[1]  # a cell run once: no spread
    assert second["words_n"] == 1 and pd.isna(second["words_sd"])
    assert pd.isna(second["words_ci_low"])
    shares = m.share_by_cell(messages)
    assert {"turn_share_n", "turn_share_sd", "turn_share_ci_low", "word_share_ci_high"} <= set(
        shares.columns
    )
