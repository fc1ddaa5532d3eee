"""How often a running batch lists its own conversations. The scheduler looks again at the batch
for conversations another worker left behind; it once did so each time one of its own ended,
so a batch of n conversations cost n listings of n (2,000 listings of 2,000 documents at 2,000
conversations; with three workers on 300 conversations it took 60% of a worker's time). It now
looks when all of its own have ended, when the run stops, and, once another worker shares the
batch, every ``look_s``. Counted at the
driver: the ``find`` commands on the conversations collection filtered by the batch."""

from __future__ import annotations

from typing import Any

from pymongo.monitoring import CommandListener, CommandStartedEvent

from simulator.db.store import ConversationFilter
from simulator.domain import BatchSpec, Experiment, ModelRef, ModelSet, Provider, Status
from simulator.engine.batch import BatchRunner
from simulator.llm.registry import Backends
from tests.conftest import store_heard_by

CONVERSATIONS = 24


class _Finds(CommandListener):
    def __init__(self) -> None:
        self.batch_listings = 0
        self.batch_id: str | None = None

    def started(self, event: CommandStartedEvent) -> None:
        command = event.command
        if event.command_name != "find" or command.get("find") != "conversations":
            return
        if self.batch_id is not None and command.get("filter", {}).get("batch_id") == self.batch_id:
            self.batch_listings += 1

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass


async def test_a_batch_lists_its_conversations_a_few_times_not_once_per_conversation(
    mongo_uri: str, prison_experiment: Experiment
) -> None:
    finds = _Finds()
    store = await store_heard_by(mongo_uri, finds)
    try:
        exp = await store.experiments.create(prison_experiment)
        spec = BatchSpec(
            experiment_id=exp.id,
            max_agents={"Guard": 1, "Prisoner": 1},
            days=1,
            total_messages=2,
            repeats=CONVERSATIONS,
            concurrency=1,  # one at a time: every conversation ends on its own
            model_sets=[ModelSet(default=ModelRef(provider=Provider.dryrun, model="dryrun"))],
        )
        # alone on its batch, the runner has no periodic look, however slow the machine is
        runner = BatchRunner(store, Backends(max_attempts=1), poll_s=0.05)
        batch = await runner.start(exp, spec)
        finds.batch_id = batch.id
        ended = await runner.run(batch.id)
        assert ended.status is Status.done
        convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
        assert len(convs) == CONVERSATIONS and all(c.status is Status.done for c in convs)
        # the first look, the look once all ended, and the listing that reads the test's check
        assert finds.batch_listings <= 4, finds.batch_listings
    finally:
        await store.drop_database()
        await store.close()
