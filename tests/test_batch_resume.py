"""A batch process killed with SIGKILL part-way, then resumed: all cells done, nothing twice."""

from __future__ import annotations

from pathlib import Path

from simulator.db.store import ConversationFilter
from simulator.domain import BatchSpec, Experiment, ModelRef, ModelSet, Provider, Status
from simulator.engine.batch import BatchRunner, conversation_id_for
from simulator.llm.registry import Backends
from tests.test_batch import _assert_complete_and_exact
from tests.workers.harness import worker

HOLD_AT = 50  # of 36 conversations (over 300 messages): the batch cannot end before its kill


async def test_a_batch_killed_part_way_resumes_with_every_cell_done_and_nothing_duplicated(
    store, mongo_uri: str, prison_experiment: Experiment, tmp_path: Path
) -> None:
    exp = await store.experiments.create(prison_experiment)
    model = ModelRef(provider=Provider.dryrun, model="dryrun", options={"latency_ms": 30})
    spec = BatchSpec(
        experiment_id=exp.id,
        model_sets=[ModelSet(default=model)],
        max_agents={"Guard": 3, "Prisoner": 2},
        days=3,
        every_day_count=True,
        repeats=2,
        total_messages=6,
        concurrency=4,
    )
    batch_id = (await BatchRunner(store, Backends()).start(exp, spec, owner="worker")).id
    messages = store.db["messages"]
    where = {"uri": mongo_uri, "db": store.db_name, "target": batch_id, "data_dir": tmp_path}
    async with worker("batch", hold_at=HOLD_AT, **where) as w:
        await w.kill_once_held()  # (after "stored 40" it could land between conversations)

    convs = await store.conversations.list(ConversationFilter(batch_id=batch_id))
    assert len(convs) == 36
    statuses = {c.status for c in convs}
    assert Status.running in statuses, statuses  # killed mid-conversation
    assert sum(c.status is Status.done for c in convs) < 36
    stored_before = await messages.count_documents({})
    batch = await store.batches.get(batch_id)
    assert batch is not None and batch.status is Status.running

    runner = BatchRunner(store, Backends(), poll_s=0.05)
    ended = await runner.resume(batch_id)
    assert ended.status is Status.done

    convs = await store.conversations.list(ConversationFilter(batch_id=batch_id))
    assert len(convs) == 36
    assert {c.id for c in convs} == {conversation_id_for(batch_id, i) for i in range(36)}
    await _assert_complete_and_exact(store, batch_id)
    # no message stored twice: as many documents as distinct (conversation, seq) pairs
    docs = await messages.find({}, {"conversation_id": 1, "seq": 1}).to_list(None)
    keys = [(d["conversation_id"], d["seq"]) for d in docs]
    assert len(keys) == len(set(keys)) > stored_before
    assert await store.db["conversations"].count_documents({"batch_id": batch_id}) == 36
