"""One runner per batch: a live runner's lease refuses a second one (in this process or
another); a stale lease, or one held by a process that no longer exists, is adopted."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest

from simulator.db.store import ConversationFilter
from simulator.domain import BatchSpec, Experiment, ModelRef, ModelSet, Provider, Status, utcnow
from simulator.engine.batch import BatchInUseError, BatchRunner
from simulator.engine.events import BatchProgress, ConversationFinished, EventBus
from simulator.llm.dryrun import register_policy, unregister_policy
from simulator.llm.registry import Backends
from tests.plugins.waiting import DEADLINE_S, wait_until


def _spec(exp: Experiment, **options: Any) -> BatchSpec:
    model = ModelRef(provider=Provider.dryrun, model="dryrun", options=options)
    return BatchSpec(
        experiment_id=exp.id,
        model_sets=[ModelSet(default=model)],
        total_messages=6,
        days=1,
        max_agents={r.name: 1 for r in exp.roles},
        concurrency=2,
    )


async def _all_done(store: Any, batch_id: str) -> None:
    convs = await store.conversations.list(ConversationFilter(batch_id=batch_id))
    assert convs and all(c.status is Status.done for c in convs)
    for conv in convs:
        seqs = [m.seq for m in await store.messages.list(conv.id)]
        assert seqs == list(range(len(seqs)))


async def test_a_second_runner_is_refused_while_the_first_runs_then_resumes(
    store: Any, prison_experiment: Experiment
) -> None:
    released = asyncio.Event()

    async def held_until_released(request: Any) -> str:
        """The first run cannot end before the test has seen what it checks."""
        await released.wait()
        return f"[dryrun] {request.meta.agent} speaks."

    register_policy("held-for-lease-test", held_until_released)
    try:
        exp = await store.experiments.create(prison_experiment)
        first = BatchRunner(store, Backends(), poll_s=0.05, heartbeat_s=0.1)
        batch = await first.start(exp, _spec(exp, policy="held-for-lease-test"))
        running = asyncio.create_task(first.run(batch.id))

        async def claimed() -> bool:
            stored = await store.batches.get(batch.id)
            return [w.runner for w in stored.workers] == [first.runner_id]

        await wait_until(claimed, what="the first runner to claim the batch")
        second = BatchRunner(store, Backends(), poll_s=0.05)
        with pytest.raises(BatchInUseError) as refused:
            await second.resume(batch.id)
        message = str(refused.value)
        assert first.runner_id in message and f"simulator cancel {batch.id[:8]}" in message

        # The heartbeat is renewed while it runs.
        before = (await store.batches.get(batch.id)).workers[0].heartbeat_at

        async def renewed() -> bool:
            return (await store.batches.get(batch.id)).workers[0].heartbeat_at > before

        await wait_until(renewed, what="a renewed heartbeat")

        await second.cancel(batch.id)  # as 'simulator cancel' from elsewhere
        ended = await asyncio.wait_for(running, DEADLINE_S)  # wait deadline
        assert ended.status is Status.cancelled and ended.workers == []

        released.set()
        resumed = await second.resume(batch.id)
    finally:
        unregister_policy("held-for-lease-test")
    assert resumed.status is Status.done and resumed.workers == []
    await _all_done(store, batch.id)


async def test_a_stale_lease_is_adopted(store: Any, prison_experiment: Experiment) -> None:
    exp = await store.experiments.create(prison_experiment)
    runner = BatchRunner(store, Backends(), poll_s=0.05, lease_s=30)
    batch = await runner.start(exp, _spec(exp))
    await store.batches.update_if(
        batch.id,
        lambda b: True,
        status=Status.running,
        runner="elsewhere.example.org:4242/1",
        heartbeat_at=utcnow() - timedelta(minutes=5),
    )
    ended = await runner.resume(batch.id)
    assert ended.status is Status.done and ended.workers == [] and ended.runner is None
    await _all_done(store, batch.id)


async def test_a_fresh_lease_of_another_machine_is_respected(
    store: Any, prison_experiment: Experiment
) -> None:
    exp = await store.experiments.create(prison_experiment)
    runner = BatchRunner(store, Backends(), poll_s=0.05)
    batch = await runner.start(exp, _spec(exp))
    await store.batches.update_if(
        batch.id,
        lambda b: True,
        status=Status.running,
        runner="elsewhere.example.org:4242/1",
        heartbeat_at=utcnow(),
    )
    with pytest.raises(BatchInUseError, match=re.escape("elsewhere.example.org:4242/1")):
        await runner.resume(batch.id)
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    assert all(c.status is Status.pending for c in convs)  # nothing ran


async def test_the_lease_of_a_dead_local_process_is_adopted_at_once(
    store: Any, prison_experiment: Experiment
) -> None:
    exp = await store.experiments.create(prison_experiment)
    runner = BatchRunner(store, Backends(), poll_s=0.05)
    batch = await runner.start(exp, _spec(exp))
    gone = subprocess.run(  # noqa: ASYNC221 - a child that has exited before the test goes on
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    await store.batches.update_if(
        batch.id,
        lambda b: True,
        status=Status.running,
        runner=f"{socket.gethostname()}:{int(gone.stdout)}/1",
        heartbeat_at=utcnow(),  # fresh, but its process has exited
    )
    ended = await runner.resume(batch.id)
    assert ended.status is Status.done
    await _all_done(store, batch.id)


async def test_update_if_is_a_compare_and_set(store: Any, prison_experiment: Experiment) -> None:
    exp = await store.experiments.create(prison_experiment)
    batch = await BatchRunner(store, Backends()).start(exp, _spec(exp))
    results = await asyncio.gather(
        *(
            store.batches.update_if(batch.id, lambda b: b.runner is None, runner=f"r{i}")
            for i in range(5)
        )
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert (await store.batches.get(batch.id)).runner == winners[0].runner


async def test_a_renewal_between_a_conversations_end_and_its_return_takes_nothing_over(
    store: Any, prison_experiment: Experiment, caplog: pytest.LogCaptureFixture
) -> None:
    """The end of a conversation releases its lease in the same write; a renewal that runs
    before the conversation's task has returned must not take that free lease for one another
    worker took (it logged "taken over by another worker" and cancelled the ending task,
    whose progress then went unpublished)."""
    exp = await store.experiments.create(prison_experiment)
    bus = EventBus()
    runner = BatchRunner(store, Backends(), bus, poll_s=0.01, heartbeat_s=0.01)
    batch = await runner.start(exp, _spec(exp))
    progress: list[BatchProgress] = []

    async def hold_the_end_over_a_renewal(event: Any) -> None:
        if isinstance(event, BatchProgress):
            progress.append(event)
        if not isinstance(event, ConversationFinished):
            return
        before = await store.batches.get(batch.id)
        beats = {w.runner: w.heartbeat_at for w in before.workers}

        async def renewed() -> bool:
            now = await store.batches.get(batch.id)
            return any(w.heartbeat_at != beats.get(w.runner) for w in now.workers)

        # the heartbeat is written after the leases' renewal: a renewal ran in full meanwhile
        await wait_until(renewed, what="a renewal while the conversation ends")

    bus.subscribe(hold_the_end_over_a_renewal)
    with caplog.at_level(logging.WARNING, logger="simulator.engine.batch"):
        ended = await runner.run(batch.id)
    assert ended.status is Status.done
    assert "taken over" not in caplog.text
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    assert progress and progress[-1].done == len(convs)  # each end was counted as it came
