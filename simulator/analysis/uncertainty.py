"""n, mean, SD and a 95 % interval: what every aggregate table and figure reports.

A mean of a numeric measure gets a t-based interval: mean ± t(0.975, n − 1) · SD / √n, with the
sample SD (ddof 1). A proportion (a measure of boolean dtype: failed, an annotation answer such
as ``goal_achieved == yes``) gets Wilson's score interval, which stays inside [0, 1] and is
honest for small n and for proportions near 0 or 1 (where mean ± t · SE is not). Which interval
a column gets depends on its declared dtype, never on the values a selection happens to hold.

With n = 1 the SD and the interval are missing (a single conversation says nothing about
spread); with n = 0 everything but n is missing.

Aggregates never pool grid cells that differ in anything but the repeat: ``summarise`` always
groups by the cell (``CELL_KEYS``: experiment, batch and ``cell_key``) besides the columns asked
for, so grouping "by goal" gives one row per goal *and cell*, never a mean over cells that differ
in persona, agent counts or model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from simulator.analysis.loading import BOOL, FLOAT, INT, STRING, typed

LEVEL = 0.95
#: Columns every ``summarise`` group includes: one batch's (or the lone runs') grid cell.
CELL_KEYS = ("experiment_id", "batch_id", "cell_key")
#: Statistics of one measure, in the order of the columns.
STATISTICS = ("n", "mean", "sd", "ci_low", "ci_high")


@dataclass(frozen=True)
class Summary:
    """n, mean, SD and the 95 % interval of one group's values (``interval``: t or wilson)."""

    n: int
    mean: float | None
    sd: float | None
    ci_low: float | None
    ci_high: float | None
    interval: str


def t_quantile(df: int, level: float = LEVEL) -> float:
    """The two-sided ``level`` quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, df))


def z_quantile(level: float = LEVEL) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2))


def _values(values: Iterable[object]) -> list[float]:
    out: list[float] = []
    for v in values:
        if v is None or v is pd.NA:
            continue
        x = float(v)  # type: ignore[arg-type]
        if not math.isnan(x):
            out.append(x)
    return out


def mean_interval(values: Iterable[object], level: float = LEVEL) -> Summary:
    """n, mean, SD (ddof 1) and the t-based interval of the non-missing ``values``."""
    xs = _values(values)
    n = len(xs)
    if n == 0:
        return Summary(0, None, None, None, None, "t")
    mean = sum(xs) / n
    if n == 1:
        return Summary(1, mean, None, None, None, "t")
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(n - 1, level) * sd / math.sqrt(n)
    return Summary(n, mean, sd, mean - half, mean + half, "t")


def wilson_interval(successes: int, n: int, level: float = LEVEL) -> tuple[float, float] | None:
    """Wilson's score interval of a proportion ``successes / n`` (None when n is 0)."""
    if n <= 0:
        return None
    z = z_quantile(level)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion_interval(values: Iterable[object], level: float = LEVEL) -> Summary:
    """n, share of true values, SD of the 0/1 values and Wilson's interval."""
    xs = _values(values)
    n = len(xs)
    if n == 0:
        return Summary(0, None, None, None, None, "wilson")
    k = sum(1 for x in xs if x)
    mean = k / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else None
    lo, hi = wilson_interval(k, n, level) or (None, None)
    return Summary(n, mean, sd, lo, hi, "wilson")


def is_proportion(series: pd.Series) -> bool:
    """Whether a column is a proportion's: boolean dtype (declared, never guessed from values)."""
    return str(series.dtype) in (BOOL, "bool")


def describe(series: pd.Series, level: float = LEVEL) -> Summary:
    """``proportion_interval`` for a boolean column, ``mean_interval`` otherwise."""
    if is_proportion(series):
        return proportion_interval(series.tolist(), level)
    return mean_interval(series.tolist(), level)


# --------------------------------------------------------------------------- tables

SUMMARY_COLUMNS: dict[str, str] = {
    "measure": STRING,
    "n": INT,
    "mean": FLOAT,
    "sd": FLOAT,
    "ci_low": FLOAT,
    "ci_high": FLOAT,
    "interval": STRING,
}
#: The cell's description copied onto each row of ``summarise`` (from the group's first row),
#: with its ``count_<role>`` and ``factor_<name>`` columns.
CELL_LABELS = (
    "experiment_name",
    "cell",
    "cell_counts",
    "days",
    "total_messages",
    "rounds",
    "speaker_selection",
    "cell_models",
)


def stat_columns(measure: str) -> dict[str, str]:
    """The wide columns of one measure: ``<measure>_n``, ``_mean``, ``_sd``, ``_ci_low``,
    ``_ci_high``."""
    return {f"{measure}_{s}": INT if s == "n" else FLOAT for s in STATISTICS}


def wide_values(measure: str, summary: Summary) -> dict[str, object]:
    return {f"{measure}_{s}": getattr(summary, s) for s in STATISTICS}


def group_keys(frame: pd.DataFrame, by: Sequence[str]) -> list[str]:
    """``by`` and the cell keys (those the frame has), without repeats: the honest grouping."""
    return list(dict.fromkeys([*by, *(k for k in CELL_KEYS if k in frame.columns)]))


def summarise(
    frame: pd.DataFrame, measures: Sequence[str], by: Sequence[str] = (), level: float = LEVEL
) -> pd.DataFrame:
    """A long table: one row per group (``by`` *and* the grid cell: see the module docstring)
    and measure, with n, mean, SD, the 95 % interval and which interval it is (t or wilson).
    Groups come in order of first appearance."""
    keys = group_keys(frame, by)
    key_types = {k: str(frame[k].dtype) for k in keys}
    described = [
        *CELL_LABELS,
        *(c for c in frame.columns if c.startswith(("count_", "factor_"))),
    ]
    labels = [c for c in described if c in frame.columns and c not in keys]
    columns = {**key_types, **{c: str(frame[c].dtype) for c in labels}, **SUMMARY_COLUMNS}
    if frame.empty:
        return typed(pd.DataFrame(), columns)
    rows: list[dict[str, object]] = []
    for values, group in frame.groupby(keys, sort=False, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        head = dict(zip(keys, values, strict=True))
        head.update({c: group[c].iloc[0] for c in labels})
        for measure in measures:
            s = describe(group[measure], level)
            rows.append({**head, "measure": measure, **s.__dict__})
    return typed(pd.DataFrame(rows), columns)


__all__ = [
    "CELL_KEYS",
    "LEVEL",
    "STATISTICS",
    "SUMMARY_COLUMNS",
    "Summary",
    "describe",
    "group_keys",
    "is_proportion",
    "mean_interval",
    "proportion_interval",
    "stat_columns",
    "summarise",
    "t_quantile",
    "wide_values",
    "wilson_interval",
    "z_quantile",
]
