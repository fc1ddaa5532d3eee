"""Annotation lookups stay cheap as the collection grows: the two hot reads of annotations, on a
fresh embedded server in a temporary directory, with N annotations already stored:

1. planning a job: the ids of every item of C conversations looked up with ``_id $in``
   (``AnnotationRepo.existing``), as ``simulator annotate`` does before asking anything;
2. one transcript's annotations (``conversation_annotations``: ids computed from the catalogue,
   then ``_id $in``), as the TUI's transcript reads them;

and, for comparison, the same transcript read with a plain-field filter
(``{conversation_id: X}``), which the embedded server answers by scanning the collection.

It prints one JSON object as its last line: ``stored``, ``plan_ms`` (per conversation),
``transcript_ms``, ``field_filter_ms``.

    python benchmarks/annotations_lookup.py [--conversations 200] [--messages 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from simulator.annotations.tables import ids_for
from simulator.db.embedded import EmbeddedServer
from simulator.db.mongo import connect_store
from simulator.domain import Agent, Conversation, GridCell, Message, ModelSet
from simulator.domain.annotations import Annotation, AnnotatorEntry, Target

ANNOTATORS = [("moderation", None), ("python:lab:lengths", None), ("judge:tone", "hostility")]


def conversation(i: int) -> Conversation:
    return Conversation(
        id=f"{i:032x}",
        experiment_id="e" * 32,
        cell=GridCell(counts={"Guard": 1, "Prisoner": 1}, days=1, total_messages=1,
                      models=ModelSet()),
        agents=[Agent(name="Guard 1", role="Guard", model=ModelSet().default),
                Agent(name="Prisoner 1", role="Prisoner", model=ModelSet().default)],
    )  # fmt: skip


async def main(conversations: int, messages: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedServer(Path(tmp))
        uri = server.start()
        try:
            store = await connect_store(uri, "bench")
            entries = [
                AnnotatorEntry(experiment_id="e" * 32, annotator=name, annotator_version="1",
                               question=q, target=Target.message)
                for name, q in ANNOTATORS
            ]  # fmt: skip
            await store.annotations.register(entries)
            convs = [conversation(i) for i in range(conversations)]
            seqs = range(messages)
            batch: list[Annotation] = []
            for conv in convs:
                for seq in seqs:
                    for name, q in ANNOTATORS:
                        batch.append(
                            Annotation(conversation_id=conv.id, seq=seq, annotator=name,
                                       annotator_version="1", question=q,
                                       scores={"a": 0.1, "b": 0.2})
                        )  # fmt: skip
            for start in range(0, len(batch), 5000):
                await store.annotations.insert(batch[start : start + 5000])
            msgs = {
                conv.id: [
                    Message(conversation_id=conv.id, seq=s, speaker="Guard 1", role="Guard")
                    for s in seqs
                ]
                for conv in convs
            }
            plan: list[float] = []
            for conv in convs[:20]:
                ids = ids_for(entries, conv, msgs[conv.id])
                start = time.perf_counter()
                found = await store.annotations.existing(ids)
                plan.append((time.perf_counter() - start) * 1000)
                assert len(found) == len(ids)
            transcript: list[float] = []
            field: list[float] = []
            from simulator.annotations.tables import conversation_annotations

            for conv in convs[:20]:
                start = time.perf_counter()
                got = await conversation_annotations(store, conv, msgs[conv.id])
                transcript.append((time.perf_counter() - start) * 1000)
                assert len(got) == messages * len(ANNOTATORS)
                start = time.perf_counter()
                await store.db["annotations"].find({"conversation_id": conv.id}).to_list(None)
                field.append((time.perf_counter() - start) * 1000)
            await store.close()
        finally:
            server.stop()
    return {
        "stored": len(batch),
        "plan_ms": round(statistics.median(plan), 2),
        "transcript_ms": round(statistics.median(transcript), 2),
        "field_filter_ms": round(statistics.median(field), 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--messages", type=int, default=40)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.conversations, args.messages))))
