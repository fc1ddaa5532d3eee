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


def _cell_labels(frame: pd.DataFrame) -> list[str]:
    """The ``cell`` label of each row, prefixed with its batch when several batches are shown
    (the same cell in two batches is two bars)."""
    batches = frame["batch_id"].astype("string").fillna("alone")
    several = batches.nunique() > 1
    return [
        f"{b[:8]} · {c}" if several else str(c)
        for b, c in zip(batches, frame["cell"].astype("string").fillna("?"), strict=True)
    ]


def _label_inches(labels: list[str]) -> float:
    """Room for the longest tick label at font size 8 (about 0.075 inch a character)."""
    return min(14.0, 0.075 * max((len(x) for x in labels), default=0))


def role_share_figure(messages: pd.DataFrame, path: Path) -> Path:
    """Per grid cell (``metrics.share_by_cell``: repeats pooled, nothing else), a bar of each
    role's mean share of the agent turns and one of its share of the words, stacked by role."""
    plt = _pyplot()
    shares = m.share_by_cell(messages)
    palette = role_palette(agent_roles(messages))
    batch = shares["batch_id"].astype("string").fillna("")
    shares = shares.assign(batch=batch)
    cells = shares.drop_duplicates(["batch", "cell_key"]).reset_index(drop=True)
    value = {
        (b, k, r): (t, w)
        for b, k, r, t, w in zip(
            shares["batch"],
            shares["cell_key"],
            shares["role"],
            shares["turn_share"].astype(float).fillna(0.0),
            shares["word_share"].astype(float).fillna(0.0),
            strict=True,
        )
    }
    labels = _cell_labels(cells)
    height = max(3.0, 0.45 * len(cells) + 1.8)
    width = 7.0 + _label_inches(labels)
    fig, axes = plt.subplots(1, 2, figsize=(width, height), sharey=True, squeeze=False)
    for i, (ax, title) in enumerate(zip(axes[0], ("turn share", "word share"), strict=True)):
        left = [0.0] * len(cells)
        for role, color in palette.items():
            values = [
                value.get((b, k, role), (0.0, 0.0))[i]
                for b, k in zip(cells["batch"], cells["cell_key"], strict=True)
            ]
            ax.barh(range(len(cells)), values, left=left, color=color, label=role)
            left = [x + v for x, v in zip(left, values, strict=True)]
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"mean {title}")
        ax.set_title(title.capitalize())
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(cells)), labels, fontsize=8)
    axes[0][0].invert_yaxis()
    if palette:
        axes[0][1].legend(title="role", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("Turn and word share by role, per grid cell")
    return _save(fig, path)


def words_by_cell_figure(metrics: pd.DataFrame, path: Path) -> Path:
    """Mean words per agent message in each grid cell (``cell_key``: agents per role, days,
    factors and the whole model set with its parameters; repeats pooled)."""
    plt = _pyplot()
    cells = m.cell_metrics(metrics)
    labels = _cell_labels(cells)
    fig, ax = plt.subplots(
        figsize=(5.0 + _label_inches(labels), max(3.0, 0.35 * len(labels) + 1.5))
    )
    ax.barh(range(len(labels)), cells["mean_words_mean"].to_numpy(dtype=float, na_value=0.0))
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
