"""Who may run what: the leases that let several workers share a batch through the database.

A worker (a ``simulator worker``, a ``simulator run``/``resume``, the TUI) is named by its
runner id, ``host:pid/n``. It takes a conversation by writing its id and an expiry into the
conversation (``runner``, ``lease_until``: milliseconds since the epoch) with one atomic
compare-and-set, renews that expiry while the conversation runs, and clears it at the end. A
lease is free when nobody holds it, when it has expired (a worker that stopped renewing: killed,
crashed, cut off from the database), or at once when its holder was a process of this machine
that no longer exists. The batch lists its workers (``Batch.workers``) with their heartbeats, so
``simulator batches`` and the monitor can say who works on it, and a ``resume`` can tell that
another process is already running it.

Expiry compares clocks of different machines: keep them in sync (NTP) and the lease time well
above their drift.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from simulator.db.store import LeaseState
from simulator.domain import Batch, Conversation, utcnow
from simulator.domain.models import BatchWorker


def now_ms() -> int:
    """The time as stored in ``Conversation.lease_until``: whole milliseconds since the epoch."""
    return int(time.time() * 1000)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def local_process_gone(runner: str, running_here: Iterable[str] = ()) -> bool:
    """True when ``runner`` was a process of this machine that no longer exists (or this very
    process, for a runner id that is not among ``running_here``: a run that ended without
    releasing what it held)."""
    host, _, rest = runner.partition(":")
    pid = rest.split("/", 1)[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return runner not in set(running_here)
    return not process_alive(int(pid))


def lease_free(
    conv: Conversation | LeaseState, runner: str, at_ms: int, running_here: Iterable[str] = ()
) -> bool:
    """May ``runner`` take ``conv`` now? (Free, its own, expired, or held by a dead local
    process.)"""
    if conv.runner is None or conv.runner == runner:
        return True
    if conv.lease_until is None or conv.lease_until <= at_ms:
        return True
    return local_process_gone(conv.runner, running_here)


def worker_alive(
    worker: BatchWorker,
    lease_s: float,
    now: datetime | None = None,
    running_here: Iterable[str] = (),
) -> bool:
    """A worker listed on a batch that renewed its heartbeat within ``lease_s`` and, when it is
    a process of this machine, still exists."""
    if (now or utcnow()) - worker.heartbeat_at > timedelta(seconds=lease_s):
        return False
    return not local_process_gone(worker.runner, running_here)


def live_workers(
    batch: Batch,
    lease_s: float,
    *,
    now: datetime | None = None,
    running_here: Iterable[str] = (),
    exclude: str | None = None,
) -> list[BatchWorker]:
    """The batch's workers that look alive (``exclude``: leave that runner out). A batch run
    before per-conversation leases has its one runner in ``runner``/``heartbeat_at``."""
    here = list(running_here)
    workers = list(batch.workers)
    if batch.runner is not None and batch.heartbeat_at is not None:
        workers.append(BatchWorker(runner=batch.runner, heartbeat_at=batch.heartbeat_at))
    return [w for w in workers if w.runner != exclude and worker_alive(w, lease_s, now, here)]


__all__ = [
    "lease_free",
    "live_workers",
    "local_process_gone",
    "now_ms",
    "process_alive",
    "worker_alive",
]
