"""BatchRunner on the embedded server with dryrun: start, run, failures, cancel, resume."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from simulator.db.store import ConversationFilter
from simulator.domain import (
    BatchSpec,
    Experiment,
    MessageKind,
    ModelRef,
    ModelSet,
    Provider,
    Status,
)
from simulator.domain.errors import LLMError
from simulator.engine.batch import BatchRunner, conversation_id_for
from simulator.engine.budget import day_budgets
from simulator.engine.events import BatchProgress, EventBus, MessageStored
from simulator.llm.dryrun import register_policy, unregister_policy
from simulator.llm.registry import Backends
from tests.plugins.batches import GOAL_LEVELS
from tests.plugins.waiting import DEADLINE_S, wait_until

AGENT_KINDS = (MessageKind.utterance, MessageKind.action)


def _dryrun(latency_ms: int = 0, **options: object) -> ModelSet:
    opts = {"latency_ms": latency_ms, **options} if latency_ms else dict(options)
    return ModelSet(default=ModelRef(provider=Provider.dryrun, model="dryrun", options=opts))


def _spec(exp: Experiment, **kw: object) -> BatchSpec:
    base: dict[str, object] = {
        "experiment_id": exp.id,
        "max_agents": {"Guard": 3, "Prisoner": 2},
        "days": 3,
        "every_day_count": True,
        "repeats": 2,
        "total_messages": 6,
        "concurrency": 8,
        "model_sets": [_dryrun()],
    }
    base.update(kw)
    return BatchSpec(**base)  # type: ignore[arg-type]


def _runner(store, bus: EventBus | None = None) -> BatchRunner:  # type: ignore[no-untyped-def]
    return BatchRunner(store, Backends(max_attempts=1, backoff_s=0.0), bus, poll_s=0.05)


async def _assert_complete_and_exact(store, batch_id: str) -> None:  # type: ignore[no-untyped-def]
    """Every conversation done, with exactly its budget per day, one summary per day, and dense,
    unique message seqs (nothing duplicated, nothing missing)."""
    convs = await store.conversations.list(ConversationFilter(batch_id=batch_id))
    for conv in convs:
        assert conv.status is Status.done, (conv.id, conv.status, conv.error)
        messages = await store.messages.list(conv.id)
        assert [m.seq for m in messages] == list(range(len(messages)))
        agent = [m for m in messages if m.kind in AGENT_KINDS]
        assert len(agent) == conv.cell.total_messages == conv.budget
        assert conv.messages_done == conv.cell.total_messages
        per_day = Counter(m.day for m in agent)
        assert [per_day[d] for d in range(1, conv.cell.days + 1)] == day_budgets(
            conv.cell.total_messages, conv.cell.days
        )
        summaries = [m for m in messages if m.kind is MessageKind.summary]
        assert sorted(m.day for m in summaries) == list(range(1, conv.cell.days + 1))


async def test_a_dryrun_batch_stores_36_conversations_each_with_its_exact_budget(
    store, prison_experiment: Experiment
) -> None:
    exp = await store.experiments.create(prison_experiment)
    bus = EventBus()
    progress: list[BatchProgress] = []
    bus.subscribe(lambda e: progress.append(e) if isinstance(e, BatchProgress) else None)
    runner = _runner(store, bus)
    batch = await runner.start(exp, _spec(exp), owner="ada")
    assert batch.cells_total == 36 and batch.status is Status.pending
    assert batch.estimate is not None and batch.estimate.conversations == 36
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    assert len(convs) == 36 and {c.status for c in convs} == {Status.pending}
    assert {c.id for c in convs} == {conversation_id_for(batch.id, i) for i in range(36)}
    assert {c.owner for c in convs} == {"ada"}

    ended = await runner.run(batch.id)
    assert ended.status is Status.done and ended.finished_at is not None
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    assert len(convs) == 36
    tuples = {
        (c.cell.counts["Guard"], c.cell.counts["Prisoner"], c.cell.days, c.cell.repeat)
        for c in convs
    }
    assert len(tuples) == 36
    await _assert_complete_and_exact(store, batch.id)
    # the estimate's LLM calls are the calls the engine made
    calls = 0
    for conv in convs:
        calls += sum(m.model is not None for m in await store.messages.list(conv.id))
    assert calls == batch.estimate.llm_calls
    assert progress[-1] == BatchProgress(batch.id, 36, 0, 36)
    assert await runner.progress(batch.id) == progress[-1]
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    # running a done batch again changes nothing
    again = await runner.resume(batch.id)
    assert again.status is Status.done
    assert len(await store.conversations.list(ConversationFilter(batch_id=batch.id))) == 36


async def test_a_two_level_factor_gives_72_conversations_with_each_levels_text(
    store, prison_experiment_with_goal: Experiment
) -> None:
    exp = await store.experiments.create(prison_experiment_with_goal)
    batch = await _runner(store).start(exp, _spec(exp))
    assert batch.cells_total == 72
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    assert len(convs) == 72
    for level, text in GOAL_LEVELS.items():
        with_level = [c for c in convs if c.cell.factors == {"goal": level}]
        assert len(with_level) == 36
        other = next(t for lv, t in GOAL_LEVELS.items() if lv != level)
        for conv in with_level:
            prisoners = [a for a in conv.agents if a.role == "Prisoner"]
            guards = [a for a in conv.agents if a.role == "Guard"]
            assert prisoners and all(text in a.system_prompt for a in prisoners)
            assert all(other not in a.system_prompt for a in prisoners)
            assert all(text not in a.system_prompt for a in guards)


async def test_a_failing_conversation_ends_failed_and_never_stops_the_others(
    store, prison_experiment: Experiment
) -> None:
    def broken(request):  # type: ignore[no-untyped-def]
        raise RuntimeError("the model server crashed")

    register_policy("broken-for-batch-test", broken)
    try:
        exp = await store.experiments.create(prison_experiment)
        bad = ModelSet(
            default=ModelRef(
                provider=Provider.dryrun,
                model="dryrun",
                options={"policy": "broken-for-batch-test"},
            )
        )
        spec = _spec(
            exp,
            model_sets=[_dryrun(), bad],
            max_agents={},
            every_day_count=False,
            days=1,
            repeats=2,
        )
        runner = _runner(store)
        batch = await runner.start(exp, spec)
        ended = await runner.run(batch.id)
        assert ended.status is Status.failed
        assert ended.error is not None and "2 of 4 conversations failed" in ended.error
        convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
        by_status = Counter(c.status for c in convs)
        assert by_status == {Status.done: 2, Status.failed: 2}
        assert await runner.progress(batch.id) == BatchProgress(batch.id, 2, 2, 4)
        for conv in convs:
            if conv.status is Status.failed:
                assert conv.cell.models == bad
                assert conv.error and "the model server crashed" in conv.error
    finally:
        unregister_policy("broken-for-batch-test")


async def test_cancel_stops_running_conversations_promptly_and_resume_finishes_them(
    store, prison_experiment: Experiment
) -> None:
    exp = await store.experiments.create(prison_experiment)
    spec = _spec(exp, model_sets=[_dryrun(latency_ms=30)], repeats=1, concurrency=4)
    bus = EventBus()
    runner = _runner(store, bus)
    batch = await runner.start(exp, spec)
    stored = 0
    stored_when_cancelled: list[int] = []  # messages stored when runner.cancel() returned
    cancelling: list[asyncio.Future[object]] = []

    def on_event(event: object) -> None:
        nonlocal stored
        if isinstance(event, MessageStored):
            stored += 1
            if stored == 12 and not cancelling:
                cancelling.append(asyncio.ensure_future(runner.cancel(batch.id)))
                cancelling[0].add_done_callback(lambda _: stored_when_cancelled.append(stored))

    bus.subscribe(on_event)
    ended = await runner.run(batch.id)
    assert ended.status is Status.cancelled
    # Not waiting for the conversations to end: once cancel() returns, a running conversation
    # can at most finish the insert it is in (one per conversation running at once).
    assert stored - stored_when_cancelled[0] <= spec.concurrency, (stored, stored_when_cancelled)
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    statuses = Counter(c.status for c in convs)
    assert statuses[Status.done] < 18
    assert Status.running not in statuses
    assert statuses[Status.cancelled] >= 1

    ended = await runner.resume(batch.id)
    assert ended.status is Status.done
    await _assert_complete_and_exact(store, batch.id)


async def test_a_cancel_from_another_runner_is_seen_through_the_database(
    store, prison_experiment: Experiment
) -> None:
    calls = 0
    never = asyncio.Event()

    async def held_after_ten_calls(request):  # type: ignore[no-untyped-def]
        """The batch cannot end by itself: only the cancel stops it."""
        nonlocal calls
        calls += 1
        if calls > 10:
            await never.wait()
        return f"[dryrun] {request.meta.agent} speaks."

    register_policy("held-for-batch-test", held_after_ten_calls)
    try:
        exp = await store.experiments.create(prison_experiment)
        held = _dryrun(policy="held-for-batch-test")
        spec = _spec(exp, model_sets=[held], total_messages=10, concurrency=2)
        runner = _runner(store)
        other = BatchRunner(store, backends=None)  # e.g. `simulator cancel` in another process
        batch = await runner.start(exp, spec)
        task = asyncio.create_task(runner.run(batch.id))
        await wait_until(lambda: calls > 10, what="the batch to run into the held calls")
        await other.cancel(batch.id)
        ended = await asyncio.wait_for(task, DEADLINE_S)  # wait deadline
    finally:
        unregister_policy("held-for-batch-test")
    assert ended.status is Status.cancelled
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    assert sum(c.status is Status.done for c in convs) < 36
    assert all(c.status is not Status.running for c in convs)
    assert sum(c.status is Status.cancelled for c in convs) >= 1


async def test_resume_creates_cells_a_crashed_start_left_out_without_duplicates(
    store, prison_experiment: Experiment
) -> None:
    exp = await store.experiments.create(prison_experiment)
    runner = _runner(store)
    batch = await runner.start(exp, _spec(exp, repeats=1, every_day_count=False))
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    assert len(convs) == 6
    # a crash during start: only some conversations were stored
    for conv in convs[2:]:
        await store.conversations.delete(conv.id)
    ended = await runner.resume(batch.id)
    assert ended.status is Status.done
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    assert sorted(c.cell_index for c in convs) == list(range(6))
    assert {c.id for c in convs} == {conversation_id_for(batch.id, i) for i in range(6)}
    await _assert_complete_and_exact(store, batch.id)


async def test_each_endpoint_is_kept_busy_up_to_its_own_limit(
    store, prison_experiment: Experiment
) -> None:
    """A batch mixing a slow endpoint (limit 1) and a fast one (limit 3) keeps both busy at once:
    the batch-level limit does not let one endpoint's queue starve the other."""
    in_flight: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    both_busy = False

    async def tracked(request):  # type: ignore[no-untyped-def]
        nonlocal both_busy
        where = request.model.base_url
        in_flight[where] += 1
        peak[where] = max(peak[where], in_flight[where])
        both_busy = both_busy or (in_flight["http://slow"] > 0 and in_flight["http://fast"] > 0)
        await asyncio.sleep(0.01)  # a call that takes a moment, so that calls overlap
        in_flight[where] -= 1
        return f"[dryrun] {request.meta.agent} speaks."

    register_policy("tracked-for-batch-test", tracked)
    try:
        exp = await store.experiments.create(prison_experiment)

        def endpoint(url: str) -> ModelSet:
            opts = {"policy": "tracked-for-batch-test"}
            return ModelSet(
                default=ModelRef(
                    provider=Provider.dryrun, model="dryrun", base_url=url, options=opts
                )
            )

        spec = _spec(
            exp,
            model_sets=[endpoint("http://slow"), endpoint("http://fast")],
            max_agents={},
            every_day_count=False,
            days=1,
            repeats=4,
            total_messages=4,
            concurrency=16,
        )
        backends = Backends(limits={"dryrun:http://slow": 1, "dryrun:http://fast": 3})
        runner = BatchRunner(store, backends)
        batch = await runner.start(exp, spec)
        ended = await runner.run(batch.id)
        assert ended.status is Status.done, ended.error
        assert peak == {"http://slow": 1, "http://fast": 3}
        assert both_busy
    finally:
        unregister_policy("tracked-for-batch-test")


async def test_an_unavailable_model_stores_nothing_and_stops_a_resume_before_it_starts(
    store, prison_experiment: Experiment
) -> None:
    exp = await store.experiments.create(prison_experiment)
    missing = ModelSet(
        default=ModelRef(
            provider=Provider.dryrun, model="dryrun", options={"policy": "later-for-batch-test"}
        )
    )
    spec = _spec(exp, model_sets=[missing], max_agents={}, every_day_count=False, days=1)
    runner = _runner(store)
    # Refused by its preflight: nothing is stored (no failed batch left behind).
    with pytest.raises(LLMError, match="later-for-batch-test"):
        await runner.start(exp, spec)
    assert await store.batches.list() == []
    assert await store.conversations.list(ConversationFilter(experiment_id=exp.id)) == []

    register_policy("later-for-batch-test", lambda request: "[dryrun] fine.")
    try:
        batch = await runner.start(exp, spec)
    finally:
        unregister_policy("later-for-batch-test")
    # The model went away before the run: the run stops before any conversation starts and
    # the batch stays as it was (resumable), not failed.
    with pytest.raises(LLMError, match="later-for-batch-test"):
        await _runner(store).run(batch.id)
    stopped = await runner.get(batch.id)
    assert stopped.status is Status.pending and stopped.error is None
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    assert {c.status for c in convs} == {Status.pending}
    assert await store.messages.list(convs[0].id) == []

    register_policy("later-for-batch-test", lambda request: "[dryrun] fine.")
    try:
        ended = await runner.resume(batch.id)
    finally:
        unregister_policy("later-for-batch-test")
    assert ended.status is Status.done and ended.error is None
