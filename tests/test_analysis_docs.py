"""docs/analysis.md stays true: every column, table, format, figure and filter is documented."""

from __future__ import annotations

import re
from pathlib import Path

from simulator.analysis.catalog import FIGURES, FORMATS, TABLES
from simulator.analysis.loading import (
    CELL_COLUMNS,
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    load_all,
)
from simulator.cli import build_parser

DOC = Path(__file__).resolve().parents[1] / "docs" / "analysis.md"


def _documented() -> set[str]:
    """Every `name` in backticks (also each name of `a`, `b` lists)."""
    text = re.sub(r"```.*?```", "", DOC.read_text(encoding="utf-8"), flags=re.S)
    return set(re.findall(r"`([^`\n]+)`", text))


def _generic(column: str) -> str:
    """A role- or factor-specific column as the doc writes it (`count_<role>`, ...); a cell
    aggregate as its measure (`words_mean`, `words_sd`, `words_ci_low` -> `words`)."""
    for suffix in ("_mean", "_sum", "_n", "_sd", "_ci_low", "_ci_high"):
        if column.endswith(suffix) and column not in (
            "total_tokens_sum",
            "fallbacks_sum",
            "failed_rate_ci_low",
            "failed_rate_ci_high",
        ):
            column = column.removesuffix(suffix)
    for prefix in (
        "count_",
        "factor_",
        "messages_",
        "words_",
        "mean_words_",
        "turn_share_",
        "tokens_",
    ):
        if column.startswith(prefix) and column not in ("words", "messages"):
            suffix = "<name>" if prefix == "factor_" else "<role>"
            return prefix + suffix
    return column


async def test_every_column_of_every_table_is_documented(store, analysis_data) -> None:
    from simulator.analysis.exports import table

    doc = _documented()
    conversations, messages = await load_all(store)
    tables = {name: list(table(name, conversations, messages).columns) for name in TABLES}
    tables["messages"] += list(MESSAGE_COLUMNS) + list(CELL_COLUMNS)
    tables["conversations"] += list(CONVERSATION_COLUMNS)
    missing = {
        name: [c for c in cols if _generic(c) not in doc and c not in doc]
        for name, cols in tables.items()
    }
    assert missing == {name: [] for name in tables}


def test_every_format_table_figure_and_filter_is_documented() -> None:
    doc = _documented()
    for name in (*FORMATS, *TABLES, *FIGURES, "all"):
        assert name in doc, name
    export = next(
        a
        for a in build_parser()._subparsers._group_actions[0].choices.items()  # type: ignore[union-attr]
        if a[0] == "export"
    )[1]
    options = {o for a in export._actions for o in a.option_strings if o.startswith("--")}
    options -= {"--help"}
    text = DOC.read_text(encoding="utf-8")
    for option in options:
        assert option in text, option
