"""Annotation jobs like batches: concurrent within each endpoint's limit, a failed item counted
and retried by the next run (and only it), progress events, cancellation keeps what is stored."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from simulator.annotations.events import (
    AnnotationFailed,
    AnnotationFinished,
    AnnotationsStored,
    AnnotationStarted,
)
from simulator.annotations.judge import JudgeAnnotator
from simulator.annotations.moderation import ModerationAnnotator
from simulator.annotations.rubric import load_rubric
from simulator.annotations.runner import AnnotationRunner
from simulator.domain import ModelRef, Provider
from simulator.engine.events import EventBus
from simulator.llm.registry import Backends
from simulator.settings import Settings
from tests.plugins.annotations import RUBRIC, run_dialogue_study
from tests.servers import FakeModerationServer, Fault
from tests.servers.openai_server import CHAT


async def test_calls_overlap_up_to_the_endpoint_limit_and_no_further(
    store: Any, llm_settings: Settings
) -> None:
    study = await run_dialogue_study(store, repeats=4)  # 8 conversations
    with FakeModerationServer() as server:
        server.delay_s = 0.05
        backends = Backends(llm_settings, limits={"openai": 3})
        model = ModelRef(provider=Provider.openai, model="fake-judge", base_url=server.base_url)
        judge = JudgeAnnotator(load_rubric(RUBRIC), model, backends)
        try:
            report = await AnnotationRunner(store, backends, concurrency=8).run(
                judge, study.conversations
            )
            assert report.written == 16
            assert 1 < server.max_in_flight <= 3
            server.max_in_flight = 0
            moderation = ModerationAnnotator(backends, base_url=server.base_url, batch_size=2)
            report = await AnnotationRunner(store, backends, concurrency=8).run(
                moderation, study.conversations
            )
        finally:
            await backends.aclose()
    assert report.written == 48 and 1 < server.max_in_flight <= 3


async def test_a_failed_item_is_counted_and_only_it_is_asked_again(
    store: Any, llm_settings: Settings
) -> None:
    study = await run_dialogue_study(store, repeats=2)  # 4 conversations
    with FakeModerationServer() as server:
        server.script(CHAT, Fault(status=503))  # one call fails for good (one attempt)
        backends = Backends(llm_settings, max_attempts=1)
        model = ModelRef(provider=Provider.openai, model="fake-judge", base_url=server.base_url)
        judge = JudgeAnnotator(load_rubric(RUBRIC), model, backends)
        bus = EventBus()
        events: list[Any] = []
        bus.subscribe(events.append)
        try:
            first = await AnnotationRunner(store, backends, bus, concurrency=1).run(
                judge, study.conversations
            )
            assert (first.done, first.failed, first.written) == (3, 1, 6)
            assert "503" in first.errors[0] and not first.complete
            calls = len(server.chat_bodies())
            second = await AnnotationRunner(store, backends).run(judge, study.conversations)
        finally:
            await backends.aclose()
        assert second.todo == 1 and second.stored_before == 3 and second.complete
        assert len(server.chat_bodies()) == calls + 1  # the failed item, and nothing else
    kinds = [type(e) for e in events]
    assert kinds[0] is AnnotationStarted and kinds[-1] is AnnotationFinished
    assert kinds.count(AnnotationFailed) == 1 and kinds.count(AnnotationsStored) == 3
    stored = [e for e in events if isinstance(e, AnnotationsStored)]
    assert [e.done for e in stored] == [1, 2, 3]
    assert sum(len(e.annotations) for e in stored) == 6


async def test_cancelling_a_job_keeps_what_is_stored_and_the_next_run_finishes_it(
    store: Any,
) -> None:
    study = await run_dialogue_study(store, repeats=3)  # 6 conversations
    slow = ModelRef(provider=Provider.dryrun, model="judge", options={"latency_ms": 40})
    backends = Backends(max_attempts=1)
    judge = JudgeAnnotator(load_rubric(RUBRIC), slow, backends)
    bus = EventBus()
    stored_twice = asyncio.Event()

    def on_event(event: Any) -> None:
        if isinstance(event, AnnotationsStored) and event.done >= 2:
            stored_twice.set()

    bus.subscribe(on_event)
    task = asyncio.create_task(AnnotationRunner(store, backends, bus, concurrency=1).run(
        judge, study.conversations
    ))  # fmt: skip
    await asyncio.wait_for(stored_twice.wait(), timeout=30)  # wait deadline
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    kept = await store.db["annotations"].count_documents({})
    assert 4 <= kept < 12
    report = await AnnotationRunner(store, backends).run(judge, study.conversations)
    assert report.stored_before == kept // 2 and report.complete
    assert await store.db["annotations"].count_documents({}) == 12


async def test_an_item_stored_in_part_is_asked_again_and_only_its_missing_part_written(
    store: Any,
) -> None:
    from simulator.annotations.base import item_ids

    study = await run_dialogue_study(store)
    backends = Backends(max_attempts=1)
    judge = JudgeAnnotator(load_rubric(RUBRIC), ModelRef(model="judge"), backends)
    conv = study.conversations[0]
    await AnnotationRunner(store, backends).run(judge, [conv])
    plan = await AnnotationRunner(store).plan(judge, [conv])
    first, second = item_ids(judge, plan.items[0])
    kept = await store.db["annotations"].find_one({"_id": first})
    await store.db["annotations"].delete_one({"_id": second})  # as if killed between the two
    replan = await AnnotationRunner(store).plan(judge, [conv])
    assert len(replan.missing) == 1 and replan.missing_ids == {second}
    report = await AnnotationRunner(store, backends).run(judge, [conv], plan=replan)
    assert report.written == 1 and report.todo == 1
    assert await store.db["annotations"].find_one({"_id": first}) == kept
    assert await store.db["annotations"].count_documents({}) == 2
