"""Crash safety: a conversation killed with SIGKILL at random points resumes to exactly the
transcript of an uninterrupted run, and no stored model call is ever made again.

The kill points are drawn as message counts: each worker is killed after its k-th stored message
(and holds its inserts a few messages later, so the run cannot finish before the kill lands)."""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

from simulator.domain import MessageKind, SpeakerSelection, Status
from simulator.engine.conversation import prepare_conversation, run_conversation
from tests.plugins.engine import build_cell, build_dialogue_experiment, dryrun
from tests.workers.harness import worker

KILLS = 3
HOLD_AFTER_KILL = 3  # a killed worker stores at most this many messages after its k-th
PURPOSE = {MessageKind.utterance: "utterance", MessageKind.summary: "summary"}


def call_key(call: dict[str, Any]) -> tuple[str, str, int, int]:
    return (call["purpose"], call["agent"], call["day"], call["turn"])


def message_key(m: Any) -> tuple[str, str, int, int]:
    return (PURPOSE[m.kind], m.speaker, m.day, m.turn)


async def test_sigkill_at_random_points_then_resume(
    store: Any, backends: Any, mongo_uri: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("ENGINE_KILL_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    print(f"kill points drawn with ENGINE_KILL_SEED={seed}")
    exp = build_dialogue_experiment()
    await store.experiments.create(exp)
    cell = build_cell(
        40,
        3,
        guards=1,
        prisoners=2,
        selection=SpeakerSelection.random,
        seed=11,
        model=dryrun(latency_ms=20),
    )
    # an uninterrupted run of the same cell, in this process: the transcript to get back
    fresh = await prepare_conversation(store, exp, cell)
    done = await run_conversation(store, backends, fresh.id)
    assert done.status is Status.done
    reference = await store.messages.list(fresh.id)

    conv = await prepare_conversation(store, exp, cell)
    log_path = tmp_path / "calls.jsonl"
    where = {"uri": mongo_uri, "db": store.db_name, "target": conv.id}
    where |= {"data_dir": tmp_path / "data", "call_log": log_path}
    runs: list[tuple[int, set[tuple[str, str, int, int]]]] = []  # (pid, keys stored before)
    progress: list[int] = []
    for _ in range(KILLS):
        before = await store.messages.list(conv.id)
        # killed after its k-th message, at most HOLD_AFTER_KILL messages later: never finished
        k = rng.randint(1, (len(reference) - len(before)) // (2 * KILLS))
        async with worker("engine", hold_at=k + HOLD_AFTER_KILL, **where) as w:
            runs.append((w.pid, {message_key(m) for m in before if m.kind in PURPOSE}))
            await w.kill_after(k)
        progress.append(len(await store.messages.list(conv.id)))
    print(f"killed with {progress} of {len(reference)} messages stored")
    assert progress[-1] < len(reference), "the kills must interrupt the run"
    before = await store.messages.list(conv.id)
    async with worker("engine", **where) as w:
        runs.append((w.pid, {message_key(m) for m in before if m.kind in PURPOSE}))
        assert await w.finish() == "done"

    resumed = await store.messages.list(conv.id)

    def shape(ms: list[Any]) -> list[tuple[Any, ...]]:
        return [(m.seq, m.day, m.turn, m.speaker, m.kind, m.content, m.raw, m.flags) for m in ms]

    assert shape(resumed) == shape(reference)
    assert [m.seq for m in resumed] == list(range(len(resumed)))
    stored = await store.conversations.get(conv.id)
    assert stored.status is Status.done and stored.messages_done == 40
    assert stored.tokens == done.tokens

    calls = [json.loads(line) for line in log_path.read_text().splitlines()]
    for pid, stored_before in runs:
        repeated = [c for c in calls if c["pid"] == pid and call_key(c) in stored_before]
        assert repeated == [], f"run {pid} repeated stored calls: {repeated}"
    counts = Counter(call_key(c) for c in calls)
    wanted = {message_key(m) for m in resumed if m.kind in PURPOSE}
    assert set(counts) == wanted
    # a call can only be lost (and made again) when a kill lands between its answer and its insert
    assert sum(counts.values()) <= len(wanted) + KILLS
    assert progress == sorted(progress)
    assert any(0 < n < len(resumed) for n in progress), progress
