"""Model pools and workers at scale: two pools of three fake servers, three worker processes.

Two model pools, each of three local OpenAI-compatible fake servers (every call takes
``--latency-ms``, 100 ms by default; each server a limit of 8 calls at once, so 48 calls at once
in all), serve a batch of ``--conversations`` prison-study conversations of ``--messages``
messages in one day (a summary after it: messages + 1 calls each), half of them on each pool
(two model sets). Three ``simulator worker --batch ID`` processes share the batch through the
database (conversation leases, endpoint slots). The batch is created first; the clock runs
from the workers' start to the last one's end.

The floor is ``ceil(conversations / 48) x (messages + 1) x latency``: 48 conversations at once,
each call waiting for the one before it. Target (issue 25): wall time within 1.2x of it. Each
server also reports the most calls it had at once (never above its limit: the limit holds
across the three processes).

By default the database is a fresh embedded server in a temporary directory (single machine;
its writes are serialised, so expect it, not the model servers, to bound the full size); pass
``--uri`` (or set ``BENCH_MONGODB_URI``) to use a real MongoDB instead: a test database named
``bench_pools_<random>`` is created and dropped.

    python benchmarks/pools_workers.py [--quick] [--uri mongodb://localhost:27017/]

It prints the figures and, as its last line, one JSON object (``wall_s``, ``floor_s``,
``ratio``, ``calls``, ``max_calls_at_once`` per server, ...). docs/benchmarks.md keeps the
measurements; docs/scale.md explains the layout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.db.embedded import EmbeddedServer  # noqa: E402
from simulator.db.mongo import connect_store  # noqa: E402
from simulator.db.store import ConversationFilter  # noqa: E402
from simulator.domain import (  # noqa: E402
    BatchSpec,
    ModelRef,
    ModelSet,
    PoolEndpoint,
    Provider,
    Status,
)
from simulator.engine.batch import BatchRunner  # noqa: E402
from simulator.engine.spec import load_example  # noqa: E402
from simulator.llm.registry import Backends  # noqa: E402
from tests.servers.openai_server import CHAT, FakeOpenAIServer  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
SERVERS_PER_POOL = 3
LIMIT = 8
WORKERS = 3


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of a process, in seconds (Linux /proc; 0 when unknown)."""
    if pid is None:
        return 0.0
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pool(name: str, servers: list[FakeOpenAIServer]) -> ModelRef:
    return ModelRef(
        provider=Provider.openai,
        model=name,
        endpoints=[
            PoolEndpoint(base_url=s.base_url, concurrency=LIMIT, name=f"{name}-{i}")
            for i, s in enumerate(servers)
        ],
    )


async def _start_batch(
    uri: str, db: str, pools: list[ModelRef], conversations: int, messages: int, workers: int
) -> str:
    store = await connect_store(uri, db)
    try:
        experiment = await store.experiments.create(load_example("prison_study"))
        spec = BatchSpec(
            experiment_id=experiment.id,
            model_sets=[ModelSet(default=p) for p in pools],
            total_messages=messages,
            days=1,
            max_agents={"Guard": 1, "Prisoner": 1},
            every_combination=False,
            factor_levels=[{"goal": "Escape", "persona": "No persona"}],
            repeats=conversations // len(pools),
            concurrency=math.ceil(len(pools) * SERVERS_PER_POOL * LIMIT / workers),
        )
        batch = await BatchRunner(store, Backends()).start(experiment, spec, owner="bench")
        return batch.id
    finally:
        await store.close()


async def _check(uri: str, db: str, batch_id: str, messages: int) -> dict[str, Any]:
    store = await connect_store(uri, db)
    try:
        batch = await store.batches.get(batch_id)
        convs = await store.conversations.list(ConversationFilter(batch_id=batch_id))
        exact = all(c.status is Status.done and c.messages_done == messages for c in convs)
        stored = await store.messages.list_many([c.id for c in convs])
        times = sorted(m.created_at for m in stored)
        busy = (times[-1] - times[0]).total_seconds() if times else 0.0
        return {
            "status": batch.status.value if batch else "?",
            "exact": exact,
            "n": len(convs),
            "first": times[0].timestamp() if times else 0.0,
            "busy_s": busy,
        }
    finally:
        await store.close()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    latency_s = args.latency_ms / 1000
    servers = [
        FakeOpenAIServer(models=("pool-a", "pool-b")).start() for _ in range(2 * SERVERS_PER_POOL)
    ]
    for s in servers:
        s.delay_s = latency_s
    pools = [
        _pool("pool-a", servers[:SERVERS_PER_POOL]),
        _pool("pool-b", servers[SERVERS_PER_POOL:]),
    ]
    db = f"bench_pools_{uuid.uuid4().hex[:8]}"
    with contextlib.ExitStack() as stack:
        uri = args.uri or os.environ.get("BENCH_MONGODB_URI")
        server_pid: int | None = None
        if not uri:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            embedded = EmbeddedServer(Path(tmp))
            uri = embedded.start()
            stack.callback(embedded.stop)
            server_pid = embedded.status(check_ping=False).pid
        try:
            batch_id = await _start_batch(
                uri, db, pools, args.conversations, args.messages, args.workers
            )
            env = {**os.environ, "MONGODB_URI": uri, "MONGODB_DB": db, "PYTHONPATH": str(ROOT)}
            started = time.monotonic()
            started_at = time.time()
            cpu0 = (children_cpu(), cpu_seconds(server_pid), self_cpu())
            procs = [
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "simulator.cli", "worker", "--batch", batch_id,
                    cwd=ROOT, env=env,
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                )
                for _ in range(args.workers)
            ]  # fmt: skip
            errors = [(await p.communicate())[1].decode()[-2000:] for p in procs]
            wall = time.monotonic() - started
            workers_cpu = children_cpu() - cpu0[0]
            server_cpu = cpu_seconds(server_pid) - cpu0[1]
            bench_cpu = self_cpu() - cpu0[2]  # the six model servers (threads of this process)
            codes = [p.returncode for p in procs]
            check = await _check(uri, db, batch_id, args.messages)
        finally:
            with contextlib.suppress(Exception):
                store = await connect_store(uri, db)
                await store.drop_database()
                await store.close()
            for s in servers:
                s.stop()
    waves = math.ceil(args.conversations / (2 * SERVERS_PER_POOL * LIMIT))
    floor = waves * (args.messages + 1) * latency_s
    calls = sum(len(s.chat_bodies()) for s in servers)
    figures = {
        "conversations": args.conversations,
        "messages": args.messages,
        "latency_ms": args.latency_ms,
        "workers": args.workers,
        "database": "embedded"
        if not (args.uri or os.environ.get("BENCH_MONGODB_URI"))
        else "mongodb",
        "wall_s": round(wall, 2),
        # from the workers' start to the first stored message (process start-up, preflight)
        "start_up_s": round(check["first"] - started_at, 2),
        # from the first stored message to the last (the batch's own pace)
        "busy_s": round(check["busy_s"], 2),
        "busy_ratio": round(check["busy_s"] / floor, 2) if floor else None,
        "floor_s": round(floor, 2),
        "ratio": round(wall / floor, 2) if floor else None,
        "target_ratio": 1.2,
        "calls": calls,
        "calls_expected": args.conversations * (args.messages + 1),
        # CPU seconds while the workers ran, and what they allow on this machine's cores:
        # every process here shares them, so the batch cannot end before cpu_floor_s
        "cpu_s": {
            "workers": round(workers_cpu, 2),
            "database": round(server_cpu, 2),
            "model_servers": round(bench_cpu, 2),
        },
        "cpu_ms_per_call": round((workers_cpu + server_cpu + bench_cpu) * 1000 / max(1, calls), 2),
        "cores": os.cpu_count(),
        "cpu_floor_s": round((workers_cpu + server_cpu + bench_cpu) / (os.cpu_count() or 1), 2),
        "max_calls_at_once": [s.max_path_in_flight[CHAT] for s in servers],
        "limit_per_server": LIMIT,
        "worker_exit_codes": codes,
        "batch_status": check["status"],
        "every_conversation_exact": check["exact"],
        "load_average": list(os.getloadavg()),
    }
    for code, err in zip(codes, errors, strict=True):
        if code != 0:
            print(f"worker exited {code}: {err}", file=sys.stderr)
    return figures


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 conversations of 10 messages")
    parser.add_argument("--conversations", type=int, default=300)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument(
        "--workers", type=int, default=WORKERS, help="worker processes (1: one process alone)"
    )
    parser.add_argument("--uri", help="a MongoDB to use instead of a fresh embedded server")
    args = parser.parse_args()
    if args.quick:
        args.conversations, args.messages = 60, 10
    from simulator.scenarios.registry import install

    install()  # the experiment kinds, as the program's entry point does
    figures = asyncio.run(main(args))
    for key, value in figures.items():
        print(f"{key}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    cli()
