"""Per-turn series of a score by role, and the prison study's Granger tests per conversation.

**Series** (``turn_table``): per grid cell, role and agent turn (the message's position among
its conversation's agent messages, from 1), the n, mean, SD and 95 % interval of a score over the
cell's conversations (cells are never pooled: a 1v2 and a 2v1 cell are two series).

**Granger tests** (``granger_table``): does one role's score help predict another's? Per
conversation, as the study did: the cause role's k-th message and the effect role's k-th message
form the k-th pair (k = 1..m, m the fewer of the two roles' messages); both series are
first-differenced (m − 1 values) and statsmodels' ``grangercausalitytests`` compares the effect's
autoregression of order ``lag`` with and without the cause's lags (its SSR F test: F, p and the
degrees of freedom). A conversation gets no test, and a ``reason``, when it has too few turns
(statsmodels needs more than 3·lag + 1 differences), a score is missing, or a differenced
series never changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from simulator.analysis.facets import grid_order
from simulator.analysis.loading import BOOL, FLOAT, INT, STRING, typed
from simulator.analysis.study import Measure, StudyError
from simulator.analysis.uncertainty import proportion_interval, summarise

ALPHA = 0.05


def turn_table(score: Measure, by: Sequence[str] = ("role",)) -> pd.DataFrame:
    """n, mean, SD and the 95 % interval of ``score`` per cell, ``by`` and agent turn."""
    if score.unit != "message":
        raise StudyError(
            f"{score.name} is about whole conversations; a series needs a score of messages"
        )
    frame = grid_order(score.frame)
    out = summarise(frame, [score.column], by=[*by, "agent_turn"]).drop(columns=["measure"])
    out.insert(0, "score", score.name)
    # cells in grid order (as first seen), then each series turn by turn
    cells = {k: i for i, k in reversed(list(enumerate(out["cell_key"].astype(str))))}
    order = out.assign(_cell=out["cell_key"].astype(str).map(cells))
    return (
        order.sort_values(["_cell", *by, "agent_turn"], kind="stable")
        .drop(columns=["_cell"])
        .reset_index(drop=True)
    )


GRANGER_COLUMNS: dict[str, str] = {
    "conversation_id": STRING,
    "conversation_number": INT,
    "experiment_id": STRING,
    "batch_id": STRING,
    "cell_key": STRING,
    "cell": STRING,
    "score": STRING,
    "cause": STRING,
    "effect": STRING,
    "lag": INT,
    "pairs": INT,
    "f_stat": FLOAT,
    "p_value": FLOAT,
    "df_num": INT,
    "df_den": INT,
    "significant": BOOL,
    "reason": STRING,
}


def min_pairs(lag: int) -> int:
    """The fewest paired turns a test of ``lag`` needs: m − 1 differences > 3·lag + 1."""
    return 3 * lag + 3


def granger_test(cause: Sequence[float], effect: Sequence[float], lag: int) -> dict[str, Any]:
    """One conversation's test (see the module docstring): f_stat, p_value, df_num, df_den, or a
    reason."""
    from statsmodels.tsa.stattools import grangercausalitytests

    m = min(len(cause), len(effect))
    out: dict[str, Any] = {"pairs": m}
    if m < min_pairs(lag):
        out["reason"] = (
            f"too few turns: {m} paired turn(s) give {max(0, m - 1)} difference(s); lag {lag} "
            f"needs at least {min_pairs(lag)} paired turns"
        )
        return out
    x = np.diff(np.asarray(cause[:m], dtype=float))
    y = np.diff(np.asarray(effect[:m], dtype=float))
    for name, series in (("cause", x), ("effect", y)):
        if np.ptp(series) == 0:
            out["reason"] = f"the {name}'s score never changes from turn to turn"
            return out
    try:
        result = grangercausalitytests(np.column_stack([y, x]), maxlag=[lag])
    except (ValueError, np.linalg.LinAlgError) as exc:
        out["reason"] = f"no test: {exc}"
        return out
    f_stat, p_value, df_den, df_num = result[lag][0]["ssr_ftest"]
    if not np.isfinite(f_stat):
        out["reason"] = "no test: the F statistic is not finite (the series are collinear)"
        return out
    out.update(f_stat=float(f_stat), p_value=float(p_value), df_num=int(df_num), df_den=int(df_den))
    return out


def granger_table(
    score: Measure,
    pairs: Sequence[tuple[str, str]],
    *,
    lag: int = 1,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """One row per conversation and (cause, effect) pair of roles."""
    if score.unit != "message":
        raise StudyError(
            f"{score.name} is about whole conversations; Granger tests need a score of messages"
        )
    if lag < 1:
        raise StudyError("--lag must be 1 or more")
    frame = grid_order(score.frame)
    factor_cols = [c for c in frame.columns if c.startswith("factor_")]
    rows: list[dict[str, Any]] = []
    for cid, conv in frame.groupby("conversation_id", sort=False):
        head = conv.iloc[0]
        for cause, effect in pairs:
            series = {}
            missing = ""
            for role in (cause, effect):
                values = conv[conv["role"] == role].sort_values("role_turn")[score.column]
                if values.isna().any():
                    missing = f"{role}'s score is missing for {int(values.isna().sum())} message(s)"
                series[role] = values.astype(float).tolist()
            row: dict[str, Any] = {
                "conversation_id": cid,
                "conversation_number": head.get("conversation_number"),
                "experiment_id": head.get("experiment_id"),
                "batch_id": head.get("batch_id"),
                "cell_key": head.get("cell_key"),
                "cell": head.get("cell"),
                **{c: head.get(c) for c in factor_cols},
                "score": score.name,
                "cause": cause,
                "effect": effect,
                "lag": lag,
            }
            if missing:
                row.update(pairs=min(len(series[cause]), len(series[effect])), reason=missing)
            else:
                row.update(granger_test(series[cause], series[effect], lag))
            if row.get("p_value") is not None:
                row["significant"] = bool(row["p_value"] < alpha)
            rows.append(row)
    columns = dict(GRANGER_COLUMNS)
    for c in factor_cols:
        columns[c] = STRING
    order = [*list(GRANGER_COLUMNS)[:6], *factor_cols, *list(GRANGER_COLUMNS)[6:]]
    return typed(pd.DataFrame(rows), {c: columns[c] for c in order})


GRANGER_SUMMARY_COLUMNS: dict[str, str] = {
    "experiment_id": STRING,
    "batch_id": STRING,
    "cell_key": STRING,
    "cell": STRING,
    "cause": STRING,
    "effect": STRING,
    "conversations": INT,
    "tested": INT,
    "significant": INT,
    "share": FLOAT,
    "ci_low": FLOAT,
    "ci_high": FLOAT,
}


def granger_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per cell and direction: conversations, tests run, significant ones, and their share
    among the tests with its Wilson 95 % interval."""
    if table.empty:
        return typed(pd.DataFrame(), GRANGER_SUMMARY_COLUMNS)
    keys = ["experiment_id", "batch_id", "cell_key", "cause", "effect"]
    rows = []
    for values, group in table.groupby(keys, sort=False, dropna=False):
        tested = group["p_value"].notna()
        s = proportion_interval(group.loc[tested, "significant"].tolist())
        rows.append(
            {
                **dict(zip(keys, values, strict=True)),
                "cell": group["cell"].iloc[0],
                "conversations": len(group),
                "tested": int(tested.sum()),
                "significant": int(group["significant"].fillna(False).sum()),
                "share": s.mean,
                "ci_low": s.ci_low,
                "ci_high": s.ci_high,
            }
        )
    return typed(pd.DataFrame(rows), GRANGER_SUMMARY_COLUMNS)


__all__ = [
    "ALPHA",
    "GRANGER_COLUMNS",
    "granger_summary",
    "granger_table",
    "granger_test",
    "min_pairs",
    "turn_table",
]
