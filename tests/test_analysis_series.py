"""Per-turn series by role (per cell, with n and intervals) and the Granger test per conversation:
its F statistic matches the two regressions computed by hand, and a conversation with too few
turns gets no test but a reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.analysis.series import granger_summary, granger_table, granger_test, turn_table
from simulator.analysis.study import Measure


def f_by_hand(cause: list[float], effect: list[float], lag: int) -> tuple[float, int, int]:
    """The SSR F test on first differences: effect ~ 1 + its lags (restricted) vs + the cause's
    lags (unrestricted)."""
    x, y = np.diff(cause), np.diff(effect)
    t = len(y)
    rows = range(lag, t)
    target = np.array([y[i] for i in rows])
    own = np.array([[y[i - j] for j in range(1, lag + 1)] for i in rows])
    other = np.array([[x[i - j] for j in range(1, lag + 1)] for i in rows])
    ones = np.ones((len(target), 1))
    restricted = np.hstack([own, ones])
    unrestricted = np.hstack([own, other, ones])

    def rss(design: np.ndarray) -> float:
        beta, *_ = np.linalg.lstsq(design, target, rcond=None)
        e = target - design @ beta
        return float(e @ e)

    df_den = len(target) - unrestricted.shape[1]
    f = ((rss(restricted) - rss(unrestricted)) / lag) / (rss(unrestricted) / df_den)
    return f, lag, df_den


def test_the_f_statistic_matches_the_regressions() -> None:
    rng = np.random.default_rng(3)
    cause = list(rng.normal(size=15).cumsum())
    effect = [0.0] + [0.8 * c + rng.normal(0, 0.3) for c in cause[:-1]]  # follows the cause
    for lag in (1, 2):
        out = granger_test(cause, effect, lag)
        f, df_num, df_den = f_by_hand(cause, effect, lag)
        assert out["f_stat"] == pytest.approx(f)
        assert (out["df_num"], out["df_den"]) == (df_num, df_den)
        assert out["pairs"] == 15
    assert granger_test(cause, effect, 1)["p_value"] < 0.01


def test_no_test_without_enough_turns_or_change() -> None:
    out = granger_test([1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 3.0, 0.0, 1.0], 1)
    assert "f_stat" not in out
    assert out["reason"] == (
        "too few turns: 5 paired turn(s) give 4 difference(s); lag 1 needs at least 6 paired turns"
    )
    flat = granger_test([1.0] * 8, [1.0, 2.0, 0.0, 3.0, 1.0, 2.0, 5.0, 1.0], 1)
    assert flat["reason"] == "the cause's score never changes from turn to turn"


def messages(cells: dict[str, int], turns: int) -> pd.DataFrame:
    """Agent messages of conversations (alternating Guard, Prisoner) in cells of given sizes;
    the score is the turn number plus the conversation's index, plus a wobble."""
    rows = []
    c = 0
    for cell, n in cells.items():
        for _ in range(n):
            for t in range(1, turns + 1):
                role = "Guard" if t % 2 else "Prisoner"
                rows.append(
                    {
                        "conversation_id": f"c{c}",
                        "conversation_number": c + 1,
                        "experiment_id": "e",
                        "batch_id": "b",
                        "cell_key": cell,
                        "cell": f"cell {cell}",
                        "factor_goal": "Escape",
                        "role": role,
                        "agent_turn": t,
                        "role_turn": (t + 1) // 2,
                        "score": float(t + c) + 0.7 * ((t * t + 3 * c) % 5),
                    }
                )
            c += 1
    frame = pd.DataFrame(rows)
    frame["score"] = frame["score"].astype("Float64")
    frame["agent_turn"] = frame["agent_turn"].astype("Int64")
    return frame


def test_series_are_per_cell_with_n_and_intervals() -> None:
    frame = messages({"k1": 3, "k2": 2}, turns=4)
    table = turn_table(Measure("score", "score", "message", frame, False))
    assert set(table["cell_key"]) == {"k1", "k2"}
    first = table[(table["cell_key"] == "k1") & (table["agent_turn"] == 1)].iloc[0]
    assert first["role"] == "Guard" and first["n"] == 3
    scores = [1 + 0.7 * 1, 2 + 0.7 * 4, 3 + 0.7 * 2]  # turn 1 of conversations 0, 1, 2
    assert first["mean"] == pytest.approx(np.mean(scores))
    assert first["sd"] == pytest.approx(np.std(scores, ddof=1))
    half = 4.302652729911275 * np.std(scores, ddof=1) / np.sqrt(3)  # t(0.975, 2)
    assert first["ci_low"] == pytest.approx(np.mean(scores) - half)
    assert table.groupby("cell_key")["n"].max().to_dict() == {"k1": 3, "k2": 2}


def test_granger_per_conversation_and_its_summary() -> None:
    frame = messages({"k1": 2, "k2": 1}, turns=16)
    score = Measure("score", "score", "message", frame, False)
    table = granger_table(score, [("Guard", "Prisoner"), ("Prisoner", "Guard")], lag=1)
    assert len(table) == 3 * 2
    assert table["pairs"].tolist() == [8] * 6
    assert table["reason"].isna().all() and table["p_value"].notna().all()
    assert table["factor_goal"].tolist() == ["Escape"] * 6
    short = granger_table(score, [("Guard", "Prisoner")], lag=3)
    assert short["p_value"].isna().all()
    assert short["reason"].iloc[0].startswith("too few turns: 8 paired turn(s)")
    summary = granger_summary(table)
    assert summary[["cell_key", "cause", "conversations", "tested"]].values.tolist() == [
        ["k1", "Guard", 2, 2],
        ["k1", "Prisoner", 2, 2],
        ["k2", "Guard", 1, 1],
        ["k2", "Prisoner", 1, 1],
    ]
    missing = frame.copy()
    missing.loc[3, "score"] = pd.NA
    gap = granger_table(
        Measure("score", "score", "message", missing, False), [("Guard", "Prisoner")]
    )
    assert gap["reason"].iloc[0] == "Prisoner's score is missing for 1 message(s)"
