"""Names of what the analysis layer can produce (formats, tables, figures), without importing
pandas or matplotlib: the command line builds its help from these at start-up.

The games' own tables and figures are the kinds' to declare (``Kind.tables``, ``Kind.figures``):
``game_tables(kinds)`` and ``game_figures(kinds)`` list those of the registry handed in."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.domain.game_data import Kinds

TABLE_FORMATS = ("csv", "jsonl", "parquet")
TRANSCRIPT_FORMATS = ("markdown", "text", "html")
FORMATS = TABLE_FORMATS + TRANSCRIPT_FORMATS
TABLES = ("messages", "conversations", "summaries", "metrics", "roles", "agents", "cells")
EXTENSIONS = {
    "csv": ".csv",
    "jsonl": ".jsonl",
    "parquet": ".parquet",
    "markdown": ".md",
    "text": ".txt",
    "html": ".html",
}

#: What ``metrics.per_turn`` can measure for each agent message.
TURN_METRICS = (
    "completion_tokens",
    "prompt_tokens",
    "total_tokens",
    "words",
    "chars",
    "latency_ms",
)

FIGURES: dict[str, str] = {
    "tokens": "completion tokens per agent turn, one line per role",
    "prompt-tokens": "prompt tokens per agent turn (context growth), one line per role",
    "length": "message length (words) per agent turn, one line per role",
    "latency": "latency per agent turn, one line per role",
    "share": "turn and word share by role per grid cell (bars with 95% intervals and n)",
    "cells": "mean message length per grid cell (bars with 95% intervals and n)",
    "trajectory": "a score of messages (--score) per agent turn by role, a panel per grid cell",
    "outcome": "an outcome (--outcome) per grid cell by a factor (--by), with 95% intervals",
}


def game_tables(kinds: Kinds) -> dict[str, str]:
    """Every table a kind of ``kinds`` declares (``simulator export --what``), with its help;
    a name two kinds declare (``rounds``) is one entry."""
    out: dict[str, list[str]] = {}
    for name in kinds.names():
        for table, declared in kinds.get(name).tables.items():
            out.setdefault(table, []).append(declared.description)
    return {table: "; ".join(texts) for table, texts in out.items()}


def game_figures(kinds: Kinds) -> dict[str, str]:
    """Every figure a kind of ``kinds`` offers (``simulator plot --figure``), with its help: a
    measure of a table with one (``--measure``) per round or step, runs thin and each
    condition's mean thick; and its figures of one run after a round or step."""
    defaults: dict[str, list[str]] = {}
    clocks: dict[str, list[str]] = {}
    snapshot: dict[str, str] = {}
    for name in kinds.names():
        kind = kinds.get(name)
        for table, declared in kind.tables.items():
            if declared.measure is not None:
                defaults.setdefault(table, []).append(f"{name} {declared.measure}")
                clocks.setdefault(table, []).append(kind.clock)
        for figure, drawn in kind.figures.items():
            defaults.setdefault(figure, [])
            snapshot.setdefault(figure, drawn.description)
    return {
        figure: snapshot.get(figure)
        or f"a game measure (--measure) per {' or '.join(dict.fromkeys(clocks[figure]))}: runs "
        f"thin, each condition's mean thick (default: {', '.join(measures)})"
        for figure, measures in defaults.items()
    }
