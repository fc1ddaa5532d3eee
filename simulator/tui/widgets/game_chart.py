"""A live chart of one game conversation for the run monitor.

- commons: the resource (left axis) and each member's credits (right axis) at the end of every
  round;
- reputation: the cooperation share (left axis) and the network's ties (right axis) at the end of
  every step.

The widget never reads the database or the event bus: the screen gives it points, from the
stored snapshots (``points_from_states``) and from live events (``point_from_event``), with
``add``; ``flush`` redraws at most once per ``MIN_REDRAW_S`` and only what changed, so a fast
game costs the UI one small repaint a second. Points are kept by round/step, so a point that
arrives twice (loaded and live) is drawn once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from simulator.tui.widgets.ticks import tick_args, whole_ticks

MIN_REDRAW_S = 1.0
MAX_MEMBER_LINES = 6  # more members than this: their mean credits instead of a line each

RESOURCE_COLOR = (31, 119, 180)
LEFT_COLOR = (44, 160, 44)
RIGHT_COLOR = (255, 127, 14)
MEMBER_COLORS = [
    (255, 127, 14),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
]


@dataclass
class GamePoint:
    """The state at the end of a round (commons) or step (reputation)."""

    x: int
    values: dict[str, float | None] = field(default_factory=dict)  # series -> value
    credits: dict[str, float] = field(default_factory=dict)  # commons: member -> credits
    total: int | None = None  # rounds/steps of the run, when known


# --------------------------------------------------------------------------- points from data


def commons_point(data: dict[str, Any]) -> GamePoint | None:
    """A commons ``round_end`` record (the data of the round's last system message)."""
    if data.get("event") != "round_end" or "round" not in data:
        return None
    return GamePoint(
        x=int(data["round"]),
        values={"resource": _num(data.get("resource"))},
        credits={k: float(v) for k, v in (data.get("credits") or {}).items()},
    )


def reputation_point(step: int, metrics: dict[str, Any], total: int | None = None) -> GamePoint:
    return GamePoint(
        x=int(step),
        values={
            "cooperation": _num(metrics.get("cooperation")),
            "ties": _num(metrics.get("edges")),
            "density": _num(metrics.get("density")),
        },
        total=total,
    )


def points_from_states(kind: str, states: list[tuple[int, dict[str, Any]]]) -> list[GamePoint]:
    """The points of a stored run: commons from its latest snapshot's round records, reputation
    from every step's metrics."""
    if not states:
        return []
    if kind == "commons":
        _, latest = max(states, key=lambda s: s[0])
        params = latest.get("params") or {}
        total = params.get("rounds")
        records = latest.get("rounds") or []
        out = [_commons_start(latest, records, total)]
        for rec in records:
            out.append(
                GamePoint(
                    x=int(rec["round"]),
                    values={"resource": _num(rec.get("resource_after_growth"))},
                    credits={k: float(v) for k, v in (rec.get("credits_end") or {}).items()},
                    total=total,
                )
            )
        return out
    if kind == "reputation":
        points = []
        for step, data in sorted(states, key=lambda s: s[0]):
            metrics = data.get("metrics")
            if isinstance(metrics, dict):
                total = (data.get("params") or {}).get("steps")
                points.append(reputation_point(step, metrics, total))
        return points
    return []


def _commons_start(
    snapshot: dict[str, Any], records: list[dict[str, Any]], total: int | None
) -> GamePoint:
    """Round 0: the lake and the founding members' credits before the first round."""
    founders = [m for m in snapshot.get("members") or [] if not m.get("born_round")]
    if records:
        resource = _num(records[0].get("resource_start"))
        start = float((snapshot.get("params") or {}).get("start_credits", 0.0))
        credits = {m["name"]: start for m in founders}
    else:  # the snapshot is the start itself
        resource = _num((snapshot.get("world") or {}).get("resource"))
        credits = {m["name"]: float(m.get("credits", 0.0)) for m in founders}
    return GamePoint(x=0, values={"resource": resource}, credits=credits, total=total)


def point_from_event(event: Any) -> GamePoint | None:
    """A point from an engine event: a commons ``round_end`` message (``MessageStored``) or a
    reputation ``StepEnded``; None for every other event."""
    message = getattr(event, "message", None)
    if message is not None:
        data = getattr(message, "data", None)
        if isinstance(data, dict) and data.get("event") == "round_end":
            return commons_point(data)
        return None
    metrics = getattr(event, "metrics", None)
    step = getattr(event, "step", None)
    if isinstance(metrics, dict) and isinstance(step, int):
        return reputation_point(step, metrics, getattr(event, "steps", None))
    return None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


# --------------------------------------------------------------------------- the widget


class GameChart(Vertical):
    """Resource and credits per round (commons), or cooperation and ties per step (reputation)."""

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
        points = [self.points[x] for x in self.xs]
        if self.kind == "commons":
            if not points:
                return "Resource and credits per round\nNo round has ended yet."
            last = points[-1]
            of = f"/{self.total}" if self.total else ""
            credits = sum(last.credits.values())
            members = f"{len(last.credits)} member{'' if len(last.credits) == 1 else 's'}"
            return (
                f"Round {last.x}{of} · resource {_fmt(last.values.get('resource'))}\n"
                f"credits: {members}, {credits:.1f} in all"
            )
        if self.kind == "reputation":
            if not points:
                return "Cooperation and network ties per step\nNo step has ended yet."
            last = points[-1]
            of = f"/{self.total}" if self.total else ""
            coop = last.values.get("cooperation")
            ties = last.values.get("ties")
            return (
                f"Step {last.x}{of} · cooperation {_fmt(coop, 2)}\n"
                f"ties {_fmt(ties, 0)} · density {_fmt(last.values.get('density'), 3)}"
            )
        return ""

    def _draw(self) -> None:
        from textual_plotext import PlotextPlot

        self.query_one(".game-chart--caption", Static).update(self.caption())
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        xs = self.xs
        points = [self.points[x] for x in xs]
        if self.kind == "commons" and points:
            self._series(plt, xs, [p.values.get("resource") for p in points], "resource", "left")
            members = sorted({m for p in points for m in p.credits}, key=_member_order)
            if len(members) <= MAX_MEMBER_LINES:
                for i, member in enumerate(members):
                    values = [p.credits.get(member) for p in points]
                    color = MEMBER_COLORS[i % len(MEMBER_COLORS)]
                    self._series(plt, xs, values, member, "right", color)
            else:
                mean = [
                    (sum(p.credits.values()) / len(p.credits)) if p.credits else None
                    for p in points
                ]
                self._series(plt, xs, mean, "mean credits", "right", RIGHT_COLOR)
            plt.xlabel("round")
        elif self.kind == "reputation" and points:
            coop = [p.values.get("cooperation") for p in points]
            ties = [p.values.get("ties") for p in points]
            self._series(plt, xs, coop, "cooperation", "left", LEFT_COLOR)
            self._series(plt, xs, ties, "ties", "right", RIGHT_COLOR)
            plt.xlabel("step")
        if xs:
            plt.xticks(*tick_args(whole_ticks(xs[0], xs[-1])))  # rounds and steps are whole
        self.draws += 1
        plot.refresh()

    @staticmethod
    def _series(
        plt: Any,
        xs: list[int],
        values: list[float | None],
        label: str,
        side: str,
        color: tuple[int, int, int] = RESOURCE_COLOR,
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
