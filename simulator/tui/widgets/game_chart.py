"""A live chart of one game conversation for the run monitor.

What is drawn is the kind's to say (its ``Chart``, declared in its package under scenarios/): the
series of each point, which axis each goes on, the per-member lines and the caption's values; for
instance the commons resource (left axis) and each member's credits (right axis) at the end of
every round, or the reputation games' cooperation share and network ties at the end of every step.
This widget draws any of them and parses nothing itself.

The widget never reads the database or the event bus: the screen gives it points, from the
stored snapshots (``points_from_states``) and from live events (``point_from_event``), with
``add``; ``flush`` redraws at most once per ``MIN_REDRAW_S`` and only what changed, so a fast
game costs the UI one small repaint a second. Points are kept by round/step, so a point that
arrives twice (loaded and live) is drawn once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from simulator.scenarios.kind import Chart, GamePoint
from simulator.scenarios.registry import KINDS
from simulator.tui.widgets.ticks import tick_args, whole_ticks

MIN_REDRAW_S = 1.0
MAX_MEMBER_LINES = 6  # more members than this: their mean instead of a line each

SERIES_COLORS = [(31, 119, 180), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
RIGHT_COLOR = (255, 127, 14)
MEMBER_COLORS = [
    (255, 127, 14),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
]


# --------------------------------------------------------------------------- points from data


def chart_of(kind: str | None) -> Chart | None:
    """The chart ``kind`` declares (None: a kind without one, or unknown)."""
    if not kind or kind not in KINDS:
        return None
    return KINDS.get(kind).chart


def clock_of(kind: str | None) -> str:
    return KINDS.get(kind).clock if kind and kind in KINDS else "round"


def points_from_states(
    kind: str | None, states: Sequence[tuple[int, Mapping[str, Any]]]
) -> list[GamePoint]:
    """The points of a stored run of ``kind``, from its snapshots (the kind's ``Chart.points``)."""
    chart = chart_of(kind)
    return chart.points(states) if chart is not None and states else []


def point_from_event(event: Any, kind: str | None) -> GamePoint | None:
    """A point of a run of ``kind`` from an engine event (the kind's ``Chart.point``); None for
    every event that is not one."""
    chart = chart_of(kind)
    return chart.point(event) if chart is not None else None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


# --------------------------------------------------------------------------- the widget


class GameChart(Vertical):
    """A game's series per round or step, as its kind's ``Chart`` declares them."""

    DEFAULT_CSS = """
    GameChart {
        height: 1fr;
        border: round $primary 50%;
        padding: 0 1;
    }
    GameChart > .game-chart--caption {
        height: 2;
        color: $text-muted;
    }
    GameChart > PlotextPlot {
        height: 1fr;
    }
    """

    def __init__(
        self,
        kind: str | None = None,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.kind = kind
        #: What is drawn, by round/step (read by tests and callers).
        self.points: dict[int, GamePoint] = {}
        self.total: int | None = None  # rounds/steps of the run, once a point says
        self.draws = 0
        self._dirty = True
        self._drawn_at = 0.0

    def compose(self) -> ComposeResult:
        from textual_plotext import PlotextPlot  # plotext loads only when a game is shown

        yield Static("", classes="game-chart--caption", markup=False)
        yield PlotextPlot()

    def on_mount(self) -> None:
        self.flush(force=True)

    # ------------------------------------------------------------------ data

    def reset(self, kind: str | None, points: Iterable[GamePoint] = ()) -> None:
        """Show another conversation (of ``kind``) with these points."""
        self.kind = kind
        self.points, self.total = {}, None
        self.add(points)
        self._dirty = True
        self.flush(force=True)

    def add(self, points: Iterable[GamePoint]) -> None:
        """New points (drawn at the next ``flush``)."""
        for p in points:
            self.total = p.total or self.total  # a live round_end record does not say it
            self.points[p.x] = p
            self._dirty = True

    @property
    def xs(self) -> list[int]:
        return sorted(self.points)

    # ------------------------------------------------------------------ drawing

    def flush(self, *, force: bool = False) -> None:
        """Redraw when something changed, at most once per ``MIN_REDRAW_S`` (unless ``force``),
        and only while the chart is shown."""
        if not self._dirty or not self.is_mounted or not self.display:
            return
        now = time.monotonic()
        if not force and now - self._drawn_at < MIN_REDRAW_S:
            return
        self._drawn_at = now
        self._dirty = False
        self._draw()

    def caption(self) -> str:
        chart = chart_of(self.kind)
        if chart is None:
            return ""
        clock = clock_of(self.kind)
        points = [self.points[x] for x in self.xs]
        if not points:
            return f"{chart.title}\nNo {clock} has ended yet."
        last = points[-1]
        of = f"/{self.total}" if self.total else ""
        first, *rest = chart.series
        head = f"{clock.capitalize()} {last.x}{of} · {first.label} "
        head += _fmt(last.values.get(first.key), first.digits)
        parts = [f"{s.label} {_fmt(last.values.get(s.key), s.digits)}" for s in rest]
        if chart.members is not None:
            n = len(last.members)
            parts.append(
                f"{chart.members}: {n} member{'' if n == 1 else 's'}, "
                f"{sum(last.members.values()):.1f} in all"
            )
        return head + "\n" + " · ".join(parts)

    def _draw(self) -> None:
        from textual_plotext import PlotextPlot

        self.query_one(".game-chart--caption", Static).update(self.caption())
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        xs = self.xs
        points = [self.points[x] for x in xs]
        chart = chart_of(self.kind)
        if chart is not None and points:
            for i, s in enumerate(chart.series):
                if not s.plotted:
                    continue
                color = s.color or SERIES_COLORS[i % len(SERIES_COLORS)]
                values = [p.values.get(s.key) for p in points]
                self._series(plt, xs, values, s.label, s.side, color)
            if chart.members is not None:
                self._members(plt, xs, points, chart.members)
            plt.xlabel(clock_of(self.kind))
        if xs:
            plt.xticks(*tick_args(whole_ticks(xs[0], xs[-1])))  # rounds and steps are whole
        self.draws += 1
        plot.refresh()

    def _members(self, plt: Any, xs: list[int], points: list[GamePoint], label: str) -> None:
        """A line per member on the right axis, or their mean when there are many."""
        members = sorted({m for p in points for m in p.members}, key=_member_order)
        if len(members) <= MAX_MEMBER_LINES:
            for i, member in enumerate(members):
                values = [p.members.get(member) for p in points]
                color = MEMBER_COLORS[i % len(MEMBER_COLORS)]
                self._series(plt, xs, values, member, "right", color)
            return
        mean = [(sum(p.members.values()) / len(p.members)) if p.members else None for p in points]
        self._series(plt, xs, mean, f"mean {label}", "right", RIGHT_COLOR)

    @staticmethod
    def _series(
        plt: Any,
        xs: list[int],
        values: list[float | None],
        label: str,
        side: str,
        color: tuple[int, int, int] = SERIES_COLORS[0],
    ) -> None:
        pairs = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
        if not pairs:
            return
        plt.plot(
            [x for x, _ in pairs],
            [v for _, v in pairs],
            label=label,
            color=color,
            marker="braille",
            yside=side,
        )


def _member_order(name: str) -> tuple[str, int]:
    """``Member 2`` before ``Member 10``."""
    head, _, tail = name.rpartition(" ")
    return (head, int(tail)) if tail.isdigit() else (name, 0)
