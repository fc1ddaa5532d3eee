"""``simulator worker``: a process that shares batches with others through the database.

On any machine that reaches the same MongoDB, ``simulator worker --batch BATCH`` joins a batch
(started by ``simulator run``, the TUI, or another worker): it takes conversations nobody holds,
runs them under a lease it renews, and takes over those of a worker that stopped answering. It
ends when no conversation of the batch is left to run. Without ``--batch`` it works on every
batch that is running or waiting to run, one after another, and with ``--wait`` it keeps
looking for new ones (docs/scale.md).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from simulator.domain import Batch, Status
from simulator.domain.errors import NotFoundError, SimulatorError

#: Batches a worker without --batch joins: running (by anyone) or stored and not yet started.
JOINABLE = (Status.running, Status.pending)
LOOK_S = 10.0  # with --wait: how often to look for a batch to work on


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = sub.add_parser(
        "worker",
        help="work on batches together with other processes (on any machine)",
        description=(
            "Join a batch and run its conversations together with the other workers on it, on "
            "this machine or any other that reaches the same MongoDB. Each conversation is "
            "leased by one worker at a time; a worker that stops answering has its "
            "conversations taken over once its lease expires, from their last stored message. "
            "Without --batch, every running or waiting batch is worked on in turn."
        ),
    )
    worker.add_argument("--batch", metavar="BATCH", help="batch id (or a unique prefix of it)")
    worker.add_argument(
        "--wait",
        action="store_true",
        help="without --batch: keep looking for batches to work on (stop with Ctrl-C)",
    )
    worker.add_argument(
        "--lease-s",
        type=float,
        default=None,
        metavar="S",
        help="how long a conversation stays leased without a renewal (default 30)",
    )
    worker.set_defaults(func=cmd_worker, uses_database=True)


def cmd_worker(args: argparse.Namespace) -> int:
    from simulator.commands.run import _interruptible

    if args.lease_s is not None and not 2 <= args.lease_s <= 3600:
        raise SimulatorError(
            f"--lease-s must be from 2 to 3600 seconds, not {args.lease_s:g}.",
            title="Invalid option",
        )
    if args.wait and args.batch:
        raise SimulatorError("--wait goes without --batch.", title="Invalid option")
    return _interruptible(_work(args.batch, args.wait, args.lease_s))


async def _work(ref: str | None, wait: bool, lease_s: float | None) -> int:
    from simulator.commands.common import open_session
    from simulator.commands.run import (
        EXIT_OK,
        _console,
        _find_batch,
        _ledger,
        _report_end,
        _signals_stop,
    )

    console = _console()
    async with open_session() as services:
        store = services.store
        with _signals_stop(services.batches) as runner:
            if lease_s is not None:
                runner.lease_s = lease_s
                runner.heartbeat_s = min(runner.heartbeat_s, lease_s / 4)
            console.print(f"Worker [bold]{runner.runner_id}[/].")
            if ref is not None:
                batch = await _find_batch(store, ref)
                if batch.status is Status.done:
                    console.print(f"Batch {batch.id} is already done.")
                    return EXIT_OK
                batch = await _join(runner, store, batch, console)
                if batch.status is Status.running:  # the others store its end
                    return EXIT_OK
                return _report_end(batch, console, await _ledger(store, batch.id))
            worked: set[str] = set()
            while True:
                waiting = await _next_batch(store, worked)
                if waiting is None:
                    if not wait:
                        console.print(
                            "No batch to work on." if not worked else "No batch left to work on."
                        )
                        return EXIT_OK
                    await asyncio.sleep(LOOK_S)
                    worked.clear()  # a batch worked on may have been resumed since
                    continue
                worked.add(waiting.id)
                await _join(runner, store, waiting, console)


async def _join(runner: Any, store: Any, batch: Batch, console: Any) -> Batch:
    from simulator.commands.run import _drive

    experiment = await store.experiments.get(batch.experiment_id)
    if experiment is None:
        raise NotFoundError(f"The experiment of batch {batch.id} no longer exists.")
    console.print(f"Working on batch [bold]{batch.id}[/] of {experiment.name!r}.")
    ended: Batch = await _drive(runner, batch, experiment, console, join=True)
    if ended.status is Status.running:
        console.print(f"Nothing left to run here; other workers are finishing batch {batch.id}.")
    return ended


async def _next_batch(store: Any, worked: set[str]) -> Batch | None:
    """The oldest batch that is running or waiting and that this worker has not worked on."""
    batches = await store.batches.list()
    for batch in sorted(batches, key=lambda b: b.created_at):
        if batch.status in JOINABLE and batch.id not in worked:
            return batch
    return None
