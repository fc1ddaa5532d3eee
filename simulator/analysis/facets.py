"""Short names of grid cells for facets, legends and printed tables.

A cell's full label (``cell``: ``Guard=1, Prisoner=1 · 1 day · 20 messages · goal=Escape ·
persona=No persona · dryrun``) repeats what every cell of a selection shares. A facet title or a
legend needs only what tells the cells apart: ``short_labels`` keeps, of the cell's parts (agent
counts, days, messages or rounds, each factor, speaker selection, models, and the batch when
the same cell ran in several), those that vary among the selected cells. When nothing varies
the label is the full one. Two cells of different keys never get the same short label.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

#: Cell columns that tell cells apart, in the order their parts are written.
PARTS = ("cell_counts", "days", "total_messages", "rounds", "speaker_selection", "cell_models")


def _part(column: str, value: object) -> str:
    if column.startswith("factor_"):
        return f"{column.removeprefix('factor_')}={value}"
    if column == "days":
        return f"{value} day{'s' if str(value) != '1' else ''}"
    if column == "total_messages":
        return f"{value} messages"
    if column == "rounds":
        return f"{value} rounds"
    if column == "cell_models":
        return str(value)
    if column == "speaker_selection":
        return str(value)
    return str(value)


def short_labels(
    frame: pd.DataFrame, keys: Sequence[str] = ("batch_id", "cell_key")
) -> dict[str, str]:
    """``cell_key`` -> a short label (see the module docstring) for the cells of ``frame``."""
    if frame.empty or "cell_key" not in frame.columns:
        return {}
    cells = frame.drop_duplicates([k for k in keys if k in frame.columns]).reset_index(drop=True)
    columns = [c for c in frame.columns if c.startswith("factor_")]
    columns = [*(c for c in PARTS if c in frame.columns and c != "cell_models"), *columns]
    if "cell_models" in frame.columns:
        columns.append("cell_models")
    varying = [c for c in columns if cells[c].astype("string").nunique(dropna=False) > 1]
    out: dict[str, str] = {}
    for _, row in cells.iterrows():
        key = str(row["cell_key"])
        parts = [_part(c, row[c]) for c in varying if not pd.isna(row[c])]
        label = " · ".join(parts) if parts else str(row.get("cell", key))
        out.setdefault(key, label)
    labels = list(out.values())
    if len(set(labels)) < len(labels):  # a part the columns do not show tells them apart
        return {k: str(cells.loc[cells["cell_key"] == k, "cell"].iloc[0]) for k in out}
    return out


def with_short_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its ``cell`` column replaced by the short labels (for printing)."""
    if "cell" not in frame.columns or "cell_key" not in frame.columns:
        return frame
    labels = short_labels(frame)
    out = frame.copy()
    out["cell"] = out["cell_key"].map(labels).astype("string")
    return out


__all__ = ["PARTS", "short_labels", "with_short_cells"]
