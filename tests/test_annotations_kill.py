"""An annotation process killed with SIGKILL part-way (at a point chosen by what is stored),
then run again: every item annotated exactly once, what was stored before the kill kept as it
was, and the model (or the moderation endpoint) asked again only for what was missing. The LLM
judge (one item per conversation, two answers each) and the moderation scorer (one item per
agent message, written four at a time) go through the same harness."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from simulator.annotations.service import AnnotationService
from simulator.domain.filters import ConversationFilter
from simulator.llm.registry import Backends
from simulator.settings import Settings
from tests.annotate_worker import spec_for
from tests.plugins.annotations import run_dialogue_study
from tests.servers import FakeModerationServer, Fault
from tests.servers.moderation_server import MODERATIONS
from tests.servers.openai_server import CHAT

REPO = Path(__file__).resolve().parent.parent
CONVERSATIONS = 16
MESSAGES = 6  # agent messages per conversation (tests.plugins.annotations)
# annotator -> (the server path it calls, items per conversation, annotations per item)
SHAPES = {"judge": (CHAT, 1, 2), "moderation": (MODERATIONS, MESSAGES, 1)}


async def _wait_for(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds  # wait deadline
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize(
    ("annotator", "kill_after"),  # annotations stored when the kill is sent
    [("judge", 1), ("judge", 9), ("judge", 20), ("moderation", 1), ("moderation", 45)],
)
async def test_a_killed_annotation_resumes_with_every_item_exactly_once(
    store: Any, mongo_uri: str, llm_settings: Settings, annotator: str, kill_after: int
) -> None:
    path, items_per_conversation, per_item = SHAPES[annotator]
    items = CONVERSATIONS * items_per_conversation
    await run_dialogue_study(store, repeats=CONVERSATIONS // 2)
    annotations = store.db["annotations"]
    with FakeModerationServer() as server:
        server.delay_s = 0.05
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.annotate_worker", mongo_uri, store.db.name,
            server.base_url, annotator,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        try:
            assert proc.stdout is not None and proc.stderr is not None
            # hang guard
            line = (await asyncio.wait_for(proc.stdout.readline(), timeout=60)).decode()
            if not line.startswith("planned "):
                raise AssertionError(f"worker failed: {(await proc.stderr.read()).decode()}")
            assert int(line.split()[1]) == items

            async def enough() -> bool:
                return await annotations.count_documents({}) >= kill_after

            await _wait_for(enough, 60, f"{kill_after} stored annotations")
            # from now on the server holds every new request: the worker cannot finish
            server.script(path, *[Fault(hang=True) for _ in range(4 * items)])
            proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), timeout=10)  # hang guard
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == -signal.SIGKILL
        with server._lock:  # the next run is answered normally
            server._faults[path].clear()

        before = {d["_id"]: d for d in await annotations.find({}).to_list(None)}
        assert kill_after <= len(before) < per_item * items
        backends = Backends(llm_settings, max_attempts=1)
        service = AnnotationService(store, backends)
        try:
            spec = spec_for(annotator, server.base_url)
            prepared = await service.prepare(spec, ConversationFilter())
            missing = len(prepared.plan.missing)
            seen = len(server.seen(path))
            report = await service.run(prepared)
        finally:
            await backends.aclose()
        # asked once per missing item (the texts sent, for moderation), for nothing stored
        sent = server.seen(path)[seen:]
        if annotator == "judge":
            assert len(sent) == missing == report.todo
        else:
            assert sum(len(r.body["input"]) for r in sent) == missing == report.todo
        per_item_stored: dict[tuple[str, Any], int] = {}
        for doc in before.values():
            key = (doc["conversation_id"], doc.get("seq"))
            per_item_stored[key] = per_item_stored.get(key, 0) + 1
        complete = sum(n == per_item for n in per_item_stored.values())  # all its answers
        assert missing == items - complete
    assert report.complete and report.written == per_item * items - len(before)
    after = {d["_id"]: d for d in await annotations.find({}).to_list(None)}
    assert len(after) == per_item * items  # every answer of every item, once
    for doc_id, doc in before.items():
        assert after[doc_id] == doc  # stored before the kill: kept exactly as it was
    keys = [(d["conversation_id"], d.get("seq"), d["question"]) for d in after.values()]
    assert len(set(keys)) == len(keys)
