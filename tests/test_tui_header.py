"""The app's header (``AppHeader``): screens replaced within one turn of the event loop do not
crash the app (Textual's own header raised ``NoMatches: HeaderTitle`` from its title watcher,
which made a start-up test fail now and then), and the header still shows the titles."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import Header, Static
from textual.widgets._header import HeaderTitle

from simulator.tui.widgets.header import AppHeader
from tests.plugins.tui import wait_until


def screens_with(header: type[Header]) -> type[App[None]]:
    class Page(Screen[None]):
        def compose(self) -> ComposeResult:
            yield header(show_clock=False)
            yield Static("page")

    class Flicker(App[None]):
        def on_mount(self) -> None:  # "connecting", then at once "cannot reach the database"
            self.push_screen(Page())
            self.switch_screen(Page())
            self.sub_title = "changed"
            self.switch_screen(Page())

    return Flicker


async def test_screens_replaced_at_once_do_not_crash_the_app() -> None:
    app = screens_with(AppHeader)()
    async with app.run_test() as pilot:
        app.title = "Simulator"
        app.sub_title = "alice · MongoDB at test server"
        title = app.screen.query_one(HeaderTitle)
        await wait_until(pilot, lambda: "alice" in str(title.render()), what="the sub-title")
        assert "Simulator" in str(title.render())
    assert app.return_code in (None, 0)
