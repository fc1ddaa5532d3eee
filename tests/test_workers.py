"""Several workers share one batch through the database (per-conversation leases): three
worker processes, one SIGKILLed part-way (at a point chosen by stored progress); the other two
take its conversations over and finish the batch exactly, and the model server counts what was
asked twice: only the killed worker's calls in flight, at most one per conversation it held."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from simulator.db.store import ConversationFilter
from simulator.domain import BatchSpec, Experiment, ModelRef, ModelSet, Provider, Status, utcnow
from simulator.domain.models import BatchWorker
from simulator.engine.batch import BatchInUseError, BatchRunner
from simulator.engine.leases import now_ms
from simulator.llm.dryrun import register_policy, unregister_policy
from simulator.llm.registry import Backends
from tests.plugins.waiting import DEADLINE_S, wait_until
from tests.servers.openai_server import CHAT, FakeOpenAIServer
from tests.test_batch import _assert_complete_and_exact
from tests.workers.harness import worker

KILL_AFTER = 12  # messages stored by the worker to be killed
HOLD_AT = 14  # its later inserts wait for the kill: it cannot finish its share before


def _calls_at_the_server(server: FakeOpenAIServer) -> Counter[tuple[str, str]]:
    """Each chat request the server received, as (conversation, exact messages sent)."""
    return Counter(
        (body["prompt_cache_key"], json.dumps(body["messages"], sort_keys=True))
        for body in server.chat_bodies()
    )


async def test_three_workers_one_killed_finish_the_batch_asking_again_only_its_calls_in_flight(
    store: Any, mongo_uri: str, prison_experiment: Experiment, tmp_path: Path
) -> None:
    with FakeOpenAIServer() as server:
        server.delay_s = 0.02  # calls overlap, so a kill finds some in flight
        model = ModelRef(
            provider=Provider.openai,
            model="fake-model",
            base_url=server.base_url,
            options={"prompt_cache_key": True},  # each request names its conversation
        )
        exp = await store.experiments.create(prison_experiment)
        spec = BatchSpec(
            experiment_id=exp.id,
            model_sets=[ModelSet(default=model)],
            max_agents={"Guard": 2, "Prisoner": 2},
            days=2,
            every_day_count=True,
            repeats=3,
            total_messages=4,
            concurrency=3,
        )
        batch = await BatchRunner(store, Backends()).start(exp, spec, owner="lab")
        assert batch.cells_total == 24
        log = tmp_path / "calls.jsonl"
        where = {"uri": mongo_uri, "db": store.db_name, "target": batch.id, "data_dir": tmp_path}
        async with (
            worker("shared", hold_at=HOLD_AT, call_log=log, **where) as doomed,
            worker("shared", call_log=log, **where) as second,
            worker("shared", call_log=log, **where) as third,
        ):
            await doomed.kill_after(KILL_AFTER)
            assert await second.finish() == "done"
            assert await third.finish() == "done"

        ended = await store.batches.get(batch.id)
        assert ended is not None and ended.status is Status.done, ended
        assert ended.workers == []  # the last worker out stored the end and left
        await _assert_complete_and_exact(store, batch.id)
        docs = await store.db["messages"].find({}, {"conversation_id": 1, "seq": 1}).to_list(None)
        keys = [(d["conversation_id"], d["seq"]) for d in docs]
        assert len(keys) == len(set(keys))  # no message stored twice

        lines = [json.loads(line) for line in log.read_text().splitlines()]
        took: dict[int, set[str]] = defaultdict(set)
        for line in lines:
            if "took" in line:
                took[line["pid"]].add(line["took"])
        assert set(took) == {doomed.pid, second.pid, third.pid}  # all three worked on it
        held_by_killed = took[doomed.pid]

        calls = _calls_at_the_server(server)
        convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
        stored_calls = 0
        for conv in convs:
            stored_calls += sum(m.calls for m in await store.messages.list(conv.id))
        assert len(calls) == stored_calls  # every stored answer was asked for, once or twice
        repeated = {key: n for key, n in calls.items() if n > 1}
        assert all(n == 2 for n in repeated.values()), repeated
        per_conversation = Counter(conv for conv, _ in repeated)
        assert set(per_conversation) <= held_by_killed  # only the killed worker's calls
        assert all(n == 1 for n in per_conversation.values())  # one in flight per conversation
        assert sum(calls.values()) == stored_calls + len(repeated)


def _dryrun_spec(exp: Experiment, **options: Any) -> BatchSpec:
    model = ModelRef(provider=Provider.dryrun, model="dryrun", options=options)
    return BatchSpec(
        experiment_id=exp.id,
        model_sets=[ModelSet(default=model)],
        total_messages=4,
        days=1,
        max_agents={r.name: 1 for r in exp.roles},
        concurrency=2,
    )


async def test_a_lease_of_another_machine_is_waited_for_until_it_expires_then_taken_over(
    store: Any, prison_experiment: Experiment
) -> None:
    exp = await store.experiments.create(prison_experiment)
    runner = BatchRunner(store, Backends(), poll_s=0.05, heartbeat_s=0.1, lease_s=30)
    batch = await runner.start(exp, _dryrun_spec(exp))
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    held = convs[0]
    elsewhere = "gpu-box.example.org:4242/1"
    # another machine's worker, alive, holding one conversation for 1.5 s more
    await store.conversations.set_fields(
        held.id, status=Status.running, runner=elsewhere, lease_until=now_ms() + 1500
    )
    await store.batches.update_if(
        batch.id,
        lambda b: True,
        status=Status.running,
        workers=[BatchWorker(runner=elsewhere, heartbeat_at=utcnow())],
    )
    with pytest.raises(BatchInUseError, match=re.escape(elsewhere)):
        await runner.run(batch.id)  # a plain resume is refused while it is alive
    assert (await store.conversations.get(held.id)).status is Status.running

    ended = await asyncio.wait_for(runner.run(batch.id, join=True), DEADLINE_S)  # wait deadline
    taken = await store.conversations.get(held.id)
    assert taken is not None and taken.status is Status.done
    assert taken.runner is None and taken.lease_until is None  # released at its end
    # every conversation ended: stored as done, though the other machine is still listed
    assert ended.status is Status.done
    assert [w.runner for w in ended.workers] == [elsewhere]
    await _assert_complete_and_exact(store, batch.id)


async def test_a_conversation_renews_its_lease_one_taken_over_stops_and_is_taken_back_later(
    store: Any, prison_experiment: Experiment
) -> None:
    released = asyncio.Event()
    abandoned: list[str] = []  # calls whose conversation was stopped while they waited

    async def held(request: Any) -> str:
        try:
            await released.wait()
        except asyncio.CancelledError:
            abandoned.append(request.meta.agent)
            raise
        return f"[dryrun] {request.meta.agent} speaks."

    register_policy("held-for-worker-test", held)
    try:
        exp = await store.experiments.create(prison_experiment)
        runner = BatchRunner(store, Backends(), poll_s=0.05, heartbeat_s=0.1, lease_s=30)
        batch = await runner.start(exp, _dryrun_spec(exp, policy="held-for-worker-test"))
        running = asyncio.create_task(runner.run(batch.id))

        async def leased() -> list[Any]:
            convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
            return [c for c in convs if c.runner == runner.runner_id]

        first = (await wait_until(leased, what="conversations leased by the runner"))[0]

        async def renewed() -> bool:
            now = await store.conversations.get(first.id)
            return now.lease_until > first.lease_until

        await wait_until(renewed, what="a renewed lease")
        # another worker takes it over (as after a long pause of this one); the compare-and-set
        # fails when this runner renewed in between: try again with what is stored then

        async def taken_over() -> bool:
            seen = await store.conversations.get(first.id)
            return await store.conversations.take_lease(
                first.id,
                "gpu-box.example.org:4242/1",
                now_ms() + 1500,  # then that worker stops answering too
                seen_runner=seen.runner,
                seen_until=seen.lease_until,
            )

        await wait_until(taken_over, what="the other worker's takeover")

        # at its next renewal the runner finds the lease gone and stops that conversation
        await wait_until(lambda: abandoned, what="the runner to stop the conversation it lost")
        released.set()
        ended = await asyncio.wait_for(running, DEADLINE_S)  # wait deadline
    finally:
        unregister_policy("held-for-worker-test")
    # its lease expired in turn: the first runner took the conversation back and finished it
    back = await store.conversations.get(first.id)
    assert back is not None and back.status is Status.done and back.runner is None
    assert ended.status is Status.done
    await _assert_complete_and_exact(store, batch.id)


async def test_an_endpoint_limit_holds_across_three_worker_processes(
    store: Any,
    mongo_uri: str,
    prison_experiment: Experiment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit = 2  # each process alone would send 2 at once: 6 together without shared slots
    monkeypatch.setenv("OPENAI_CONCURRENCY", str(limit))
    with FakeOpenAIServer() as server:
        server.delay_s = 0.1  # the first worker is still busy when the others join
        model = ModelRef(provider=Provider.openai, model="fake-model", base_url=server.base_url)
        exp = await store.experiments.create(prison_experiment)
        spec = BatchSpec(
            experiment_id=exp.id,
            model_sets=[ModelSet(default=model)],
            max_agents={"Guard": 2, "Prisoner": 1},
            total_messages=6,
            repeats=8,  # enough conversations to keep all three workers calling at once
            concurrency=4,
        )
        batch = await BatchRunner(store, Backends()).start(exp, spec, owner="lab")
        where = {"uri": mongo_uri, "db": store.db_name, "target": batch.id, "data_dir": tmp_path}
        async with (
            worker("shared", **where) as first,
            worker("shared", **where) as second,
            worker("shared", **where) as third,
        ):
            for w in (first, second, third):
                assert await w.finish() == "done"
        calls_at_once = server.max_path_in_flight[CHAT]  # model listings (preflight) apart
        assert calls_at_once <= limit, calls_at_once
        assert batch.cells_total == 16
        await _assert_complete_and_exact(store, batch.id)
        slots = await store.db["slots"].find({}).to_list(None)
        assert len(slots) == limit and all(s["holder"] is None for s in slots)  # all let go


def test_the_monitor_says_which_worker_runs_how_many_conversations(
    prison_experiment: Experiment,
) -> None:
    from simulator.domain import Batch, Conversation, GridCell
    from simulator.tui.runs import BatchRun, ConversationRow
    from simulator.tui.screens.monitor import summary_text

    exp = prison_experiment
    batch = Batch(experiment_id=exp.id, spec=BatchSpec(experiment_id=exp.id), status=Status.running)
    run = BatchRun(batch, exp.name, ["Guard", "Prisoner"])
    until = now_ms() + 30_000
    cell = GridCell(counts={"Guard": 1, "Prisoner": 1}, days=1, total_messages=4, models=ModelSet())
    for i, (runner, status) in enumerate(
        [("gpu-a:1/1", Status.running), ("gpu-a:1/1", Status.running),
         ("gpu-b:2/1", Status.running), ("gpu-b:2/1", Status.done), (None, Status.pending)]
    ):  # fmt: skip
        conv = Conversation(
            experiment_id=exp.id, cell=cell, cell_index=i, status=status,
            runner=runner, lease_until=until if runner else None,
        )  # fmt: skip
        run.rows[conv.id] = ConversationRow.of(conv)
    text = summary_text(run)
    assert "workers gpu-a:1/1 (2), gpu-b:2/1 (1)" in text  # a finished one is held by nobody
