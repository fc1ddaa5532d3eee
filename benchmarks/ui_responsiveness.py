"""UI responsiveness: how long the TUI's event loop is ever kept busy in one go.

Runs the real Textual app headless (``App.run_test``) on a fresh embedded server in a temporary
directory, and measures the event loop's blocks while:

1. a dryrun batch of 50 conversations is stored, prepared and run, with the run monitor open;
2. the same with 500 conversations;
3. the run monitor opens a stored batch of 2,000 conversations, lists them and the user pages
   through the list.

A probe task on the app's loop sleeps ``--probe-ms`` (5 ms) again and again and records how late
it wakes up: that delay is the time the loop spent on other work before it could run a ready task
(a key press, a repaint) -- a block. The figures per scenario are the longest block and the 99th
percentile of the blocks, over every wake-up of the probe.

The dryrun model answers at once, so a batch keeps the loop as busy as it can be: what the probe
sees is how long the engine, the database driver and the UI ever hold the loop in one go. The
embedded server is a separate process on the same machine, so on a machine with few cores every
figure depends on what else runs: the load average is printed with the figures.

It prints the figures and, as its last line, one JSON object with, per scenario (``batch_50``,
``batch_500``, ``monitor_2000``), the keys ``<scenario>_max_block_ms``, ``<scenario>_p99_block_ms``,
``<scenario>_p50_block_ms`` and ``<scenario>_wall_s``, plus ``load_avg_start`` and
``load_avg_end`` (1-minute load averages). docs/benchmarks.md explains the figures and lists
measurements.

    python benchmarks/ui_responsiveness.py [--probe-ms 5] [--batches 50,500] [--listed 2000]

The acceptance figure of the UI (DESIGN.md, "The UI never blocks"; STYLE.md #5) is no block
over 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIZE = (100, 30)
DEADLINE_S = 300.0  # a scenario that takes longer is stuck


class LoopProbe:
    """A task on the running loop that measures how late each of its wake-ups is."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.blocks_s: list[float] = []
        self.woken_s: list[float] = []  # when each wake-up happened, from the start
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.blocks_s.append(max(0.0, loop.time() - due))
            self.woken_s.append(time.perf_counter() - self.started)

    def __enter__(self) -> LoopProbe:
        self.started = time.perf_counter()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self.started
        if self._task is not None:
            self._task.cancel()

    def figures(self, name: str) -> dict[str, float]:
        ms = sorted(b * 1000 for b in self.blocks_s)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        longest = sorted(zip(self.blocks_s, self.woken_s, strict=True), reverse=True)[:3]
        at = ", ".join(f"{b * 1000:.0f} ms ending at {t:.1f} s" for b, t in longest)
        print(
            f"{name}: longest block {ms[-1]:.1f} ms, 99th percentile {p99:.1f} ms, "
            f"median {statistics.median(ms):.2f} ms over {len(ms)} wake-ups; "
            f"wall {self.wall_s:.1f} s (longest: {at})"
        )
        return {
            f"{name}_max_block_ms": round(ms[-1], 1),
            f"{name}_p99_block_ms": round(p99, 1),
            f"{name}_p50_block_ms": round(statistics.median(ms), 2),
            f"{name}_wall_s": round(self.wall_s, 2),
        }


async def wait_for(pilot: Any, condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def experiment() -> Any:
    from simulator.domain import Experiment, ModelRef, Provider, Role, Section, SectionKind

    return Experiment(
        name="Responsiveness benchmark",
        owner="bench",
        starting_message="Day <DAY> of <DAYS> begins in the prison yard.",
        roles=[
            Role(
                name=name,
                sections=[
                    Section(
                        title="Role",
                        kind=SectionKind.private,
                        content=f"You are <NAME>, one of <{name}_NUMWORD> <{name}_NOUN>.",
                    )
                ],
            )
            for name in ("Guard", "Prisoner")
        ],
        shared_sections=[Section(title="Setting", content="A prison study. Stay in character.")],
        summarizer_sections=[
            Section(title="Task", kind=SectionKind.summarizer, content="Summarize day <DAY>.")
        ],
        models=[ModelRef(provider=Provider.dryrun, model="dryrun")],
    )


def spec(exp: Any, conversations: int) -> Any:
    """Every combination of 1..5 guards and 1..5 prisoners (25 cells), repeated: 2 days,
    20 agent messages each."""
    from simulator.domain import BatchSpec, ModelRef, ModelSet, Provider

    assert conversations % 25 == 0
    return BatchSpec(
        experiment_id=exp.id,
        model_sets=[ModelSet(default=ModelRef(provider=Provider.dryrun, model="dryrun"))],
        max_agents={"Guard": 5, "Prisoner": 5},
        every_combination=True,
        days=2,
        total_messages=20,
        repeats=conversations // 25,
    )


async def batch_scenario(
    pilot: Any, exp: Any, conversations: int, probe_s: float
) -> dict[str, Any]:
    """Store, prepare and run a batch with its monitor open, as 'y' in batch setup does."""
    from simulator.domain import Status
    from simulator.tui.runs import runs_of
    from simulator.tui.screens.monitor import RunMonitorScreen

    app = pilot.app
    registry = runs_of(app)
    name = f"batch_{conversations}"
    with LoopProbe(probe_s) as probe:
        batch = await registry.create(exp, spec(exp, conversations))
        stored_at = time.perf_counter() - probe.started
        registry.run(batch.id)
        await app.push_screen(RunMonitorScreen(batch.id))
        monitor = app.screen

        def ended() -> bool:
            run = registry.runs.get(batch.id)
            return (
                run is not None
                and not registry.is_running(batch.id)
                and run.batch.status
                in (
                    Status.done,
                    Status.failed,
                )
            )

        await wait_for(pilot, ended, f"the batch of {conversations}")
        summary = f"{conversations}/{conversations} done"
        await wait_for(
            pilot,
            lambda: summary in str(monitor.query_one("#monitor-summary").render()),
            "the monitor's summary",
        )
    print(f"(batch of {conversations} stored and prepared at {stored_at:.1f} s, then run)")
    status = registry.runs[batch.id].batch.status
    if status is not Status.done:
        raise SystemExit(f"the batch of {conversations} ended {status.value}")
    await app.pop_screen()
    return probe.figures(name)


async def monitor_scenario(
    pilot: Any, store: Any, exp: Any, probe_s: float, conversations: int = 2000
) -> dict[str, Any]:
    """Open the monitor on a stored batch of ``conversations`` conversations (not run: storing
    them is not measured) and page through its list to the end."""
    from textual.widgets import DataTable

    from simulator.engine.batch import BatchRunner
    from simulator.tui.screens.monitor import RunMonitorScreen

    app = pilot.app
    t0 = time.perf_counter()
    batch = await BatchRunner(store, backends=None).start(
        exp, spec(exp, conversations), owner="bench"
    )
    print(f"(batch of {conversations} conversations stored in {time.perf_counter() - t0:.1f} s)")
    with LoopProbe(probe_s) as probe:
        await app.push_screen(RunMonitorScreen(batch.id))
        monitor = app.screen
        table = monitor.query_one("#monitor-conversations", DataTable)
        await wait_for(
            pilot, lambda: monitor.loads >= 1 and table.row_count == conversations, "the list"
        )
        print(f"(listed {time.perf_counter() - probe.started:.1f} s after opening the monitor)")
        table.focus()
        for _ in range(20):
            await pilot.press("pagedown")
        await pilot.press("ctrl+end")
        await wait_for(pilot, lambda: table.cursor_row == conversations - 1, "the end of the list")
        flushes = monitor.flushes
        await wait_for(pilot, lambda: monitor.flushes >= flushes + 4, "a few repaints")
    await app.pop_screen()
    return probe.figures(f"monitor_{conversations}")


def load_average() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


async def main(probe_ms: float, batches: list[int], listed: int) -> dict[str, Any]:
    from simulator.db.embedded import EmbeddedServer
    from simulator.db.mongo import connect_store
    from simulator.scenarios.registry import install
    from simulator.settings import Settings
    from simulator.tui.app import SimulatorApp
    from simulator.tui.screens.library import LibraryScreen

    install()  # the experiment kinds, as the composition root (AppRoot) installs them for a command
    figures: dict[str, Any] = {"load_avg_start": load_average()}
    print(f"machine: {os.cpu_count()} cores; load average {figures['load_avg_start']} (1 min)")
    probe_s = probe_ms / 1000
    with tempfile.TemporaryDirectory(prefix="ui-bench-") as tmp:
        os.environ["SIMULATOR_DATA_DIR"] = str(Path(tmp) / "data")
        os.environ["SIMULATOR_CONFIG_DIR"] = str(Path(tmp) / "config")
        server = EmbeddedServer(Path(tmp) / "mongo")
        uri = await asyncio.to_thread(server.start)
        try:
            store = await connect_store(uri, "benchmark")
            try:
                exp = await store.experiments.create(experiment())
                settings = Settings(_env_file=None, ollama_host="http://127.0.0.1:9")  # type: ignore[call-arg]
                app = SimulatorApp(settings, store=store, user="bench", offer_example=False)
                async with app.run_test(size=SIZE) as pilot:
                    await wait_for(
                        pilot,
                        lambda: isinstance(app.screen, LibraryScreen) and app.screen.loads >= 1,
                        "the library",
                    )
                    for size in batches:
                        figures |= await batch_scenario(pilot, exp, size, probe_s)
                    if listed:
                        figures |= await monitor_scenario(pilot, store, exp, probe_s, listed)
            finally:
                await store.close()
        finally:
            await asyncio.to_thread(server.stop)
    figures["load_avg_end"] = load_average()
    print(f"load average at the end: {figures['load_avg_end']} (1 min); target: no block > 100 ms")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probe-ms", type=float, default=5.0, help="the probe's sleep")
    parser.add_argument(
        "--batches", default="50,500", help="batch sizes to run, comma-separated (multiples of 25)"
    )
    parser.add_argument(
        "--listed", type=int, default=2000, help="conversations the monitor lists (0: none)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sizes = [int(n) for n in args.batches.split(",") if n.strip()]
    result = asyncio.run(main(args.probe_ms, sizes, args.listed))
    print(json.dumps(result))
    sys.exit(0)
