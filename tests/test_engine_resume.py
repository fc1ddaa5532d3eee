"""Crash safety: a conversation killed with SIGKILL at random points resumes to exactly the
transcript of an uninterrupted run, and no stored model call is ever made again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from simulator.domain import MessageKind, SpeakerSelection, Status
from simulator.engine.conversation import prepare_conversation, run_conversation
from tests.plugins.engine import build_cell, build_dialogue_experiment, dryrun

ROOT = Path(__file__).resolve().parents[1]
KILLS = 3
PURPOSE = {MessageKind.utterance: "utterance", MessageKind.summary: "summary"}


def call_key(call: dict[str, Any]) -> tuple[str, str, int, int]:
    return (call["purpose"], call["agent"], call["day"], call["turn"])


def message_key(m: Any) -> tuple[str, str, int, int]:
    return (PURPOSE[m.kind], m.speaker, m.day, m.turn)


async def start_worker(env: dict[str, str]) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.engine_worker",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=120)
    if line.strip() != b"ready":
        err = await proc.stderr.read() if proc.stderr else b""
        raise AssertionError(f"worker did not start: {line!r} {err.decode()[-2000:]}")
    return proc


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
    conv = await prepare_conversation(store, exp, cell)
    log_path = tmp_path / "calls.jsonl"
    env = {
        **os.environ,
        "ENGINE_WORKER_URI": mongo_uri,
        "ENGINE_WORKER_DB": store.db_name,
        "ENGINE_WORKER_CONVERSATION": conv.id,
        "ENGINE_WORKER_CALL_LOG": str(log_path),
        "SIMULATOR_DATA_DIR": str(tmp_path / "data"),
    }
    runs: list[tuple[int, set[tuple[str, str, int, int]]]] = []  # (pid, keys stored before)
    progress: list[int] = []
    for _ in range(KILLS):
        before = await store.messages.list(conv.id)
        proc = await start_worker(env)
        runs.append((proc.pid, {message_key(m) for m in before if m.kind in PURPOSE}))
        await asyncio.sleep(rng.uniform(0.02, 0.3))
        with contextlib.suppress(ProcessLookupError):
            proc.kill()  # SIGKILL
        await proc.wait()
        assert proc.returncode == -signal.SIGKILL, "the worker finished before it was killed"
        progress.append(len(await store.messages.list(conv.id)))
    before = await store.messages.list(conv.id)
    proc = await start_worker(env)
    runs.append((proc.pid, {message_key(m) for m in before if m.kind in PURPOSE}))
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert out.strip() == b"done"

    resumed = await store.messages.list(conv.id)
    # an uninterrupted run of the same cell, in this process
    fresh = await prepare_conversation(store, exp, cell)
    done = await run_conversation(store, backends, fresh.id)
    assert done.status is Status.done
    reference = await store.messages.list(fresh.id)

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
