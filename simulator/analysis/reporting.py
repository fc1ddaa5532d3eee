"""Tables for a paper: Markdown (for the terminal, a README, a notebook) and LaTeX (booktabs).

Numbers are rounded for reading (``digits``, 3 by default); p-values below 0.001 read
``<0.001``; a missing value is empty (Markdown) or ``--`` (LaTeX). The CSV files written beside
them keep every digit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

P_COLUMNS = frozenset({"p_value", "p"})


def _missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and math.isnan(v)


def fmt(value: Any, column: str = "", digits: int = 3) -> str:
    """One cell as text: rounded numbers, ``<0.001`` for small p-values, whole numbers plain."""
    if _missing(value):
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        value = float(value)
        if column in P_COLUMNS and value < 10**-digits:
            return f"<{10**-digits:.{digits}f}"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}f}"
    return str(value)


def _cells(frame: pd.DataFrame, digits: int) -> list[list[str]]:
    columns = list(frame.columns)
    values = [frame[c].tolist() for c in columns]
    return (
        [
            [fmt(v, c, digits) for c, v in zip(columns, row, strict=True)]
            for row in zip(*values, strict=True)
        ]
        if columns
        else []
    )


def markdown_table(
    frame: pd.DataFrame, *, digits: int = 3, headers: Mapping[str, str] | None = None
) -> str:
    """A GitHub-flavoured Markdown table; numeric columns are right-aligned."""
    headers = dict(headers or {})
    names = [headers.get(c, c) for c in frame.columns]
    rows = _cells(frame, digits)
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    widths = [max([len(n), 3, *(len(r[i]) for r in rows)]) for i, n in enumerate(names)]

    def line(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(out) + " |"

    rule = [
        ("-" * (w - 1) + ":") if num else "-" * w for w, num in zip(widths, numeric, strict=True)
    ]
    return "\n".join([line(names), "| " + " | ".join(rule) + " |", *(line(r) for r in rows)])


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"$<$",
    ">": r"$>$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def latex_table(
    frame: pd.DataFrame,
    *,
    digits: int = 3,
    headers: Mapping[str, str] | None = None,
    caption: str | None = None,
    notes: Sequence[str] = (),
    label: str | None = None,
) -> str:
    """A ``table`` environment with a booktabs ``tabular`` (``\\usepackage{booktabs}``), the
    caption above and notes below."""
    headers = dict(headers or {})
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    spec = "".join("r" if num else "l" for num in numeric)
    names = [latex_escape(headers.get(c, c)) for c in frame.columns]
    rows = [[latex_escape(c) if c else "--" for c in r] for r in _cells(frame, digits)]
    lines = [r"\begin{table}[ht]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(names) + r" \\"]
    lines.append(r"\midrule")
    lines += [" & ".join(r) + r" \\" for r in rows]
    lines.append(r"\bottomrule")
    lines.append(r"\end{tabular}")
    for note in notes:
        lines.append(rf"\par\footnotesize {latex_escape(note)}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return path


__all__ = ["fmt", "latex_escape", "latex_table", "markdown_table", "write_text"]
