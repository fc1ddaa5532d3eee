"""PNG figures with matplotlib (the Agg backend: no display needed, safe on servers).

Each figure function takes the frames of ``loading`` and a path, and returns the path written.
Role colours are the same as in the HTML transcripts (``exports.role_palette``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.analysis import metrics as m
from simulator.analysis.catalog import FIGURES
from simulator.analysis.exports import agent_roles, role_palette
from simulator.domain.errors import ConfigurationError

METRIC_LABELS = {
    "completion_tokens": "completion tokens",
    "prompt_tokens": "prompt tokens",
    "total_tokens": "total tokens",
    "words": "message length (words)",
    "chars": "message length (characters)",
    "latency_ms": "latency (ms)",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    _pyplot().close(fig)
    return path


def per_turn_figure(messages: pd.DataFrame, path: Path, metric: str = "completion_tokens") -> Path:
    """A line per role: the mean of ``metric`` at each agent turn (over the selected
    conversations), with the spread (min to max) shaded when there are several conversations."""
    if metric not in m.TURN_METRICS:
        raise ConfigurationError(
            f"unknown metric {metric!r}; choose from {', '.join(m.TURN_METRICS)}"
        )
    plt = _pyplot()
    data = m.per_turn(messages, metric)
    palette = role_palette(agent_roles(messages))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for role, color in palette.items():
        d = data[data["role"] == role].groupby("agent_turn")["value"]
        mean, lo, hi = d.mean(), d.min(), d.max()
        xs = [int(x) for x in mean.index]
        ax.plot(xs, mean.to_numpy(dtype=float), marker="o", ms=3, color=color, label=role)
        if data["conversation_id"].nunique() > 1:
            ax.fill_between(
                xs, lo.to_numpy(dtype=float), hi.to_numpy(dtype=float), color=color, alpha=0.15
            )
    label = METRIC_LABELS[metric]
    n = data["conversation_id"].nunique()
    ax.set_title(f"{label.capitalize()} per turn by role ({n} conversation{'s' * (n != 1)})")
    ax.set_xlabel("agent turn")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    if palette:
        ax.legend(title="role")
    return _save(fig, path)


def role_share_figure(messages: pd.DataFrame, path: Path) -> Path:
    """Bars per role: mean share of agent turns and of words over the selected conversations."""
    plt = _pyplot()
    roles = m.role_metrics(messages)
    palette = role_palette(agent_roles(messages))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = list(palette)
    turn = [float(roles.loc[roles["role"] == r, "turn_share"].mean()) for r in names]
    words = [float(roles.loc[roles["role"] == r, "word_share"].mean()) for r in names]
    xs = range(len(names))
    ax.bar(
        [x - 0.2 for x in xs],
        turn,
        width=0.4,
        color=[palette[r] for r in names],
        label="turn share",
    )
    ax.bar(
        [x + 0.2 for x in xs],
        words,
        width=0.4,
        color=[palette[r] for r in names],
        alpha=0.55,
        hatch="//",
        label="word share",
    )
    ax.set_xticks(list(xs), names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of the conversation")
    ax.set_title("Turn and word share by role")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def words_by_cell_figure(metrics: pd.DataFrame, path: Path) -> Path:
    """Mean words per agent message in each grid cell (agents per role, days, factors)."""
    plt = _pyplot()
    factors = [c for c in metrics.columns if c.startswith("factor_")]
    keys = ["cell_counts", *factors, "days"]
    cells = m.cell_metrics(metrics, by=keys)
    labels = []
    for _, row in cells.iterrows():
        parts = [str(row["cell_counts"])]
        parts += [f"{f.removeprefix('factor_')}={row[f]}" for f in factors if pd.notna(row[f])]
        parts.append(f"{row['days']} day{'s' * (row['days'] != 1)}")
        labels.append(" · ".join(parts))
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.35 * len(labels) + 1.5)))
    ax.barh(range(len(labels)), cells["mean_words_mean"].to_numpy(dtype=float), color="#3b6ea8")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("mean words per agent message")
    ax.set_title("Message length by grid cell")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def figure(name: str, conversations: pd.DataFrame, messages: pd.DataFrame, path: Path) -> Path:
    """Draw the figure named ``name`` (one of FIGURES)."""
    per_turn: dict[str, str] = {
        "tokens": "completion_tokens",
        "prompt-tokens": "prompt_tokens",
        "length": "words",
        "latency": "latency_ms",
    }
    draw: dict[str, Callable[[], Path]] = {
        "share": lambda: role_share_figure(messages, path),
        "cells": lambda: words_by_cell_figure(
            m.conversation_metrics(messages, conversations), path
        ),
    }
    if name in per_turn:
        return per_turn_figure(messages, path, per_turn[name])
    if name in draw:
        return draw[name]()
    raise ConfigurationError(f"unknown figure {name!r}; choose from {', '.join(FIGURES)}")
