"""The app's header: Textual's ``Header`` whose title watchers survive a header that is removed
before they run.

Textual's ``Header`` registers watchers on the app's and the screen's title when it mounts; each
runs as a task that looks up the header's title widget. When a screen is replaced right after it
was pushed (the start-up screens: "connecting" then "cannot reach the database" within one event
loop turn), the task runs after the header lost its children and raises ``NoMatches``, which
Textual reports as a crash of the app. These watchers do the same update and skip a header that is
already gone.
"""

from __future__ import annotations

from contextlib import suppress

from textual.css.query import NoMatches
from textual.events import Mount
from textual.widget import NoScreen
from textual.widgets import Header
from textual.widgets._header import HeaderTitle


class AppHeader(Header):
    def _on_mount(self, event: Mount) -> None:
        event.prevent_default()  # these watchers replace Header's own

        async def set_title() -> None:
            # a header removed before its title was set has nothing to show
            with suppress(NoScreen, NoMatches):
                self.query_one(HeaderTitle).update(self.format_title())

        for owner in (self.app, self.screen):
            self.watch(owner, "title", set_title)
            self.watch(owner, "sub_title", set_title)
