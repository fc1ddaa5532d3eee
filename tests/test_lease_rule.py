"""One rule of a batch's lease (``engine.batch.lease_holder``): the runner claims by it and the
run monitor labels a batch "running elsewhere" by it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta

from simulator.domain import Batch, BatchSpec, Status, utcnow
from simulator.engine.batch import LEASE_S, LeaseHolder, lease_holder
from simulator.tui.runs import running_elsewhere


def batch(runner: str | None, age_s: float = 1.0, status: Status = Status.running) -> Batch:
    return Batch(
        experiment_id="e",
        spec=BatchSpec(experiment_id="e"),
        owner="alice",
        status=status,
        runner=runner,
        heartbeat_at=utcnow() - timedelta(seconds=age_s) if runner else None,
    )


def test_who_holds_a_lease() -> None:
    host = socket.gethostname()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process of this machine that no longer exists
    alive = os.getppid()
    cases = {
        None: LeaseHolder.nobody,
        f"{host}:{os.getpid()}/1": LeaseHolder.this_process,
        f"{host}:{alive}/1": LeaseHolder.another_process,
        f"{host}:{gone.pid}/1": LeaseHolder.nobody,
        "another-machine:12/1": LeaseHolder.another_process,
    }
    for runner, holder in cases.items():
        assert lease_holder(batch(runner)) is holder, runner
    stale = batch("another-machine:12/1", age_s=LEASE_S + 1)
    assert lease_holder(stale) is LeaseHolder.nobody


def test_the_monitor_labels_by_the_same_rule() -> None:
    host = socket.gethostname()
    assert running_elsewhere(batch(f"{host}:{os.getppid()}/3"))
    assert running_elsewhere(batch("another-machine:12/1"))
    assert not running_elsewhere(batch(f"{host}:{os.getpid()}/1"))  # this app's own run
    assert not running_elsewhere(batch("another-machine:12/1", age_s=LEASE_S + 1))
    assert not running_elsewhere(batch("another-machine:12/1", status=Status.interrupted))
