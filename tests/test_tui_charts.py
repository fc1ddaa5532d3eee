"""The charts mark whole turns (and whole token counts): plotext's own ticks read 1.50, 2.50."""

from __future__ import annotations

import re

from textual.app import App, ComposeResult
from textual_plotext import PlotextPlot

from simulator.tui.widgets.charts import ConversationChart
from simulator.tui.widgets.ticks import whole_ticks
from tests.plugins.tui import wait_until
from tests.test_analysis_chart import _messages


def test_whole_ticks() -> None:
    assert whole_ticks(1, 3) == [1, 2, 3]
    assert whole_ticks(1, 40) == [1, 9, 17, 25, 33]
    assert whole_ticks(2.5, 2.5) == [2, 3]
    assert all(isinstance(t, int) for t in whole_ticks(0.2, 7.9))


class ChartApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ConversationChart(id="chart")


async def test_the_turn_axis_has_no_fractional_ticks() -> None:
    app = ChartApp()
    async with app.run_test(size=(80, 24)) as pilot:
        chart = app.query_one(ConversationChart)
        chart.show(_messages())  # agent turns 1, 2, 3; whole token counts
        await wait_until(pilot, lambda: bool(chart.series), what="the chart")
        drawn = str(chart.query_one(PlotextPlot).render())
        assert re.search(r"\d\.\d", drawn) is None, drawn
        assert chart.xticks == [1, 2, 3]
        axis = next(line for line in drawn.splitlines()[::-1] if re.search(r"\d", line))
        assert axis.split() == ["1", "2", "3"]
