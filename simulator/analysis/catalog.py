"""Names of what the analysis layer can produce (formats, tables, figures), without importing
pandas or matplotlib: the command line builds its help from these at start-up."""

from __future__ import annotations

TABLE_FORMATS = ("csv", "jsonl", "parquet")
TRANSCRIPT_FORMATS = ("markdown", "text", "html")
FORMATS = TABLE_FORMATS + TRANSCRIPT_FORMATS
TABLES = ("messages", "conversations", "summaries", "metrics", "roles", "agents", "cells")
#: The games' tables (``analysis.game_tables``): each row with its run's conditions as columns.
GAME_TABLES: dict[str, str] = {
    "rounds": "commons: one row per round of each run",
    "round_members": "commons: per round and member (extraction, votes, audit, credits)",
    "steps": "reputation: one row per step of each run",
    "step_agents": "reputation: per step and agent (degree, reputation, resources)",
    "gossip": "reputation: every gossip",
    "interactions": "reputation: every pair's encounter",
}
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
    "rounds": "a commons measure (--measure) per round: runs thin, each condition's mean thick",
    "steps": "a reputation measure (--measure) per step: runs thin, each condition's mean thick",
    "network": "the reputation network of one run after a step (--step), with legends",
    "heatmap": "the reputation scores of one run after a step (--step), with a colour bar",
}
