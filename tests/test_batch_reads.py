"""What a running batch reads per conversation, counted at the driver.

A conversation's start once cost five round trips before its first model call (the lease's
write, then the conversation read twice and its experiment once, then the start's write), all
while it held one of the batch's slots; under a batch's load they queue behind the message
inserts at the server, so at 2,000 conversations the slots stood empty 8 % of the time. The
lease's write now returns the conversation as stored (``findAndModify``) and the experiment is
read once per run: nothing of the conversation is read again after its lease.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from pymongo.errors import OperationFailure
from pymongo.monitoring import CommandListener, CommandStartedEvent

from simulator.db.mongo import MongoStore
from simulator.db.store import ConversationFilter
from simulator.domain import BatchSpec, Experiment, ModelRef, ModelSet, Provider, Status
from simulator.engine.batch import BatchRunner
from simulator.engine.leases import now_ms
from simulator.llm.registry import Backends
from tests.conftest import store_heard_by

CONVERSATIONS = 6


class _Commands(CommandListener):
    """Counts, once ``counting`` is set: (command, collection, what its filter is on)."""

    def __init__(self) -> None:
        self.counting = False
        self.seen: Counter[tuple[str, str, str]] = Counter()

    def started(self, event: CommandStartedEvent) -> None:
        if not self.counting:
            return
        command = event.command
        name = event.command_name
        collection = command.get(name)
        if not isinstance(collection, str):
            return
        query = command.get("filter", command.get("query", {})) or {}
        self.seen[(name, collection, ",".join(sorted(query)))] += 1

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass


@pytest.fixture
async def counted(mongo_uri: str) -> Any:
    commands = _Commands()
    store = await store_heard_by(mongo_uri, commands)
    try:
        yield store, commands
    finally:
        await store.drop_database()
        await store.close()


def _spec(exp: Experiment, repeats: int) -> BatchSpec:
    return BatchSpec(
        experiment_id=exp.id,
        max_agents={"Guard": 1, "Prisoner": 1},
        days=1,
        total_messages=2,
        repeats=repeats,
        concurrency=2,
        model_sets=[ModelSet(default=ModelRef(provider=Provider.dryrun, model="dryrun"))],
    )


async def test_a_conversation_is_read_by_its_lease_and_the_experiment_once_per_run(
    counted: Any, prison_experiment: Experiment
) -> None:
    store, commands = counted
    exp = await store.experiments.create(prison_experiment)
    runner = BatchRunner(store, Backends(max_attempts=1), poll_s=0.05)
    batch = await runner.start(exp, _spec(exp, CONVERSATIONS))
    commands.counting = True
    ended = await runner.run(batch.id)
    commands.counting = False
    assert ended.status is Status.done
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    assert len(convs) == CONVERSATIONS and all(c.status is Status.done for c in convs)
    assert all(c.runner is None and c.lease_until is None for c in convs)  # leases released
    seen = commands.seen
    # one compare-and-set per conversation takes its lease and returns it as stored
    assert seen[("findAndModify", "conversations", "_id,lease_until,runner")] == CONVERSATIONS
    # and nothing reads one conversation again (it was read twice more per conversation)
    assert seen[("find", "conversations", "_id")] == 0, seen
    # the experiment: once by the run, not once per conversation
    assert seen[("find", "experiments", "_id")] == 1, seen


async def test_the_lease_write_returns_the_conversation_with_its_new_lease(
    store: MongoStore, prison_experiment: Experiment
) -> None:
    exp = await store.experiments.create(prison_experiment)
    batch = await BatchRunner(store, Backends(max_attempts=1)).start(exp, _spec(exp, 1))
    (conv,) = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    until = now_ms() + 60_000
    taken = await store.conversations.take_lease(
        conv.id, "box:1/1", until, seen_runner=None, seen_until=None
    )
    assert taken is not None
    assert (taken.id, taken.runner, taken.lease_until) == (conv.id, "box:1/1", until)
    assert taken.cell == conv.cell and taken.status is Status.pending  # the whole conversation
    # a second worker that saw the lease free loses the race: None, and the lease stays
    lost = await store.conversations.take_lease(
        conv.id, "box:2/1", until + 5, seen_runner=None, seen_until=None
    )
    assert lost is None
    stored = await store.conversations.get(conv.id)
    assert stored is not None and (stored.runner, stored.lease_until) == ("box:1/1", until)
    # the scheduler's view of the batch: the same conversation, its status and its lease
    (state,) = await store.conversations.lease_states(batch.id)
    assert (state.id, state.status, state.runner, state.lease_until) == (
        conv.id,
        Status.pending,
        "box:1/1",
        until,
    )


async def test_a_lease_write_the_server_refuses_is_an_error_not_a_lost_race(
    store: MongoStore, prison_experiment: Experiment
) -> None:
    """The embedded server answers a failed findAndModify as "nothing matched"; a lease still
    as seen after it means the write failed, which must not pass for another worker's win (the
    conversation would be skipped as taken while nobody runs it)."""
    exp = await store.experiments.create(prison_experiment)
    batch = await BatchRunner(store, Backends(max_attempts=1)).start(exp, _spec(exp, 1))
    (conv,) = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    # a revision that is not a number: every server refuses the lease's $inc of it
    await store.db["conversations"].update_one({"_id": conv.id}, {"$set": {"_rev": "x"}})
    with pytest.raises(OperationFailure):
        await store.conversations.take_lease(
            conv.id, "box:1/1", now_ms() + 60_000, seen_runner=None, seen_until=None
        )
    stored = await store.conversations.get(conv.id)
    assert stored is not None and stored.runner is None
