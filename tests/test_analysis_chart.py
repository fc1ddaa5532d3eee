"""The TUI chart widget: mounted in a bare app, fed a hand-built conversation's messages."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Static
from textual_plotext import PlotextPlot

from simulator.domain import MessageKind, Status
from simulator.tui.widgets.charts import ConversationChart
from tests.plugins.analysis import DRYRUN, conversation, msg, prison_experiment


def _messages():  # type: ignore[no-untyped-def]
    exp = prison_experiment()
    conv = conversation(
        exp,
        {"Guard": 1, "Prisoner": 1},
        days=1,
        factors={"goal": "Escape"},
        model=DRYRUN,
        batch_id=None,
        cell_index=0,
        status=Status.done,
    )
    return [
        msg(conv, 3, "Prisoner 1", "Prisoner", "one two three four", turn=3, usage=(30, 7)),
        msg(conv, 0, "Moderator", "moderator", "Begin.", kind=MessageKind.kickoff),
        msg(conv, 1, "Guard 1", "Guard", "Halt", turn=1, usage=(10, 2)),
        msg(conv, 2, "Prisoner 1", "Prisoner", "Why me", turn=2, usage=(20, 4)),
        msg(
            conv,
            4,
            "Summarizer",
            "summarizer",
            "They talked.",
            kind=MessageKind.summary,
            usage=(50, 9),
        ),
    ]


class ChartApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ConversationChart(id="chart")


async def test_chart_shows_tokens_per_turn_per_role_and_cycles_measures() -> None:
    app = ChartApp()
    async with app.run_test(size=(100, 30)) as pilot:
        chart = app.query_one(ConversationChart)
        caption = chart.query_one(".chart--caption", Static)
        assert chart.series == {}
        assert "No agent messages" in str(caption.render())

        chart.show(_messages())
        await pilot.pause()
        # agent turns in seq order; kickoff and summary are not agent turns
        assert chart.series == {"Guard": ([1], [2.0]), "Prisoner": ([2, 3], [4.0, 7.0])}
        assert "Completion tokens per agent turn" in str(caption.render())
        assert chart.query_one(PlotextPlot).plt is not None

        chart.focus()
        await pilot.press("m")
        assert chart.metric == "words"
        assert chart.series == {"Guard": ([1], [1.0]), "Prisoner": ([2, 3], [2.0, 4.0])}
        assert "Message length (words)" in str(caption.render())
        await pilot.pause()
        screen = app.export_screenshot().replace("&#160;", " ")
        assert "words) per turn" in screen  # the plot's title, drawn by plotext
        assert "agent turn" in screen and "Guard" in screen and "Prisoner" in screen


async def test_messages_given_before_mounting_are_drawn_on_mount() -> None:
    chart = ConversationChart(metric="words")
    chart.show(_messages())  # e.g. a screen that loaded the conversation before composing

    class Early(App[None]):
        def compose(self) -> ComposeResult:
            yield chart

    async with Early().run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert chart.series["Prisoner"] == ([2, 3], [2.0, 4.0])
