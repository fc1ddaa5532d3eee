"""The storage contract of the ``annotations`` collection and its ``annotators`` catalogue, on
the embedded server and on a real MongoDB (``TEST_MONGODB_URI``): ids computed from the key,
first write wins, lookups by ``_id $in`` served by the primary index, deletes cascade."""

from __future__ import annotations

from typing import Any

from simulator.domain import ModelRef, TokenUsage
from simulator.domain.annotations import Annotation, AnnotatorEntry, Target, annotation_id
from simulator.domain.models import Decision


def ann(conversation_id: str = "c1", seq: int | None = 3, **kw: Any) -> Annotation:
    fields: dict[str, Any] = {
        "annotator": "judge:persuasion",
        "annotator_version": "1-abcd",
        "question": "goal_achieved",
        "value": "yes",
    }
    fields.update(kw)
    return Annotation(conversation_id=conversation_id, seq=seq, **fields)


def test_the_id_is_computed_from_the_key_and_names_the_conversation() -> None:
    a = ann()
    assert a.id.startswith("c1:000003:")
    assert a.id == ann(value="no", decision=Decision.fallback).id  # the key, not the answer
    assert a.id != ann(question="goal_third").id
    assert a.id != ann(annotator_version="2-abcd").id
    assert a.id != ann(seq=4).id
    whole = ann(seq=None)
    assert whole.target is Target.conversation and ":conversation:" in whole.id
    agent = ann(seq=None, agent="Prisoner 1")
    assert agent.target is Target.agent and agent.id != ann(seq=None, agent="Guard 1").id
    assert agent.id == annotation_id(
        "c1",
        seq=None,
        agent="Prisoner 1",
        annotator="judge:persuasion",
        version="1-abcd",
        question="goal_achieved",
    )


async def test_insert_keeps_the_first_write_and_counts_only_new_ones(store: Any) -> None:
    first = ann(
        value="yes",
        model=ModelRef(),
        usage=TokenUsage(prompt_tokens=10, completion_tokens=2),
        prompt=[{"role": "system", "content": "Judge."}],
        scores={"harassment/threatening": 0.25},
        data={"flagged_categories": ["violence"]},
    )
    assert await store.annotations.insert([first, ann(seq=4)]) == 2
    # a re-run writes the same ids again: nothing changes, nothing is duplicated
    assert await store.annotations.insert([ann(value="no"), ann(seq=5)]) == 1
    stored = await store.annotations.get_many([ann(seq=5).id, first.id, "missing"])
    assert [a.id for a in stored] == [ann(seq=5).id, first.id]
    got = stored[1]
    assert got == first  # every field round-trips, the first answer kept
    assert await store.annotations.existing([first.id, ann(seq=9).id]) == {first.id}
    assert await store.db["annotations"].count_documents({}) == 3


async def test_many_ids_are_looked_up_in_chunks(store: Any) -> None:
    many = [ann(seq=i) for i in range(2500)]
    assert await store.annotations.insert(many) == 2500
    ids = [a.id for a in many] + [ann(seq=i).id + "x" for i in range(10)]
    assert len(await store.annotations.existing(ids)) == 2500
    assert len(await store.annotations.get_many(ids)) == 2500


async def test_the_catalogue_is_idempotent_and_per_experiment(store: Any) -> None:
    entry = AnnotatorEntry(
        experiment_id="e1",
        annotator="moderation",
        annotator_version="omni",
        target=Target.message,
        kind="moderation",
    )
    other = entry.model_copy(update={"experiment_id": "e2"})
    await store.annotations.register([entry, other])
    await store.annotations.register([entry])
    got = await store.annotations.catalog(["e1"])
    assert [(e.experiment_id, e.annotator, e.target) for e in got] == [
        ("e1", "moderation", Target.message)
    ]
    assert (
        entry.annotation_id("c1", seq=2)
        == ann(seq=2, annotator="moderation", annotator_version="omni", question=None).id
    )


async def test_hot_lookups_use_the_primary_index(store: Any) -> None:
    await store.annotations.insert([ann(seq=i) for i in range(20)])
    cursor = store.db["annotations"].find({"_id": {"$in": [ann(seq=1).id, ann(seq=2).id]}})
    plan = str(await cursor.explain())
    # SQLite on the embedded server; IXSCAN / IDHACK / EXPRESS on MongoDB
    assert any(word in plan for word in ("USING INDEX", "IXSCAN", "IDHACK", "EXPRESS")), plan
    assert "SCAN annotations'" not in plan


async def test_deleting_a_conversation_or_experiment_deletes_its_annotations(
    store: Any, dialogue_study: Any
) -> None:
    conv, other = dialogue_study.conversations
    await store.annotations.insert([ann(conv.id), ann(other.id)])
    await store.annotations.register(
        [AnnotatorEntry(experiment_id=conv.experiment_id, annotator="judge:persuasion",
                        annotator_version="1-abcd", question="goal_achieved")]
    )  # fmt: skip
    await store.conversations.delete(conv.id)
    assert await store.annotations.existing([ann(conv.id).id, ann(other.id).id]) == {
        ann(other.id).id
    }
    await store.experiments.delete(conv.experiment_id)
    assert await store.annotations.existing([ann(other.id).id]) == set()
    assert await store.annotations.catalog([conv.experiment_id]) == []
