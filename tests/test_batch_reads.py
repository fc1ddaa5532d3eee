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
from simulator.domain import (
    BatchSpec,
    Conversation,
    Experiment,
    ModelRef,
    ModelSet,
    Provider,
    Status,
)
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
        if name == "update" and command.get("updates"):  # the first statement's filter
            query = command["updates"][0].get("q", {})
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


async def _stored_batch(
    store: MongoStore, experiment: Experiment, conversations: int
) -> tuple[str, list[Conversation]]:
    """A batch started (not run) with ``conversations`` pending conversations: its id and them."""
    exp = await store.experiments.create(experiment)
    batch = await BatchRunner(store, Backends(max_attempts=1)).start(exp, _spec(exp, conversations))
    return batch.id, await store.conversations.list(ConversationFilter(batch_id=batch.id))


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
    assert all(c.started_at is not None and c.finished_at is not None for c in convs)
    assert all(c.started_at <= c.finished_at for c in convs)  # type: ignore[operator]
    seen = commands.seen
    # one compare-and-set per conversation takes its lease, starts it (it never ran) and
    # returns it as stored
    lease_and_start = ("findAndModify", "conversations", "_id,lease_until,runner,started_at,status")
    assert seen[lease_and_start] == CONVERSATIONS, seen
    assert seen[("findAndModify", "conversations", "_id,lease_until,runner")] == 0, seen
    # and nothing reads one conversation again (it was read twice more per conversation)
    assert seen[("find", "conversations", "_id")] == 0, seen
    # the experiment: once by the run, not once per conversation
    assert seen[("find", "experiments", "_id")] == 1, seen
    # one write per conversation after its lease: its end, which releases the lease while this
    # runner holds it (a start of its own and a release of its own made it three)
    updates = {k: v for k, v in seen.items() if k[:2] == ("update", "conversations")}
    assert updates == {("update", "conversations", "_id,runner"): CONVERSATIONS}, updates


async def test_the_lease_write_returns_the_conversation_with_its_new_lease(
    store: MongoStore, prison_experiment: Experiment
) -> None:
    batch_id, (conv,) = await _stored_batch(store, prison_experiment, 1)
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
    (state,) = await store.conversations.lease_states(batch_id)
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
    _, (conv,) = await _stored_batch(store, prison_experiment, 1)
    # a revision that is not a number: every server refuses the lease's $inc of it
    await store.db["conversations"].update_one({"_id": conv.id}, {"$set": {"_rev": "x"}})
    with pytest.raises(OperationFailure):
        await store.conversations.take_lease(
            conv.id, "box:1/1", now_ms() + 60_000, seen_runner=None, seen_until=None
        )
    stored = await store.conversations.get(conv.id)
    assert stored is not None and stored.runner is None


async def test_the_end_releases_only_the_lease_its_runner_holds(
    store: MongoStore, prison_experiment: Experiment
) -> None:
    _, (mine, taken_over) = await _stored_batch(store, prison_experiment, 2)
    until = now_ms() + 60_000
    for conv, runner in ((mine, "box:1/1"), (taken_over, "box:2/1")):
        await store.conversations.take_lease(
            conv.id, runner, until, seen_runner=None, seen_until=None
        )

    assert await store.conversations.end(mine.id, "box:1/1", status=Status.done, messages_done=2)
    # another worker holds this one now: the fields are stored, its lease is left alone
    assert not await store.conversations.end(taken_over.id, "box:1/1", status=Status.done)
    # without a runner (a single run): the fields only
    assert not await store.conversations.end(mine.id, None, error="noted")

    first = await store.conversations.get(mine.id)
    second = await store.conversations.get(taken_over.id)
    assert first is not None and second is not None
    assert (first.status, first.messages_done, first.error) == (Status.done, 2, "noted")
    assert (first.runner, first.lease_until) == (None, None)
    assert (second.status, second.runner, second.lease_until) == (Status.done, "box:2/1", until)


async def test_renewing_leases_is_one_update_and_names_the_ones_taken_over(
    counted: Any, prison_experiment: Experiment
) -> None:
    store, commands = counted
    batch_id, convs = await _stored_batch(store, prison_experiment, 5)
    until = now_ms() + 60_000
    for conv in convs:
        await store.conversations.take_lease(
            conv.id, "box:1/1", until, seen_runner=None, seen_until=None
        )
    ids = [c.id for c in convs]
    commands.counting = True
    assert await store.conversations.renew_leases(ids, "box:1/1", until + 1000) == []
    assert commands.seen == Counter({("update", "conversations", "_id,runner"): 1})
    # another worker took two of them over (their leases had expired, say)
    for conv in convs[1:3]:
        await store.conversations.take_lease(
            conv.id, "box:2/1", until + 5000, seen_runner="box:1/1", seen_until=until + 1000
        )
    lost = await store.conversations.renew_leases(ids, "box:1/1", until + 2000)
    assert sorted(lost) == sorted(ids[1:3])
    leases = {
        s.id: (s.runner, s.lease_until) for s in await store.conversations.lease_states(batch_id)
    }
    assert leases == {
        i: ("box:2/1", until + 5000) if i in lost else ("box:1/1", until + 2000) for i in ids
    }
    # a conversation whose end released its lease is not "taken over" (the runner still counts
    # it as held until its task returns), and a deleted one is lost
    assert await store.conversations.end(ids[3], "box:1/1", status=Status.done)
    await store.conversations.delete(ids[4])
    lost = await store.conversations.renew_leases(ids, "box:1/1", until + 3000)
    assert sorted(lost) == sorted([*ids[1:3], ids[4]])


async def test_the_lease_of_a_conversation_that_never_ran_starts_it_in_the_same_write(
    store: MongoStore, prison_experiment: Experiment
) -> None:
    _, (fresh, resumed) = await _stored_batch(store, prison_experiment, 2)
    until = now_ms() + 60_000
    started = await store.conversations.take_lease_and_start(
        fresh.id, "box:1/1", until, seen_runner=None, seen_until=None
    )
    assert started is not None
    assert (started.status, started.runner, started.lease_until) == (
        Status.running,
        "box:1/1",
        until,
    )
    assert started.started_at is not None and started.error is None
    assert started == await store.conversations.get(fresh.id)  # as stored
    # a second worker that saw the lease free: neither form of the lease is its
    for take in (store.conversations.take_lease_and_start, store.conversations.take_lease):
        assert await take(fresh.id, "box:2/1", until, seen_runner=None, seen_until=None) is None
    # a conversation that ran before (a resume) is not started again by its lease: None, and
    # nothing changed; the plain lease takes it
    assert await store.conversations.start(resumed.id, status=Status.interrupted)
    before = await store.conversations.get(resumed.id)
    assert (
        await store.conversations.take_lease_and_start(
            resumed.id, "box:1/1", until, seen_runner=None, seen_until=None
        )
        is None
    )
    assert await store.conversations.get(resumed.id) == before
    taken = await store.conversations.take_lease(
        resumed.id, "box:1/1", until, seen_runner=None, seen_until=None
    )
    assert taken is not None and taken.started_at == before.started_at
