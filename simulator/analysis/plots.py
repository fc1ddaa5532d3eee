"""PNG figures a paper can use (matplotlib, the Agg backend: no display needed, safe on servers).

Every aggregate a figure draws shows its 95 % interval (t for means, Wilson for shares:
``uncertainty``) and its n; figures are faceted by grid cell (or by what tells cells apart) and
never pool cells that differ in anything but the repeat; turn axes have whole-number ticks and
day boundaries marked; colours are the Okabe-Ito palette (distinguishable with the common colour
vision deficiencies), each series with its own marker too.

Each figure function returns a ``Figure``: the path written, the ``data`` it drew (one row per
aggregate: ``facet``, ``series``, ``x``, ``n``, ``mean``, ``sd``, ``ci_low``, ``ci_high``,
``interval``) and its ``facets``. The same data is embedded in the PNG (a text chunk,
``read_figure_data``), so a figure checked into a paper's repository says what it shows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from simulator.analysis import metrics as m
from simulator.analysis.catalog import FIGURES, game_figures
from simulator.analysis.facets import grid_order, short_labels
from simulator.analysis.game_tables import load_game_table, resolve, table_kinds
from simulator.analysis.uncertainty import describe
from simulator.domain.errors import ConfigurationError, NotFoundError
from simulator.domain.filters import ConversationFilter
from simulator.domain.game_data import Network, ScoreMatrix  # what a kind hands over to draw

if TYPE_CHECKING:
    from simulator.domain.game_data import GameKind, Kinds

#: Okabe and Ito (2008): eight colours told apart with the common colour vision deficiencies
#: (yellow last: it is hard to see on white).
OKABE_ITO = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#000000",
    "#F0E442",
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DATA_KEY = "simulator:figure"
DATA_COLUMNS = ("facet", "series", "x", "n", "mean", "sd", "ci_low", "ci_high", "interval")

METRIC_LABELS = {
    "completion_tokens": "completion tokens",
    "prompt_tokens": "prompt tokens",
    "total_tokens": "total tokens",
    "words": "message length (words)",
    "chars": "message length (characters)",
    "latency_ms": "latency (ms)",
}


@dataclass
class Figure:
    """A figure written to ``path``, with the data it drew (see the module docstring)."""

    path: Path
    title: str
    data: pd.DataFrame
    facets: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def style(i: int) -> tuple[str, str]:
    """The colour and marker of the i-th series."""
    return OKABE_ITO[i % len(OKABE_ITO)], MARKERS[(i // len(OKABE_ITO) + i) % len(MARKERS)]


def _jsonable(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


def _save(fig: Any, figure: Figure) -> Figure:
    figure.path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "title": figure.title,
        "facets": figure.facets,
        "columns": list(figure.data.columns),
        "rows": [[_jsonable(v) for v in row] for row in figure.data.itertuples(index=False)],
    }
    fig.savefig(
        figure.path,
        format="png",
        dpi=130,
        bbox_inches="tight",
        metadata={DATA_KEY: json.dumps(payload, ensure_ascii=True)},
    )
    _pyplot().close(fig)
    return figure


def read_figure_data(path: Path) -> tuple[str, list[str], pd.DataFrame]:
    """(title, facets, data) embedded in a PNG written by this module."""
    from PIL import Image

    with Image.open(path) as image:
        text = image.text.get(DATA_KEY)  # type: ignore[attr-defined]
    if text is None:
        raise ValueError(f"{path}: no figure data (not written by simulator plot)")
    payload = json.loads(text)
    return (
        payload["title"],
        payload["facets"],
        pd.DataFrame(payload["rows"], columns=payload["columns"]),
    )


def _grid(
    plt: Any, n: int, *, width: float = 5.2, height: float = 3.6, sharey: bool = True
) -> tuple[Any, list[Any]]:
    cols = min(3, max(1, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(width * cols, height * rows + 0.9),
        sharey=sharey,
        squeeze=False,
        layout="constrained",
    )
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _integer_ticks(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _wrap(text: str, width: int = 60) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def _n_text(ns: Sequence[int]) -> str:
    lo, hi = min(ns), max(ns)
    return f"n={lo}" if lo == hi else f"n={lo}–{hi}"


def _summary_row(values: pd.Series, **keys: Any) -> dict[str, Any]:
    s = describe(values)
    return {
        **keys,
        "n": s.n,
        "mean": s.mean,
        "sd": s.sd,
        "ci_low": s.ci_low,
        "ci_high": s.ci_high,
        "interval": s.interval,
    }


def _cells(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(batch, cell_key) of the frame's cells, in order of first appearance."""
    batches = (
        frame["batch_id"].astype("string").fillna("")
        if "batch_id" in frame
        else pd.Series([""] * len(frame))
    )
    return list(dict.fromkeys(zip(batches, frame["cell_key"].astype(str), strict=True)))


def _facet_titles(
    frame: pd.DataFrame, source: pd.DataFrame | None = None
) -> dict[tuple[str, str], str]:
    """(batch, cell_key) -> the cell's short label (computed from ``source``, a frame with every
    cell column, when ``frame`` lacks them), prefixed with its batch when the same cell ran in
    several batches."""
    labels = short_labels(frame if source is None else source)
    cells = _cells(frame)
    several = len({b for b, _ in cells}) > 1 and len({k for _, k in cells}) < len(cells)
    return {
        (b, k): (f"{b[:8] or 'alone'} · " if several else "") + labels.get(k, k) for b, k in cells
    }


# --------------------------------------------------------------------------- per turn


def _day_starts(frame: pd.DataFrame) -> list[tuple[int, int]]:
    """(first agent turn, day) of each day after the first, from one conversation."""
    if "day" not in frame.columns or frame["day"].isna().all():
        return []
    first = frame[frame["conversation_id"] == frame["conversation_id"].iloc[0]]
    starts = first.groupby("day")["agent_turn"].min().sort_index()
    return [
        (int(t), int(d)) for d, t in starts.items() if not pd.isna(d) and d != starts.index.min()
    ]


def trajectory_figure(
    frame: pd.DataFrame, value: str, path: Path, *, label: str | None = None, by: str = "role"
) -> Figure:
    """Per grid cell (a panel each), the mean of ``value`` at each agent turn, a line per ``by``
    (role) with its 95 % interval as a band and its n in the legend; dotted lines where a day
    begins. ``frame``: agent messages with ``agent_turn`` (``metrics.agent_messages``)."""
    plt = _pyplot()
    label = label or value
    frame = grid_order(frame[frame[value].notna()])
    if frame.empty:
        raise NotFoundError(f"no agent message has a value of {label}")
    titles = _facet_titles(frame)
    series_names = [str(s) for s in dict.fromkeys(frame[by].dropna())]
    styles = {s: style(i) for i, s in enumerate(series_names)}
    fig, axes = _grid(plt, len(titles))
    rows: list[dict[str, Any]] = []
    day_lines: dict[str, list[int]] = {}
    batches = frame["batch_id"].astype("string").fillna("")
    for ax, ((batch, key), title) in zip(axes, titles.items(), strict=True):
        cell = frame[(batches == batch) & (frame["cell_key"].astype(str) == key)]
        conversations = cell["conversation_id"].nunique()
        for s in series_names:
            mine = cell[cell[by].astype(str) == s]
            if mine.empty:
                continue
            points = [
                _summary_row(g[value], facet=title, series=s, x=int(t))
                for t, g in mine.groupby("agent_turn", sort=True)
            ]
            rows += points
            color, marker = styles[s]
            xs = [p["x"] for p in points]
            ys = [p["mean"] for p in points]
            ax.plot(
                xs,
                ys,
                marker=marker,
                ms=4,
                lw=1.8,
                color=color,
                label=f"{s} ({_n_text([p['n'] for p in points])})",
            )
            lo = [p["ci_low"] if p["ci_low"] is not None else p["mean"] for p in points]
            hi = [p["ci_high"] if p["ci_high"] is not None else p["mean"] for p in points]
            ax.fill_between(xs, lo, hi, color=color, alpha=0.18, lw=0)
        day_lines[title] = [turn for turn, _ in _day_starts(cell)]
        for turn, day in _day_starts(cell):
            ax.axvline(turn - 0.5, color="#555555", ls=":", lw=1)
            ax.annotate(
                f"day {day}",
                (turn - 0.5, 1),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12),
                textcoords="offset points",
                fontsize=8,
                color="#555555",
            )
        ax.set_title(
            _wrap(f"{title} ({conversations} conversation{'s' * (conversations != 1)})"), fontsize=9
        )
        ax.set_xlabel("agent turn")
        _integer_ticks(ax)
        ax.grid(alpha=0.3)
        ax.legend(title=by, fontsize=8, title_fontsize=8)
    for i, ax in enumerate(axes):
        if i % min(3, len(axes)) == 0:  # the first panel of each row
            ax.set_ylabel(label)
    figure_title = (
        f"{label[:1].upper() + label[1:] if ':' not in label else label} per agent turn by {by}: "
        "mean and 95% interval per grid cell"
    )
    fig.suptitle(figure_title, fontsize=11)
    data = pd.DataFrame(rows, columns=list(DATA_COLUMNS))
    extra = {"day_starts": day_lines}
    return _save(fig, Figure(path, figure_title, data, list(titles.values()), extra))


def per_turn_figure(
    messages: pd.DataFrame, path: Path, metric: str = "completion_tokens"
) -> Figure:
    """``trajectory_figure`` of a message metric (tokens, words, latency) by role."""
    if metric not in m.TURN_METRICS:
        raise ConfigurationError(
            f"unknown metric {metric!r}; choose from {', '.join(m.TURN_METRICS)}"
        )
    agent = m.agent_messages(messages)
    return trajectory_figure(agent, metric, path, label=METRIC_LABELS[metric])


# --------------------------------------------------------------------------- bars


def _bars(
    ax: Any,
    labels: Sequence[str],
    points: Sequence[dict[str, Any]],
    *,
    colors: Sequence[str],
    offset: float = 0.0,
    height: float = 0.7,
    name: str | None = None,
    limits: tuple[float, float] | None = None,
) -> None:
    """Horizontal bars of ``points`` (mean, ci, n) with 95 % whiskers and ``n=`` beside."""
    ys = [i + offset for i in range(len(labels))]
    means = [p["mean"] if p["mean"] is not None else 0.0 for p in points]
    lo = [
        max(0.0, mu - p["ci_low"]) if p["ci_low"] is not None else 0.0
        for mu, p in zip(means, points, strict=True)
    ]
    hi = [
        max(0.0, p["ci_high"] - mu) if p["ci_high"] is not None else 0.0
        for mu, p in zip(means, points, strict=True)
    ]
    ax.barh(ys, means, height=height, color=colors, label=name, alpha=0.9)
    ax.errorbar(means, ys, xerr=[lo, hi], fmt="none", ecolor="#222222", capsize=3, lw=1)
    for y, mu, h, p in zip(ys, means, hi, points, strict=True):
        ax.annotate(
            f"n={p['n']}",
            (mu + h, y),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
    if limits is not None:
        ax.set_xlim(*limits)


def role_share_figure(messages: pd.DataFrame, path: Path) -> Figure:
    """Per grid cell (``metrics.share_by_cell``: repeats pooled, nothing else), each role's mean
    share of the agent turns and of the words, a bar per role with its 95 % interval and n."""
    plt = _pyplot()
    roles = grid_order(m.role_metrics(messages))
    if roles.empty:
        raise NotFoundError("no agent message: no shares to draw")
    titles = _facet_titles(roles, messages)
    role_names = [str(r) for r in dict.fromkeys(roles["role"].dropna())]
    cells = list(titles)
    labels = [_wrap(titles[c], 45) for c in cells]
    height = max(3.0, 0.5 * len(cells) * max(1, len(role_names)) * 0.6 + 1.8)
    fig, axes = plt.subplots(1, 2, figsize=(13, height), sharey=True, squeeze=False)
    rows: list[dict[str, Any]] = []
    width = 0.8 / max(1, len(role_names))
    batches = roles["batch_id"].astype("string").fillna("")
    for ax, measure, title in zip(
        axes[0], ("turn_share", "word_share"), ("turn share", "word share"), strict=True
    ):
        for i, role in enumerate(role_names):
            points = []
            for batch, key in cells:
                mine = roles[
                    (batches == batch)
                    & (roles["cell_key"].astype(str) == key)
                    & (roles["role"] == role)
                ]
                points.append(
                    _summary_row(mine[measure], facet=title, series=role, x=titles[(batch, key)])
                )
            rows += points
            color, _ = style(i)
            _bars(
                ax,
                labels,
                points,
                colors=[color] * len(points),
                offset=(i - (len(role_names) - 1) / 2) * width,
                height=width * 0.95,
                name=role,
                limits=(0, 1.12),
            )
        ax.set_xlabel(f"mean {title} (95% interval)")
        ax.set_title(title.capitalize())
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(cells)), labels, fontsize=8)
    axes[0][0].invert_yaxis()
    axes[0][1].legend(title="role", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure_title = "Turn and word share by role, per grid cell"
    fig.suptitle(figure_title)
    data = pd.DataFrame(rows, columns=list(DATA_COLUMNS))
    return _save(fig, Figure(path, figure_title, data, ["turn share", "word share"]))


def words_by_cell_figure(metrics: pd.DataFrame, path: Path) -> Figure:
    """Mean words per agent message in each grid cell (``cell_key``: agents per role, days,
    factors and the whole model set with its parameters; repeats pooled) with its 95 % interval
    and n."""
    plt = _pyplot()
    if metrics.empty:
        raise NotFoundError("no conversation: no cells to draw")
    metrics = grid_order(metrics)
    titles = _facet_titles(metrics)
    cells = list(titles)
    batches = metrics["batch_id"].astype("string").fillna("")
    points = [
        _summary_row(
            metrics[(batches == b) & (metrics["cell_key"].astype(str) == k)]["mean_words"],
            facet="",
            series="mean words",
            x=titles[(b, k)],
        )
        for b, k in cells
    ]
    labels = [_wrap(titles[c], 45) for c in cells]
    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.45 * len(cells) + 1.6)))
    _bars(ax, labels, points, colors=[OKABE_ITO[0]] * len(points))
    ax.set_yticks(range(len(cells)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("mean words per agent message (95% interval)")
    figure_title = "Message length by grid cell"
    ax.set_title(figure_title)
    ax.grid(axis="x", alpha=0.3)
    data = pd.DataFrame(points, columns=list(DATA_COLUMNS))
    return _save(fig, Figure(path, figure_title, data, [""]))


def outcome_figure(
    frame: pd.DataFrame, value: str, path: Path, *, by: str | None = None, label: str | None = None
) -> Figure:
    """An outcome per grid cell: the share of yes (Wilson interval) or the mean (t interval) of
    ``value`` over the cell's conversations, with n; the cells' levels of the factor ``by`` on
    the x axis (a colour each), a panel for each combination of everything else that tells the
    cells apart (no two cells are ever pooled). ``frame``: one row per conversation."""
    plt = _pyplot()
    label = label or value
    frame = grid_order(frame[frame[value].notna()])
    if frame.empty:
        raise NotFoundError(f"no conversation has a value of {label}")
    column = None
    if by is not None:
        column = by if by in frame.columns else f"factor_{by}"
        if column not in frame.columns:
            factors = [c.removeprefix("factor_") for c in frame.columns if c.startswith("factor_")]
            raise ConfigurationError(
                f"--by {by}: not a study factor ({', '.join(factors) or 'none'})"
            )
    facet_of = short_labels(frame, exclude=[column] if column else [], unique=False)
    cells = _cells(frame)
    batches = frame["batch_id"].astype("string").fillna("")
    levels = [str(v) for v in dict.fromkeys(frame[column].dropna())] if column else []
    facets = list(dict.fromkeys(facet_of.get(k, "") for _, k in cells))
    fig, axes = _grid(plt, len(facets), width=max(4.5, 1.1 * max(1, len(levels)) + 2.5), height=4.0)
    proportion = str(frame[value].dtype) in ("boolean", "bool")
    rows: list[dict[str, Any]] = []
    for ax, facet in zip(axes, facets, strict=True):
        mine = [(b, k) for b, k in cells if facet_of.get(k, "") == facet]
        points = []
        for b, k in mine:
            group = frame[(batches == b) & (frame["cell_key"].astype(str) == k)]
            x = str(group[column].iloc[0]) if column else short_labels(frame).get(k, k)
            points.append(_summary_row(group[value], facet=facet, series=x, x=x))
        rows += points
        xs = list(range(len(points)))
        colors = [
            style(levels.index(p["x"]) if p["x"] in levels else i)[0] for i, p in enumerate(points)
        ]
        means = [p["mean"] or 0.0 for p in points]
        ax.bar(xs, means, color=colors, alpha=0.9, width=0.7)
        err_lo = [
            mu - p["ci_low"] if p["ci_low"] is not None else 0
            for mu, p in zip(means, points, strict=True)
        ]
        err_hi = [
            p["ci_high"] - mu if p["ci_high"] is not None else 0
            for mu, p in zip(means, points, strict=True)
        ]
        ax.errorbar(xs, means, yerr=[err_lo, err_hi], fmt="none", ecolor="#222222", capsize=4, lw=1)
        for position, p, top in zip(xs, points, err_hi, strict=True):
            ax.annotate(
                f"n={p['n']}",
                (position, (p["mean"] or 0) + top),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                fontsize=8,
            )
        ax.set_xticks(xs, [_wrap(p["x"], 14) for p in points], fontsize=8)
        if facet:
            ax.set_title(_wrap(facet, 50), fontsize=9)
        if column:
            ax.set_xlabel(column.removeprefix("factor_"))
        if proportion:
            ax.set_ylim(0, 1.12)
        ax.grid(axis="y", alpha=0.3)
    what = "share" if proportion else "mean"
    interval = "Wilson" if proportion else "t"
    axes[0].set_ylabel(f"{what} ({interval} 95% interval)")
    figure_title = f"{label}: {what} per grid cell" + (
        f" by {column.removeprefix('factor_')}" if column else ""
    )
    fig.suptitle(_wrap(figure_title, 90), fontsize=11)
    data = pd.DataFrame(rows, columns=list(DATA_COLUMNS))
    return _save(fig, Figure(path, figure_title, data, facets))


# --------------------------------------------------------------------------- games


def game_runs_figure(table: pd.DataFrame, value: str, path: Path, *, clock: str) -> Figure:
    """A game measure over rounds (steps) across runs: one thin line per run, a thick mean per
    condition with its 95 % interval as a band and its n (runs) in the legend."""
    plt = _pyplot()
    table = table[table[value].notna()]
    if table.empty:
        raise NotFoundError(f"no {clock} has a value of {value}")
    labels = short_labels(table, key="condition_key")
    conditions = list(dict.fromkeys(table["condition_key"].astype(str)))
    fig, ax = plt.subplots(figsize=(9, 5))
    rows: list[dict[str, Any]] = []
    runs = []
    for i, key in enumerate(conditions):
        color, marker = style(i)
        mine = table[table["condition_key"].astype(str) == key]
        for _, run in mine.groupby("conversation_id", sort=False):
            run = run.sort_values(clock)
            ax.plot(run[clock], run[value].astype(float), color=color, lw=0.8, alpha=0.35)
            runs.append(
                run[["conversation_id", clock, value]].assign(condition=labels.get(key, key))
            )
        points = [
            {**_summary_row(g[value], facet="", series=labels.get(key, key), x=int(t))}
            for t, g in mine.groupby(clock, sort=True)
        ]
        rows += points
        xs = [p["x"] for p in points]
        n_runs = mine["conversation_id"].nunique()
        ax.plot(
            xs,
            [p["mean"] for p in points],
            color=color,
            lw=2.8,
            marker=marker,
            ms=5,
            label=_wrap(f"{labels.get(key, key)} (n={n_runs} runs)", 50),
        )
        lo = [p["ci_low"] if p["ci_low"] is not None else p["mean"] for p in points]
        hi = [p["ci_high"] if p["ci_high"] is not None else p["mean"] for p in points]
        ax.fill_between(xs, lo, hi, color=color, alpha=0.15, lw=0)
    values = table[value].astype(float)
    if values.min() >= 0 and values.max() <= 1:  # a rate: its interval is drawn within 0..1
        ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(clock)
    ax.set_ylabel(value.replace("_", " "))
    _integer_ticks(ax)
    ax.grid(alpha=0.3)
    ax.legend(title="condition: mean, 95% interval", fontsize=8, title_fontsize=8, loc="best")
    what = value.replace("_", " ").capitalize()
    figure_title = f"{what} per {clock}: each run (thin) and the mean per condition (thick)"
    ax.set_title(_wrap(figure_title, 80), fontsize=10)
    data = pd.DataFrame(rows, columns=list(DATA_COLUMNS))
    runs_frame = pd.concat(runs, ignore_index=True) if runs else pd.DataFrame()
    return _save(fig, Figure(path, figure_title, data, [""], {"runs": runs_frame}))


def network_figure(network: Network, path: Path, *, title: str = "", facet: str = "") -> Figure:
    """A directed network (a kind's ``Network``, e.g. reputation ties after a step): nodes
    coloured by group (legend), sized by how many hold a tie to them (legend), mutual ties solid
    and one-way ties dashed (legend)."""
    import networkx as nx
    from matplotlib.lines import Line2D

    plt = _pyplot()
    g = nx.DiGraph()
    g.add_nodes_from(node.name for node in network.nodes)
    g.add_edges_from(network.edges)
    group_of = {node.name: node.group for node in network.nodes}
    score_of = {node.name: node.score for node in network.nodes}
    groups = [str(x) for x in dict.fromkeys(group_of.values())]
    colors = {grp: style(i)[0] for i, grp in enumerate(groups)}
    fig, ax = plt.subplots(figsize=(8, 7))
    pos = nx.spring_layout(g, seed=network.layout_seed)
    size = {n: 120 + 80 * g.in_degree(n) for n in g.nodes}
    mutual = [(a, b) for a, b in g.edges if g.has_edge(b, a)]
    one_way = [(a, b) for a, b in g.edges if not g.has_edge(b, a)]
    nx.draw_networkx_edges(
        g, pos, ax=ax, edgelist=mutual, width=1.2, edge_color="#444444", arrows=True, arrowsize=8
    )
    nx.draw_networkx_edges(
        g,
        pos,
        ax=ax,
        edgelist=one_way,
        width=0.8,
        style="dashed",
        edge_color="#888888",
        arrows=True,
        arrowsize=8,
    )
    nx.draw_networkx_nodes(
        g,
        pos,
        ax=ax,
        node_size=[size[n] for n in g.nodes],
        node_color=[colors[group_of[n]] for n in g.nodes],
        edgecolors="white",
    )
    nx.draw_networkx_labels(g, pos, ax=ax, font_size=7)
    handles = [
        Line2D([], [], marker="o", ls="", color=colors[grp], ms=9, label=grp) for grp in groups
    ]
    handles += [
        Line2D([], [], color="#444444", lw=1.2, label="mutual tie"),
        Line2D([], [], color="#888888", lw=0.8, ls="--", label="one-way tie"),
    ]
    degrees = sorted({g.in_degree(n) for n in g.nodes})
    for d in sorted({degrees[0], degrees[len(degrees) // 2], degrees[-1]}) if degrees else []:
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                ls="",
                color="#bbbbbb",
                ms=math.sqrt(120 + 80 * d) / 1.6,
                label=f"held by {d}",
            )
        )
    ax.legend(
        handles=handles,
        title="group · tie · in-degree",
        fontsize=8,
        title_fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    figure_title = title or network.title
    ax.set_title(figure_title)
    ax.axis("off")
    nodes = pd.DataFrame(
        [
            {
                "facet": facet,
                "series": group_of[n],
                "x": n,
                "n": g.in_degree(n),
                "mean": score_of[n],
                "sd": None,
                "ci_low": None,
                "ci_high": None,
                "interval": "in-degree, score",
            }
            for n in g.nodes
        ],
        columns=list(DATA_COLUMNS),
    )
    edges = pd.DataFrame(
        [{"source": a, "target": b, "mutual": g.has_edge(b, a)} for a, b in g.edges]
    )
    return _save(
        fig, Figure(path, figure_title, nodes, [facet], {"edges": edges, "groups": groups})
    )


def heatmap_figure(matrix: ScoreMatrix, path: Path, *, title: str = "", facet: str = "") -> Figure:
    """Scores one member holds of another (a kind's ``ScoreMatrix``, e.g. reputation records
    after a step): holder (row) by target (column), on a diverging colour-blind-safe scale with
    its colour bar; grey where no score is held, the mean where several are."""
    plt = _pyplot()
    names = list(matrix.names)
    index = {n: i for i, n in enumerate(names)}
    grid = [[float("nan")] * len(names) for _ in names]
    counts = [[0] * len(names) for _ in names]
    for holder, target, score in matrix.scores:
        i, j = index.get(holder), index.get(target)
        if i is None or j is None:
            continue
        prev, k = grid[i][j], counts[i][j]
        grid[i][j] = score if k == 0 else (prev * k + score) / (k + 1)
        counts[i][j] = k + 1
    side = max(5.5, 0.32 * len(names) + 2.5)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    import matplotlib
    import numpy as np

    # no score: grey, never the colour of a neutral score
    cmap = matplotlib.colormaps["PuOr"].with_extremes(bad="#c8c8c8")
    image = ax.imshow(
        np.ma.masked_invalid(np.array(grid)), cmap=cmap, vmin=matrix.low, vmax=matrix.high
    )
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel(matrix.column_label)
    ax.set_ylabel(matrix.row_label)
    bar = fig.colorbar(image, ax=ax, shrink=0.8)
    bar.set_label(f"{matrix.scale} (grey: no record)")
    figure_title = title or matrix.title
    ax.set_title(figure_title)
    rows = [
        {
            "facet": facet,
            "series": names[i],
            "x": names[j],
            "n": counts[i][j],
            "mean": grid[i][j],
            "sd": None,
            "ci_low": None,
            "ci_high": None,
            "interval": "score",
        }
        for i in range(len(names))
        for j in range(len(names))
        if counts[i][j]
    ]
    data = pd.DataFrame(rows, columns=list(DATA_COLUMNS))
    return _save(fig, Figure(path, figure_title, data, [facet]))


# --------------------------------------------------------------------------- by name


def figure(name: str, conversations: pd.DataFrame, messages: pd.DataFrame, path: Path) -> Figure:
    """Draw one of the figures that need nothing but the conversations and their messages."""
    per_turn: dict[str, str] = {
        "tokens": "completion_tokens",
        "prompt-tokens": "prompt_tokens",
        "length": "words",
        "latency": "latency_ms",
    }
    draw: dict[str, Callable[[], Figure]] = {
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


#: The figures drawn from the messages alone (``--figure all`` draws these).
BASIC_FIGURES = ("tokens", "prompt-tokens", "length", "latency", "share", "cells")


@dataclass(frozen=True)
class PlotOptions:
    """What the figures beyond the basic ones need (see ``simulator plot --help``)."""

    score: str | None = None
    outcome: str | None = None
    by: str | None = None
    role: str | None = None
    measure: str | None = None
    step: int | None = None


async def plot(
    store: Any,
    flt: ConversationFilter,
    names: Sequence[str],
    paths: Sequence[Path],
    options: PlotOptions,
    *,
    kinds: Kinds | None = None,
) -> list[Figure]:
    """Load what the named figures need for the conversations ``flt`` selects and draw them
    (a game's figures are its kind's: ``kinds``, else the registry installed for the process)."""
    from simulator.analysis.loading import load_all

    out: list[Figure] = []
    basic = [(n, p) for n, p in zip(names, paths, strict=True) if n in BASIC_FIGURES]
    if basic:
        conversations, messages = await load_all(store, flt)
        if conversations.empty:
            raise NotFoundError("no conversation matches these filters; nothing was drawn")
        out += [figure(n, conversations, messages, p) for n, p in basic]
    for name, path in zip(names, paths, strict=True):
        if name in BASIC_FIGURES:
            continue
        out.append(await _special(store, flt, name, path, options, kinds))
    return out


async def _special(
    store: Any, flt: ConversationFilter, name: str, path: Path, o: PlotOptions, kinds: Kinds | None
) -> Figure:
    if name in ("trajectory", "outcome"):
        from simulator.analysis.study import load_study, measure

        study = await load_study(store, flt)
        if name == "trajectory":
            if not o.score:
                raise ConfigurationError(
                    "--figure trajectory needs --score NAME (a score of messages)"
                )
            score = measure(study, o.score, unit="message")
            if score.unit != "message":
                raise ConfigurationError(
                    f"--score {o.score}: a score of messages, not of whole conversations"
                )
            return trajectory_figure(score.frame, score.column, path, label=score.name)
        if not o.outcome:
            raise ConfigurationError("--figure outcome needs --outcome NAME (and --by FACTOR)")
        outcome = measure(study, o.outcome, role=o.role)
        if outcome.unit == "message":  # conversations are the units, not their messages
            outcome = measure(study, o.outcome, per="conversation", role=o.role)
        return outcome_figure(outcome.frame, outcome.column, path, by=o.by, label=outcome.column)
    registry = resolve(kinds)
    if name in table_kinds(registry):
        return await _game_runs(store, flt, name, path, o, registry)
    drawn = {k.name: k for k in map(registry.get, registry.names()) if name in k.figures}
    if drawn:
        return await _snapshot_figure(store, flt, name, path, o, drawn)
    known = [*FIGURES, *game_figures(registry)]
    raise ConfigurationError(f"unknown figure {name!r}; choose from {', '.join(known)}")


async def _game_runs(
    store: Any, flt: ConversationFilter, name: str, path: Path, o: PlotOptions, kinds: Kinds
) -> Figure:
    """A measure of a game table per round (step) over the selected runs."""
    table = await load_game_table(store, name, flt, kinds=kinds)
    kind = kinds.get(str(table["experiment_kind"].iloc[0])) if len(table) else None
    declared = kind.tables[name] if kind is not None else None
    value = o.measure or (declared.measure if declared is not None else None)
    if kind is None or declared is None or value is None:
        raise NotFoundError(f"the selected runs have no {name} to draw")
    if value not in table.columns:
        numeric = [
            c
            for c in table.columns
            if pd.api.types.is_numeric_dtype(table[c]) and not c.startswith(("param_", "count_"))
        ]
        raise ConfigurationError(
            f"--measure {value}: not a column of the {name} table ({', '.join(numeric)})"
        )
    return game_runs_figure(table, value, path, clock=kind.clock)


async def _snapshot_figure(
    store: Any,
    flt: ConversationFilter,
    name: str,
    path: Path,
    o: PlotOptions,
    drawn: dict[str, GameKind],
) -> Figure:
    """A kind's figure of one run after a round or step (``--step``, default the last)."""
    from simulator.analysis.loading import select_conversations

    convs, _ = await select_conversations(store, flt)
    runs = [c for c in convs if c.kind.value in drawn]
    if len(runs) != 1:
        raise ConfigurationError(
            f"--figure {name} draws one {' or '.join(drawn)} run; the filters select "
            f"{len(runs)} (choose one with --conversation ID)"
        )
    kind = drawn[runs[0].kind.value]
    by_step = dict(await store.states.list(runs[0].id))
    if not by_step:
        raise NotFoundError(f"conversation {runs[0].id} has no stored {kind.clock}s")
    step = max(by_step) if o.step is None else o.step
    if step not in by_step:
        raise ConfigurationError(
            f"--step {step}: the run has {kind.clock}s {min(by_step)}..{max(by_step)}"
        )
    data = kind.figures[name].data(step, by_step[step])
    facet = f"{kind.clock} {step}"
    if isinstance(data, Network):
        return network_figure(data, path, facet=facet)
    return heatmap_figure(data, path, facet=facet)


__all__ = [
    "BASIC_FIGURES",
    "DATA_COLUMNS",
    "OKABE_ITO",
    "Figure",
    "PlotOptions",
    "figure",
    "game_runs_figure",
    "heatmap_figure",
    "network_figure",
    "outcome_figure",
    "per_turn_figure",
    "plot",
    "read_figure_data",
    "role_share_figure",
    "trajectory_figure",
    "words_by_cell_figure",
]
