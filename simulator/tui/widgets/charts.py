"""A small chart of one conversation: tokens or message length per agent turn, a line per role.

Self-contained (its own DEFAULT_CSS and bindings) so any screen can mount it: give it the
conversation's messages with ``show(messages)`` (what ``ConversationService.messages`` returns);
it never reads the database itself. ``m`` cycles the measure. Role colours are those of the HTML
transcripts and PNG figures (``simulator.analysis.exports.role_palette``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static
from textual_plotext import PlotextPlot

from simulator.domain import Message
from simulator.tui.widgets.ticks import tick_args, whole_ticks

#: The measures the chart cycles through, with their axis labels.
CHART_METRICS: dict[str, str] = {
    "completion_tokens": "completion tokens",
    "words": "message length (words)",
    "prompt_tokens": "prompt tokens",
    "latency_ms": "latency (ms)",
}


def _rgb(color: str) -> tuple[int, int, int]:
    return (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16))


class ConversationChart(Vertical, can_focus=True):
    """Per-turn chart of a conversation's agent messages, one line per role."""

    DEFAULT_CSS = """
    ConversationChart {
        height: 1fr;
        min-height: 12;
        border: round $primary 50%;
        padding: 0 1;
    }
    ConversationChart:focus-within, ConversationChart:focus {
        border: round $primary;
    }
    ConversationChart > .chart--caption {
        height: 1;
        color: $text-muted;
    }
    ConversationChart > PlotextPlot {
        height: 1fr;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "m",
            "next_metric",
            "Measure",
            id="chart.next_metric",
            tooltip="Cycle the measure: tokens, words, prompt tokens, latency",
        ),
    ]

    metric: reactive[str] = reactive("completion_tokens")

    def __init__(
        self,
        messages: Iterable[Message] = (),
        *,
        metric: str = "completion_tokens",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        if metric not in CHART_METRICS:
            raise ValueError(f"unknown measure {metric!r}; choose from {', '.join(CHART_METRICS)}")
        self._messages: list[Message] = list(messages)
        #: What is drawn: role -> (agent turns, values). Read by tests and by callers.
        self.series: dict[str, tuple[list[int], list[float]]] = {}
        self.xticks: list[int] = []  # the agent turns marked on the axis
        self.set_reactive(ConversationChart.metric, metric)

    def compose(self) -> ComposeResult:
        yield Static("", classes="chart--caption")
        yield PlotextPlot()

    def on_mount(self) -> None:
        self._redraw()

    def show(self, messages: Iterable[Message]) -> None:
        """Chart these messages (one conversation's, in any order)."""
        self._messages = list(messages)
        if self.is_mounted:  # before mounting, on_mount draws them
            self._redraw()

    def watch_metric(self) -> None:
        if self.is_mounted:
            self._redraw()

    def action_next_metric(self) -> None:
        names = list(CHART_METRICS)
        self.metric = names[(names.index(self.metric) + 1) % len(names)]

    def _redraw(self) -> None:
        from simulator.analysis.exports import role_palette
        from simulator.analysis.metrics import turn_series_of_messages

        self.series = turn_series_of_messages(self._messages, self.metric)
        label = CHART_METRICS[self.metric]
        palette = role_palette(self.series)
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        for role, (turns, values) in self.series.items():
            plt.plot(turns, values, label=role, color=_rgb(palette[role]), marker="braille")
        plt.title(f"{label} per turn")
        plt.xlabel("agent turn")
        turns = [t for ts, _ in self.series.values() for t in ts]
        values = [v for _, vs in self.series.values() for v in vs]
        self.xticks = whole_ticks(min(turns), max(turns)) if turns else []
        plt.xticks(*tick_args(self.xticks))
        if values and all(float(v).is_integer() for v in values):
            plt.yticks(*tick_args(whole_ticks(min(values), max(values), most=5)))
        caption = self.query_one(".chart--caption", Static)
        if self.series:
            roles = ", ".join(self.series)
            caption.update(f"{label.capitalize()} per agent turn · {roles} · m: change measure")
        else:
            caption.update("No agent messages yet.")
        plot.refresh()
