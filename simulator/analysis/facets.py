"""Short names of grid cells (and of game conditions) for facets, legends and printed tables.

A cell's full label (``cell``: ``Guard=1, Prisoner=1 · 1 day · 20 messages · goal=Escape ·
persona=No persona · dryrun``) repeats what every cell of a selection shares. A facet title or a
legend needs only what tells the cells apart: ``short_labels`` keeps, of the cell's parts (agent
counts, days, messages or rounds, speaker selection, each factor, models), those that vary among
the selected cells. When nothing varies the label is the full one. Two cells of different keys
never get the same short label (unless asked to leave parts out: a figure's x axis shows them).
A game condition (``condition_key``) adds its preset and parameters (``param_<name>``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

#: Cell columns that tell cells apart, in the order their parts are written (factors after
#: ``speaker_selection``, models last).
PARTS = ("cell_counts", "days", "total_messages", "rounds", "speaker_selection")


def _part(column: str, value: object) -> str:
    if column.startswith("factor_"):
        return f"{column.removeprefix('factor_')}={value}"
    if column.startswith("param_"):
        return f"{column.removeprefix('param_')}={value}"
    if column == "preset":
        return f"preset={value}"
    if column == "days":
        return f"{value} day{'s' if str(value) != '1' else ''}"
    if column == "total_messages":
        return f"{value} messages"
    if column == "rounds":
        return f"{value} rounds"
    return str(value)


def part_columns(frame: pd.DataFrame, *, conditions: bool = False) -> list[str]:
    """The columns whose values make a cell's (or a condition's) label, in order."""
    columns = [c for c in PARTS if c in frame.columns]
    columns += [c for c in frame.columns if c.startswith("factor_")]
    if "cell_models" in frame.columns:
        columns.append("cell_models")
    if conditions:
        columns += [c for c in ("preset",) if c in frame.columns]
        columns += [c for c in frame.columns if c.startswith("param_")]
    return columns


def short_labels(
    frame: pd.DataFrame,
    *,
    key: str = "cell_key",
    exclude: Sequence[str] = (),
    unique: bool = True,
) -> dict[str, str]:
    """``key`` value -> a short label (see the module docstring) for the rows of ``frame``;
    ``exclude`` leaves parts out (then labels may repeat, unless ``unique``)."""
    if frame.empty or key not in frame.columns:
        return {}
    conditions = key == "condition_key"
    by = [k for k in ("batch_id", key) if k in frame.columns]
    rows = frame.drop_duplicates(by).reset_index(drop=True)
    columns = [c for c in part_columns(frame, conditions=conditions) if c not in exclude]
    varying = [c for c in columns if rows[c].astype("string").nunique(dropna=False) > 1]
    full = "condition" if conditions else "cell"
    out: dict[str, str] = {}
    for _, row in rows.iterrows():
        parts = [_part(c, row[c]) for c in varying if not pd.isna(row[c])]
        fallback = "" if exclude else str(row.get(full, row[key]))
        out.setdefault(str(row[key]), " · ".join(parts) if parts else fallback)
    labels = list(out.values())
    if unique and len(set(labels)) < len(labels):  # a part the columns do not show tells them apart
        return {k: str(rows.loc[rows[key].astype(str) == k, full].iloc[0]) for k in out}
    return out


def grid_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows batch by batch (in order of first appearance), in grid order (``conversation_number``)
    within a batch; the order of a frame without conversation numbers is kept."""
    if "conversation_number" not in frame.columns or frame.empty:
        return frame
    batches = frame["batch_id"].astype("string").fillna("") if "batch_id" in frame else None
    first: dict[str, int] = {}
    for i, b in enumerate(batches if batches is not None else [""] * len(frame)):
        first.setdefault(str(b), i)
    order = pd.DataFrame(
        {
            "b": [first[str(b)] for b in (batches if batches is not None else [""] * len(frame))],
            "n": frame["conversation_number"].to_numpy(),
        }
    )
    keep = order.sort_values(["b", "n"], kind="stable").index
    return frame.iloc[keep].reset_index(drop=True)


def with_short_cells(frame: pd.DataFrame, source: pd.DataFrame | None = None) -> pd.DataFrame:
    """``frame`` with its ``cell`` column replaced by short labels computed from ``source``
    (default ``frame``; a table of conversations has every cell column)."""
    if "cell" not in frame.columns or "cell_key" not in frame.columns:
        return frame
    labels = short_labels(frame if source is None else source)
    out = frame.copy()
    out["cell"] = out["cell_key"].astype(str).map(labels).fillna(out["cell"]).astype("string")
    return out


__all__ = ["PARTS", "grid_order", "part_columns", "short_labels", "with_short_cells"]
