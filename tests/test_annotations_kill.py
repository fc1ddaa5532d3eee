"""An annotation process killed with SIGKILL part-way (at a point chosen by what is stored),
then run again: every item annotated exactly once, what was stored before the kill kept as it
was, and the model asked again only for what was missing."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from simulator.annotations.service import AnnotationService, AnnotatorSpec
from simulator.domain.filters import ConversationFilter
from simulator.llm.registry import Backends
from simulator.settings import Settings
from tests.plugins.annotations import RUBRIC, run_dialogue_study
from tests.servers import FakeModerationServer, Fault
from tests.servers.openai_server import CHAT

REPO = Path(__file__).resolve().parent.parent
CONVERSATIONS = 16


async def _wait_for(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("kill_after", [1, 9, 20])  # annotations stored when the kill is sent
async def test_a_killed_annotation_resumes_with_every_item_exactly_once(
    store: Any, mongo_uri: str, llm_settings: Settings, kill_after: int
) -> None:
    await run_dialogue_study(store, repeats=CONVERSATIONS // 2)
    annotations = store.db["annotations"]
    with FakeModerationServer() as server:
        server.delay_s = 0.05
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.annotate_worker", mongo_uri, store.db.name,
            server.base_url,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        try:
            assert proc.stdout is not None and proc.stderr is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), timeout=60)).decode()
            if not line.startswith("planned "):
                raise AssertionError(f"worker failed: {(await proc.stderr.read()).decode()}")
            assert int(line.split()[1]) == CONVERSATIONS

            async def enough() -> bool:
                return await annotations.count_documents({}) >= kill_after

            await _wait_for(enough, 60, f"{kill_after} stored annotations")
            # from now on the server holds every new request: the worker cannot finish
            server.script(CHAT, *[Fault(hang=True) for _ in range(4 * CONVERSATIONS)])
            proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), timeout=10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == -signal.SIGKILL
        with server._lock:  # the next run is answered normally
            server._faults[CHAT].clear()

        before = {d["_id"]: d for d in await annotations.find({}).to_list(None)}
        assert kill_after <= len(before) < 2 * CONVERSATIONS
        backends = Backends(llm_settings, max_attempts=1)
        service = AnnotationService(store, backends)
        try:
            spec = AnnotatorSpec(
                "judge", rubric=Path(RUBRIC), model="openai:fake-judge", base_url=server.base_url
            )
            prepared = await service.prepare(spec, ConversationFilter())
            missing = len(prepared.plan.missing)
            asked = len(server.chat_bodies())
            report = await service.run(prepared)
        finally:
            await backends.aclose()
        # the model was asked once per missing item, and for nothing stored
        assert len(server.chat_bodies()) - asked == missing == report.todo
        per_conversation: dict[str, int] = {}
        for doc in before.values():
            cid = doc["conversation_id"]
            per_conversation[cid] = per_conversation.get(cid, 0) + 1
        complete = sum(n == 2 for n in per_conversation.values())  # both questions stored
        assert missing == CONVERSATIONS - complete
    assert report.complete and report.written == 2 * CONVERSATIONS - len(before)
    after = {d["_id"]: d for d in await annotations.find({}).to_list(None)}
    assert len(after) == 2 * CONVERSATIONS  # every question of every conversation, once
    for doc_id, doc in before.items():
        assert after[doc_id] == doc  # stored before the kill: kept exactly as it was
    keys = [(d["conversation_id"], d["question"]) for d in after.values()]
    assert len(set(keys)) == len(keys)
