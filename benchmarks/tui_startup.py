"""Time to the first screen: from starting the app's process to the library showing its rows.

What a researcher waits for after typing ``python main.py``: the interpreter starts, the app
imports, the embedded MongoDB-compatible server starts (no ``MONGODB_URI``: the default), the
app connects, and the library lists the experiments. Measured from outside: the clock starts
just before the process is spawned and stops when the process reports that the library shows
its rows (it polls every 5 ms, headless at 80x24, then quits).

Every start uses the same data folder (a temporary one), filled once with the bundled examples,
so each start is a restart with a full library; each start also records whether any dialog
covered the library (the welcome offer must not), and whether the warm-up failed.

    python benchmarks/tui_startup.py [--starts 7]

It prints one line per start and, as its last line, one JSON object: ``starts``,
``first_screen_s`` (the median), ``first_screen_all_s``, ``dialogs`` (starts that showed a
dialog over the library), ``errors`` (starts whose first screen showed an error) and the load
average. The machine's load matters: the figures are for comparing commits on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO, cast

ROOT = Path(__file__).resolve().parent.parent
MARK = "FIRST-SCREEN"


def child() -> int:
    """One start of the app (run in its own process by ``main``)."""
    sys.path.insert(0, str(ROOT))
    import simulator.tui.app
    from simulator.settings import load_settings
    from simulator.tui.app import SimulatorApp
    from simulator.tui.screens.dialogs import MessageDialog
    from simulator.tui.screens.library import LibraryScreen

    out: TextIO = sys.__stdout__ or sys.stdout  # Textual captures print() while it runs

    class TimedApp(SimulatorApp):
        CSS_PATH = str(Path(simulator.tui.app.__file__).with_name("app.tcss"))
        report: dict[str, object] | None = None
        _seen = 0.0

        def on_mount(self) -> None:
            super().on_mount()
            self.set_interval(0.005, self._check)

        def _check(self) -> None:
            if self.report is not None:
                # Watch a little longer for a dialog that opens after the first load.
                if time.monotonic() > self._seen + 0.5:
                    self.exit()
                self._dialog()
                return
            library = next((s for s in self.screen_stack if isinstance(s, LibraryScreen)), None)
            if library is not None and library.loads >= 1 and library.rows:
                self.report = {"rows": len(library.rows)}
                self._seen = time.monotonic()
                out.write(MARK + "\n")
                out.flush()
                self._dialog()

        def _dialog(self) -> None:
            assert self.report is not None
            top = self.screen_stack[-1]
            if not isinstance(top, LibraryScreen):
                kind = "error" if isinstance(top, MessageDialog) else "dialog"
                self.report[kind] = getattr(top, "title_text", type(top).__name__)

    app = TimedApp(load_settings(), offer_example=True)
    app.run(headless=True, size=(80, 24))
    print(json.dumps(app.report), flush=True)
    return 0


async def _fill() -> None:
    """Open the database as the app does (the embedded server) and add the bundled examples."""
    from simulator.db.mongo import close_store, open_store
    from simulator.services.container import build_services
    from simulator.settings import load_settings

    settings = load_settings()
    store, server = await open_store(settings, None)
    try:
        services = await build_services(settings, cast(Any, store), None)
        await services.experiments.ensure_examples()
        await services.aclose()
    finally:
        await close_store(store, server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=7)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child()
    times: list[float] = []
    dialogs: list[str] = []
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tui-startup-") as tmp:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("MONGODB_URI", "DB_USER", "DB_PASSWORD", "DB_CLUSTER_URL", "MONGODB_DB")
        }
        env["SIMULATOR_DATA_DIR"] = str(Path(tmp) / "data")
        env["SIMULATOR_CONFIG_DIR"] = str(Path(tmp) / "config")
        os.environ.clear()
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        asyncio.run(_fill())
        for n in range(args.starts):
            started = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--child"],
                cwd=tmp,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert proc.stdout is not None
            first: float | None = None
            report: dict[str, object] = {}
            for line in proc.stdout:
                if line.startswith(MARK) and first is None:
                    first = time.perf_counter() - started
                elif line.startswith("{"):
                    report = json.loads(line)
            proc.wait(timeout=60)
            if first is None:
                print(f"start {n + 1}: no first screen (exit code {proc.returncode})")
                errors.append("no first screen")
                continue
            times.append(first)
            if "dialog" in report:
                dialogs.append(str(report["dialog"]))
            if "error" in report:
                errors.append(str(report["error"]))
            extra = "".join(f" · {k}: {report[k]}" for k in ("dialog", "error") if k in report)
            print(f"start {n + 1}: first screen after {first:.2f} s{extra}")
    result = {
        "starts": args.starts,
        "first_screen_s": round(statistics.median(times), 3) if times else None,
        "first_screen_all_s": [round(t, 3) for t in times],
        "dialogs": dialogs,
        "errors": errors,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))
    return 0 if times and not dialogs and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
