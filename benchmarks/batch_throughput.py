"""Batch throughput: sequential vs concurrent conversations, and the engine's own overhead.

Runs a grid of dialogue conversations (two roles, up to 3x3 agents, every combination: 9 cells;
2 days; 20 messages) on the dryrun backend with an artificial latency per model call, on a fresh
embedded server in a temporary directory:

1. with batch concurrency 1 (one conversation after the other);
2. with the default batch concurrency (``BatchSpec().concurrency``);
3. at zero latency and concurrency 1, to measure the engine's own time per stored message (the
   median gap between consecutive messages of a conversation: the dryrun call, prompt building,
   cleaning, the insert into MongoDB and its round trip to the embedded server, events);
4. the floor under that figure: the median time of a bare ``insert_one`` of the same stored
   message documents, one after the other, on the same server and client (and of a ``ping``).
   The engine cannot go below it, since every message is stored before the next turn starts.

The embedded server is a separate process on the same machine, so on a machine with few cores
every figure depends on what else runs: the load average is printed with the figures.

It prints the figures and, as its last line, one JSON object with the keys ``messages``,
``wall_sequential_s``, ``wall_concurrent_s``, ``speedup``, ``critical_path_s``,
``concurrent_over_critical`` and ``overhead_ms_per_message`` (plus ``insert_floor_ms``), so
results can be tracked over time. docs/benchmarks.md explains the figures and lists measurements.

    python benchmarks/batch_throughput.py [--latency-ms 200] [--max-agents 3]

Targets (issue 6): concurrent wall time within 1.5x of the critical path (the longest
conversation's sequence of calls times the latency), at least 8x faster than sequential, and at
most 5 ms of overhead per message at zero latency.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from simulator.db.embedded import EmbeddedServer
from simulator.db.mongo import connect_store
from simulator.db.store import ConversationFilter
from simulator.domain import (
    BatchSpec,
    Experiment,
    MessageKind,
    ModelRef,
    ModelSet,
    Provider,
    Role,
    Section,
    SectionKind,
    Status,
)
from simulator.engine.batch import BatchRunner
from simulator.engine.events import EventBus, MessageStored
from simulator.llm.registry import Backends
from simulator.scenarios.registry import KINDS, install

install()  # the experiment kinds, as the composition root (AppRoot) installs them for a command

AGENT_KINDS = (MessageKind.utterance, MessageKind.action)


def experiment() -> Experiment:
    return Experiment(
        name="Throughput benchmark",
        starting_message="Day <DAY> of <DAYS> begins in the prison yard.",
        roles=[
            Role(
                name="Guard",
                sections=[
                    Section(
                        title="Role",
                        kind=SectionKind.private,
                        content="You are <NAME>, one of <Guard_NUMWORD> <Guard_NOUN>.",
                    )
                ],
            ),
            Role(
                name="Prisoner",
                sections=[
                    Section(
                        title="Role",
                        kind=SectionKind.private,
                        content="You are <NAME>, one of <Prisoner_NUMWORD> <Prisoner_NOUN>.",
                    )
                ],
            ),
        ],
        shared_sections=[Section(title="Setting", content="A prison study. Stay in character.")],
        summarizer_sections=[
            Section(title="Task", kind=SectionKind.summarizer, content="Summarize day <DAY>.")
        ],
    )


def spec(exp: Experiment, latency_ms: float, max_agents: int, concurrency: int | None) -> BatchSpec:
    model = ModelRef(provider=Provider.dryrun, model="dryrun", options={"latency_ms": latency_ms})
    fields: dict[str, Any] = {
        "experiment_id": exp.id,
        "model_sets": [ModelSet(default=model)],
        "max_agents": {"Guard": max_agents, "Prisoner": max_agents},
        "every_combination": True,
        "days": 2,
        "total_messages": 20,
    }
    if concurrency is not None:
        fields["concurrency"] = concurrency
    return BatchSpec(**fields)


class Timeline:
    """When each message of each conversation was stored (perf_counter seconds)."""

    def __init__(self) -> None:
        self.stamps: dict[str, list[float]] = defaultdict(list)

    def __call__(self, event: Any) -> None:
        if isinstance(event, MessageStored):
            self.stamps[event.conversation_id].append(time.perf_counter())

    def gaps_ms(self) -> list[float]:
        out: list[float] = []
        for stamps in self.stamps.values():
            out += [(b - a) * 1000 for a, b in itertools.pairwise(stamps)]
        return out


async def run_batch(store: Any, exp: Experiment, batch_spec: BatchSpec) -> dict[str, Any]:
    bus = EventBus()
    timeline = Timeline()
    bus.subscribe(timeline)
    backends = Backends()
    try:
        runner = BatchRunner(store, backends, bus, kinds=KINDS)
        batch = await runner.start(exp, batch_spec, owner="benchmark")
        t0 = time.perf_counter()
        ended = await runner.run(batch.id)
        wall = time.perf_counter() - t0
    finally:
        await backends.aclose()
    if ended.status is not Status.done:
        raise SystemExit(f"benchmark batch ended {ended.status.value}: {ended.error}")
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    calls_per_conversation: list[int] = []
    agent_messages = stored = 0
    for conv in convs:
        messages = await store.messages.list(conv.id)
        stored += len(messages)
        agent_messages += sum(m.kind in AGENT_KINDS for m in messages)
        calls_per_conversation.append(sum(m.model is not None for m in messages))
    return {
        "batch_id": batch.id,
        "wall": wall,
        "conversations": len(convs),
        "agent_messages": agent_messages,
        "stored": stored,
        "longest_calls": max(calls_per_conversation),
        "gaps_ms": timeline.gaps_ms(),
    }


async def round_trip_floor(store: Any, batch_id: str, rounds: int = 200) -> dict[str, float]:
    """Median ms of a bare ``insert_one`` of the batch's stored message documents (copies, into a
    scratch collection with the same unique index) and of a ``ping``, one after the other."""
    convs = await store.conversations.list(ConversationFilter(batch_id=batch_id))
    ids = [c.id for c in convs]
    docs = await store.db["messages"].find({"conversation_id": {"$in": ids}}).to_list(None)
    scratch = store.db["benchmark_floor"]
    await scratch.create_index([("conversation_id", 1), ("seq", 1)], unique=True)
    inserts: list[float] = []
    for i in range(rounds):
        doc = {**docs[i % len(docs)], "_id": f"floor:{i:06d}", "conversation_id": "floor", "seq": i}
        t0 = time.perf_counter()
        await scratch.insert_one(doc)
        inserts.append((time.perf_counter() - t0) * 1000)
    pings: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await store.db.command("ping")
        pings.append((time.perf_counter() - t0) * 1000)
    await scratch.drop()
    return {"insert_ms": statistics.median(inserts), "ping_ms": statistics.median(pings)}


def load_average() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


async def main(latency_ms: float, max_agents: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        server = EmbeddedServer(Path(tmp))
        uri = await asyncio.to_thread(server.start)
        try:
            store = await connect_store(uri, "benchmark")
            try:
                exp = await store.experiments.create(experiment())
                default_concurrency = BatchSpec(experiment_id=exp.id).concurrency
                print(
                    f"grid: 2 roles up to {max_agents}x{max_agents}, every combination, 2 days, "
                    f"20 messages; dryrun latency {latency_ms:g} ms per call; embedded server"
                )
                print(f"machine: {os.cpu_count()} cores; load average {load_average()}")
                seq = await run_batch(store, exp, spec(exp, latency_ms, max_agents, 1))
                print(
                    f"sequential (concurrency 1): {seq['conversations']} conversations, "
                    f"{seq['agent_messages']} agent messages ({seq['stored']} stored), "
                    f"wall {seq['wall']:.2f} s"
                )
                con = await run_batch(store, exp, spec(exp, latency_ms, max_agents, None))
                print(f"concurrent (concurrency {default_concurrency}): wall {con['wall']:.2f} s")
                zero = await run_batch(store, exp, spec(exp, 0, max_agents, 1))
                floor = await round_trip_floor(store, zero["batch_id"])
            finally:
                await store.close()
        finally:
            await asyncio.to_thread(server.stop)
    critical = con["longest_calls"] * latency_ms / 1000
    speedup = seq["wall"] / con["wall"]
    over_critical = con["wall"] / critical if critical else float("nan")
    overhead = statistics.median(zero["gaps_ms"])
    print(f"speedup sequential/concurrent: {speedup:.2f}x (target >= 8x)")
    print(
        f"critical path: {con['longest_calls']} calls x {latency_ms:g} ms = {critical:.2f} s; "
        f"concurrent / critical path: {over_critical:.2f} (target <= 1.5)"
    )
    print(
        f"engine overhead at zero latency: median {overhead:.2f} ms per message "
        f"(mean {statistics.fmean(zero['gaps_ms']):.2f} ms, "
        f"zero-latency batch wall {zero['wall']:.2f} s for {zero['stored']} stored messages; "
        "target <= 5 ms)"
    )
    print(
        f"floor on this server: bare insert_one median {floor['insert_ms']:.2f} ms "
        f"(ping {floor['ping_ms']:.2f} ms); engine time above the insert: "
        f"{overhead - floor['insert_ms']:.2f} ms per message"
    )
    print(f"load average at the end: {load_average()}")
    return {
        "messages": seq["agent_messages"],
        "wall_sequential_s": round(seq["wall"], 3),
        "wall_concurrent_s": round(con["wall"], 3),
        "speedup": round(speedup, 2),
        "critical_path_s": round(critical, 3),
        "concurrent_over_critical": round(over_critical, 3),
        "overhead_ms_per_message": round(overhead, 3),
        "insert_floor_ms": round(floor["insert_ms"], 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=200.0, help="dryrun latency per call")
    parser.add_argument("--max-agents", type=int, default=3, help="maximum agents per role")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    figures = asyncio.run(main(args.latency_ms, args.max_agents))
    print(json.dumps(figures))
    sys.exit(0)
