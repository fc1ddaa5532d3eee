"""The moderation scorer against a local server speaking OpenAI's moderation API: agent messages
sent in batches, every category score stored per message, retries on 5xx/429, a rejected key
stops the job with nothing stored, a server limit on inputs is reported."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.annotations.base import item_ids
from simulator.annotations.moderation import ModerationAnnotator
from simulator.annotations.runner import AnnotationRunner
from simulator.domain.errors import LLMError
from simulator.llm.registry import Backends
from simulator.settings import Settings
from tests.plugins.annotations import DialogueStudy
from tests.servers import FakeModerationServer, Fault
from tests.servers.moderation_server import CATEGORIES, MODERATIONS, moderation_result


def backends_for(settings: Settings, **kw: Any) -> Backends:
    return Backends(settings, backoff_s=0.0, max_backoff_s=0.0, **kw)


async def test_every_agent_message_gets_every_category_score(
    store: Any,
    dialogue_study: DialogueStudy,
    llm_settings: Settings,
    moderation_server: FakeModerationServer,
) -> None:
    server = moderation_server
    server.script(MODERATIONS, Fault(status=429, retry_after=0), Fault(status=503))
    settings = llm_settings.model_copy(update={"openai_api_key": None})
    backends = backends_for(settings)
    annotator = ModerationAnnotator(backends, base_url=server.base_url, batch_size=4)
    try:
        report = await AnnotationRunner(store, backends).run(
            annotator, dialogue_study.conversations
        )
    finally:
        await backends.aclose()
    messages = [
        m
        for c in dialogue_study.conversations
        for m in await store.messages.list(c.id)
        if m.kind.value == "utterance"
    ]
    assert report.complete and report.todo == report.written == len(messages) == 12
    bodies = server.moderation_bodies()
    assert len(bodies) == 2 + 3  # two scripted faults (retried), then 12 messages in fours
    assert all(b["model"] == "omni-moderation-latest" for b in bodies)
    assert [len(b["input"]) for b in bodies[2:]] == [4, 4, 4]
    assert sorted(t for b in bodies[2:] for t in b["input"]) == sorted(m.content for m in messages)
    plan = await AnnotationRunner(store).plan(annotator, dialogue_study.conversations)
    stored = {
        a.seq: a
        for a in await store.annotations.get_many(
            [i for it in plan.items for i in item_ids(annotator, it)]
        )
        if a.conversation_id == messages[0].conversation_id
    }
    for m in messages:
        if m.conversation_id != messages[0].conversation_id:
            continue
        a = stored[m.seq]
        expected = moderation_result(m.content)
        assert set(a.scores) == set(CATEGORIES)
        assert a.scores == expected["category_scores"]
        assert a.value is expected["flagged"] and a.kind == "moderation"
        assert a.annotator == "moderation"
        assert a.annotator_version == f"omni-moderation-latest@{server.url.split('//')[1]}"
        assert a.data["served_model"] == "omni-moderation-latest-fake"
        assert a.model is not None and a.model.base_url == server.base_url


async def test_words_the_server_flags_are_stored_as_flagged(
    store: Any, llm_settings: Settings, moderation_server: FakeModerationServer
) -> None:
    from tests.plugins.annotations import run_dialogue_study

    study = await run_dialogue_study(store)
    conv = study.conversations[0]
    messages = await store.messages.list(conv.id)
    target = next(m for m in messages if m.kind.value == "utterance")
    edited = target.model_copy(update={"content": "I will hurt you, idiot."})
    await store.db["messages"].replace_one(
        {"_id": target.id}, {"_id": target.id, **edited.model_dump(mode="python")}
    )
    backends = backends_for(llm_settings)
    annotator = ModerationAnnotator(backends, base_url=moderation_server.base_url)
    try:
        await AnnotationRunner(store, backends).run(annotator, [conv])
    finally:
        await backends.aclose()
    from simulator.annotations.base import Item

    (a,) = await store.annotations.get_many(item_ids(annotator, Item(conv, seq=target.seq)))
    assert a.value is True and a.data["flagged_categories"] == ["harassment", "violence"]
    assert a.scores["violence"] == 0.91


async def test_a_rejected_key_stops_the_job_and_nothing_is_stored(
    store: Any, dialogue_study: DialogueStudy, llm_settings: Settings
) -> None:
    with FakeModerationServer(api_key="sk-right") as server:
        settings = llm_settings.model_copy(update={"openai_api_key": None})
        backends = backends_for(settings)
        annotator = ModerationAnnotator(backends, base_url=server.base_url)
        try:
            with pytest.raises(LLMError, match="API key was rejected") as info:
                await AnnotationRunner(store, backends).run(annotator, dialogue_study.conversations)
        finally:
            await backends.aclose()
        assert "sk-right" not in str(info.value)
        assert len(server.moderation_bodies()) == 1  # not retried, and the job stopped at once
    assert await store.db["annotations"].count_documents({}) == 0


async def test_a_server_limit_on_inputs_is_reported_and_a_smaller_batch_works(
    store: Any, dialogue_study: DialogueStudy, llm_settings: Settings
) -> None:
    with FakeModerationServer(max_inputs=2) as server:
        backends = backends_for(llm_settings)
        try:
            big = ModerationAnnotator(backends, base_url=server.base_url, batch_size=3)
            with pytest.raises(LLMError, match="at most 2 per request"):
                await AnnotationRunner(store, backends).run(big, dialogue_study.conversations)
            small = ModerationAnnotator(backends, base_url=server.base_url, batch_size=2)
            report = await AnnotationRunner(store, backends).run(
                small, dialogue_study.conversations
            )
        finally:
            await backends.aclose()
    assert report.complete and report.written == 12
