"""Write the TUI screenshots of the docs (docs/img/*.svg) at 100x30 from fixed data.

    .venv/bin/python scripts/screenshots.py [OUT_DIR]    # default: docs/img

The bundled prison-study example (plus a copy by a second user, to show owners) is stored with
fixed ids and dates in a throwaway embedded server, so the pictures change only when the UI does.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from simulator.db.embedded import EmbeddedServer
from simulator.db.mongo import connect_store
from simulator.examples import load_example
from simulator.settings import Settings
from simulator.tui.app import SimulatorApp
from simulator.tui.screens.editor import EditorScreen
from simulator.tui.screens.library import LibraryScreen

SIZE = (100, 30)
CREATED = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


async def wait_for(pilot: Any, predicate: Callable[[], bool], within: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"the app did not get there; it shows {pilot.app.screen}")
        await pilot.pause(0.05)


async def populate(store: Any) -> None:
    example = load_example("prison_study")
    await store.experiments.create(
        example.model_copy(
            update={
                "id": "a" * 32,
                "owner": "alice",
                "favourite": True,
                "created_at": CREATED,
                "updated_at": CREATED,
            }
        )
    )
    await store.experiments.create(
        example.model_copy(
            update={
                "id": "b" * 32,
                "name": "Prison, calm guard",
                "owner": "bob",
                "note": "only the respectful guard",
                "parent_id": "a" * 32,
                "created_at": CREATED.replace(day=20),
                "updated_at": CREATED.replace(day=20),
            }
        )
    )


async def shoot(out: Path, store: Any) -> list[Path]:
    settings = Settings(_env_file=None, ollama_host="http://127.0.0.1:9")  # type: ignore[call-arg]
    app = SimulatorApp(settings, store=store, user="alice", offer_example=False)
    written: list[Path] = []

    async def save(name: str, *, unfocus: bool = True) -> None:
        if unfocus:
            app.screen.set_focus(None)  # no blinking cursor in the picture
        await pilot.pause(0.5)
        # The footer recomposes after a focus change: wait for its keys.
        await wait_for(pilot, lambda: bool(app.screen.query_one(Footer).query(FooterKey)))
        await pilot.pause(0.3)
        app.save_screenshot(filename=name, path=str(out))
        written.append(out / name)

    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot, lambda: isinstance(app.screen, LibraryScreen) and app.screen.loads >= 1
        )
        app.sub_title = "alice · embedded local server"
        library = app.screen
        assert isinstance(library, LibraryScreen)
        row = [r.experiment.id for r in library.rows].index("a" * 32)
        library.query_one("#experiments").move_cursor(row=row)  # type: ignore[attr-defined]
        library.query_one("#experiments").focus()
        await save("library.svg", unfocus=False)

        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen))
        await pilot.press("f4")
        await pilot.pause(0.5)
        await save("editor.svg")

        await pilot.press("f6")
        await pilot.pause(0.5)
        await save("preview.svg")
    return written


async def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedServer(Path(tmp))
        uri = server.start()
        try:
            store = await connect_store(uri, "screenshots")
            try:
                await populate(store)
                for path in await shoot(out, store):
                    print(f"wrote {path}")
            finally:
                await store.close()
        finally:
            server.stop()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/img")
    target.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(target))
