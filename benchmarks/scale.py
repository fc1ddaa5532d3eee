"""Scale on one machine: flat cost per message as the database grows, streaming exports.

Modes (each prints its figures and, as its last line, one JSON object):

``batch``
    A batch of dialogue conversations (1v1, 1 day, 20 messages: 21 model calls and 22 stored
    messages each) on the dryrun backend at ``--latency-ms`` (100) and ``--concurrency`` (64),
    against the embedded server. Figures: wall time against the ideal one
    (ceil(conversations / concurrency) x calls x latency), the embedded server's CPU time per
    stored message (from /proc/<server pid>/stat) in a window around 1,000 stored messages and
    one around 20,000, and in every 2,000 messages of the run (``..._by_2k``; the median of its
    second half over that of its first: a flatness figure one disturbed window cannot move
    much), the client's CPU per message (also by 2,000: ``client_cpu_ms_per_message_by_2k``)
    and the machine's steal time by 2,000 (``steal_pct_by_2k``: on a virtual machine, time its
    host gave to others; a window dearer for server and client alike while steal rose was a
    slower machine, not a costlier database; ``server_over_client_cpu_20k_over_1k`` is the
    20k / 1k ratio of the server's CPU per message over the client's in the same windows), the
    inserts per ``insert_many``, the longest
    event-loop stall, and the time to list the batch's conversations (and the longest stall
    while listing). Each run uses a fresh database unless ``--prefill`` fills one first.
``throughput``
    The same at zero latency, at least ``--messages`` (20,000) stored: messages per second.
``transcript``
    The time to open a 200-message transcript (``ConversationService.messages``) in a
    database of ``--prefill`` messages.
``export``
    Peak memory (``ru_maxrss`` of the exporting process: ``simulator export`` in a subprocess)
    and wall time of exporting ``--prefill`` messages to Parquet and to CSV.

``--runs N`` repeats a mode and reports medians (a series, one list per run); the load average
is printed at the start and end of each run (the machine is shared: read ratios measured side by
side). ``--prefill N`` fills the database with N messages first (about 23,000 synthetic
conversations per 500,000 messages; not for CI: a few minutes). ``--data-dir DIR`` keeps the
server's files there, so a pre-filled database serves several modes.

    python benchmarks/scale.py batch [--conversations 2000] [--runs 3] [--prefill 500000]
    python benchmarks/scale.py throughput [--messages 20000] [--runs 3]
    python benchmarks/scale.py transcript --prefill 500000 --data-dir /tmp/scale-db
    python benchmarks/scale.py export --prefill 500000 --data-dir /tmp/scale-db

docs/benchmarks.md explains the figures and lists measurements. Targets (issue 24): batch at
1.2x the ideal wall time or better with the per-message server CPU at 20k within 1.2x of that
at 1k; at least 1,000 messages/s at zero latency over 20,000 messages; a 200-message transcript
under 50 ms at 500k messages; exports of 500k messages under 400 MB peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from itertools import pairwise
from pathlib import Path
from typing import Any

from simulator.db.embedded import EmbeddedServer
from simulator.db.mongo import MongoStore, _to_doc, connect_store
from simulator.db.store import ConversationFilter
from simulator.domain import (
    BatchSpec,
    Conversation,
    Experiment,
    GridCell,
    Message,
    MessageKind,
    ModelRef,
    ModelSet,
    Provider,
    Role,
    Section,
    SectionKind,
    Status,
    TokenUsage,
)
from simulator.engine.batch import BatchRunner
from simulator.engine.events import EventBus, MessageStored
from simulator.llm.registry import Backends
from simulator.scenarios.registry import KINDS, install

install()  # the experiment kinds, as simulator.cli.main installs them for its process

DB = "benchmark"
PREFILL_EXPERIMENT = "prefill"
PER_CONVERSATION = 22  # stored messages of a 1v1, 1-day, 20-message dialogue
TICK = os.sysconf("SC_CLK_TCK")
#: Messages per window of the run's series of server CPU per message.
SERIES_STEP = 2000


def load_average() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


def experiment() -> Experiment:
    role = "You are <NAME>, one of <{0}_NUMWORD> <{0}_NOUN>. Speak in the first person."
    return Experiment(
        name="Scale benchmark",
        starting_message="Day <DAY> of <DAYS> begins in the prison yard.",
        roles=[
            Role(
                name=r,
                sections=[Section(title="Role", kind=SectionKind.private, content=role.format(r))],
            )
            for r in ("Guard", "Prisoner")
        ],
        shared_sections=[Section(title="Setting", content="A prison study. Stay in character.")],
        summarizer_sections=[
            Section(title="Task", kind=SectionKind.summarizer, content="Summarize day <DAY>.")
        ],
    )


#: Repeats a batch allows; larger batches are split over identical model sets.
MAX_REPEATS = 1000


def batch_spec(
    exp: Experiment, conversations: int, latency_ms: float, concurrency: int
) -> BatchSpec:
    sets = math.ceil(conversations / MAX_REPEATS)
    model_sets = [
        ModelSet(
            default=ModelRef(
                provider=Provider.dryrun,
                model="dryrun",
                options={"latency_ms": latency_ms, "set": i},
            )
        )
        for i in range(sets)
    ]
    return BatchSpec(
        experiment_id=exp.id,
        model_sets=model_sets,
        max_agents={"Guard": 1, "Prisoner": 1},
        days=1,
        total_messages=20,
        repeats=math.ceil(conversations / sets),
        concurrency=concurrency,
    )


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (Linux /proc)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class LoopLag:
    """The longest gap between ticks of a 5 ms timer: how long the event loop was held."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            self.worst = max(self.worst, now - last - 0.005)
            last = now

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


def machine_ticks() -> tuple[int, int]:
    """(all, steal) CPU ticks of the machine since boot (Linux /proc/stat): the time a virtual
    machine's host gave to others is not this machine's noise but it slows every process."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


class Windows:
    """Server CPU sampled when the run's stored message count crosses given marks, and every
    ``step`` messages (the series of the whole run), with this process's CPU and the
    machine's steal time at the same points: a window that cost the server more while the
    client's CPU per message and the steal time rose with it was a slower machine, not a
    costlier server."""

    def __init__(self, pid: int, marks: list[int], step: int = SERIES_STEP) -> None:
        self.pid = pid
        self.marks = sorted(marks)
        self.step = step
        self.samples: dict[int, float] = {}
        self.client: dict[int, float] = {}
        self.ticks: dict[int, tuple[int, int]] = {}
        self.stored = 0

    def __call__(self, event: Any) -> None:
        if isinstance(event, MessageStored):
            self.stored += 1
            if self.stored in self.marks or self.stored % self.step == 0:
                self.samples[self.stored] = cpu_seconds(self.pid)
                self.client[self.stored] = time.process_time()
                self.ticks[self.stored] = machine_ticks()

    def _steps(self) -> list[int]:
        return [n for n in sorted(self.samples) if n % self.step == 0]  # from the first step on

    def series(self, of: dict[int, float] | None = None) -> list[float]:
        """Server CPU (or ``of``: another process's CPU) per message (ms) in each run of
        ``step`` messages, in order."""
        cpu = self.samples if of is None else of
        return [(cpu[b] - cpu[a]) * 1000 / (b - a) for a, b in pairwise(self._steps())]

    def steal_series(self) -> list[float]:
        """The machine's steal time (% of all its CPU time) in each run of ``step`` messages."""
        out = []
        for a, b in pairwise(self._steps()):
            (all_a, steal_a), (all_b, steal_b) = self.ticks[a], self.ticks[b]
            out.append(100 * (steal_b - steal_a) / max(1, all_b - all_a))
        return out

    def halves(self, values: list[float] | None = None) -> float | None:
        """The median of the series' (or ``values``') second half over that of its first half:
        a flatness figure that one disturbed window cannot move much."""
        values = self.series() if values is None else values
        if len(values) < 4:
            return None
        half = len(values) // 2
        return statistics.median(values[half:]) / statistics.median(values[:half])

    def per_message_ms(
        self, low: int, high: int, of: dict[int, float] | None = None
    ) -> float | None:
        cpu = self.samples if of is None else of
        if low in cpu and high in cpu:
            return (cpu[high] - cpu[low]) * 1000 / (high - low)
        return None


# --------------------------------------------------------------------------- pre-filling


async def prefill(store: MongoStore, messages: int) -> int:
    """Top the database up to ``messages`` synthetic messages (in conversations of 22, one
    batch of the ``prefill`` experiment); returns how many it holds."""
    coll = store.db["messages"]
    have = await store.db["conversations"].count_documents({"experiment_id": PREFILL_EXPERIMENT})
    want = math.ceil(messages / PER_CONVERSATION)
    if have >= want:
        return have * PER_CONVERSATION
    exp = experiment().model_copy(update={"id": PREFILL_EXPERIMENT, "name": "Prefill"})
    if await store.experiments.get(PREFILL_EXPERIMENT) is None:
        await store.experiments.create(exp)
    cell = GridCell(
        counts={"Guard": 1, "Prisoner": 1}, days=1, total_messages=20, models=ModelSet()
    )
    text = "I hear you, but the rules of this yard are not mine to change. " * 3
    t0 = time.perf_counter()
    convs: list[dict[str, Any]] = []
    docs: list[dict[str, Any]] = []
    for i in range(have, want):
        cid = uuid.uuid4().hex
        conv = Conversation(
            id=cid,
            experiment_id=PREFILL_EXPERIMENT,
            batch_id="prefill",
            cell_index=i,
            cell=cell,
            status=Status.done,
            messages_done=20,
            budget=20,
            tokens=TokenUsage(prompt_tokens=4000, completion_tokens=900),
        )
        convs.append(_to_doc(conv))
        for seq in range(PER_CONVERSATION):
            kind = (
                MessageKind.kickoff
                if seq == 0
                else MessageKind.summary
                if seq == PER_CONVERSATION - 1
                else MessageKind.utterance
            )
            speaker = ("Guard 1", "Prisoner 1")[seq % 2]
            m = Message(
                conversation_id=cid,
                seq=seq,
                speaker=speaker,
                role=speaker[:-2],
                kind=kind,
                content=text,
                raw=text,
                model=ModelRef(),
                latency_ms=100.0,
                usage=TokenUsage(prompt_tokens=200, completion_tokens=45),
            )
            docs.append(_to_doc(m, m.id))
        if len(docs) >= 5000:
            await coll.insert_many(docs, ordered=False)
            await store.db["conversations"].insert_many(convs, ordered=False)
            docs, convs = [], []
            done = (i + 1) * PER_CONVERSATION
            if (i + 1) % 2000 < 230:
                rate = (done - have * PER_CONVERSATION) / (time.perf_counter() - t0)
                print(f"  pre-filled {done:,} messages ({rate:,.0f}/s)", flush=True)
    if docs:
        await coll.insert_many(docs, ordered=False)
        await store.db["conversations"].insert_many(convs, ordered=False)
    return want * PER_CONVERSATION


# --------------------------------------------------------------------------- modes


async def run_batch(
    store: MongoStore, pid: int, conversations: int, latency_ms: float, concurrency: int
) -> dict[str, Any]:
    exp = await store.experiments.create(experiment())
    bus = EventBus()
    windows = Windows(pid, [250, 1750, 19250, 20750])
    bus.subscribe(windows)
    backends = Backends()
    inserts = getattr(store.messages, "inserts", None)
    writes0, docs0 = (inserts.writes, inserts.documents) if inserts else (0, 0)
    try:
        runner = BatchRunner(store, backends, bus, kinds=KINDS)
        batch = await runner.start(exp, batch_spec(exp, conversations, latency_ms, concurrency))
        cpu0, client0, t0 = cpu_seconds(pid), time.process_time(), time.perf_counter()
        ticks0 = machine_ticks()
        with LoopLag() as lag:
            ended = await runner.run(batch.id)
        wall = time.perf_counter() - t0
        (all0, steal0), (all1, steal1) = ticks0, machine_ticks()
        server_cpu, client_cpu = cpu_seconds(pid) - cpu0, time.process_time() - client0
    finally:
        await backends.aclose()
    if ended.status is not Status.done:
        raise SystemExit(f"the benchmark batch ended {ended.status.value}: {ended.error}")
    flt = ConversationFilter(batch_id=batch.id)
    t1 = time.perf_counter()
    with LoopLag() as listing_lag:
        kwargs = {"brief": True} if inserts is not None else {}
        listed = await store.conversations.list(flt, **kwargs)
    listing = time.perf_counter() - t1
    sample = await store.messages.list(listed[0].id)
    calls = sum(m.model is not None for m in sample)
    stored = windows.stored
    ideal = math.ceil(conversations / concurrency) * calls * latency_ms / 1000
    out: dict[str, Any] = {
        "conversations": len(listed),
        "stored": stored,
        "calls_per_conversation": calls,
        "wall_s": round(wall, 2),
        "ideal_s": round(ideal, 2),
        "wall_over_ideal": round(wall / ideal, 3) if ideal else None,
        "messages_per_s": round(stored / wall, 1),
        "server_cpu_ms_per_message": round(server_cpu * 1000 / stored, 3),
        "server_cpu_ms_per_message_at_1k": windows.per_message_ms(250, 1750),
        "server_cpu_ms_per_message_at_20k": windows.per_message_ms(19250, 20750),
        "client_cpu_ms_per_message": round(client_cpu * 1000 / stored, 3),
        "steal_pct": round(100 * (steal1 - steal0) / max(1, all1 - all0), 1),
        "max_loop_stall_ms": round(lag.worst * 1000, 1),
        "listing_ms": round(listing * 1000, 1),
        "listing_max_loop_stall_ms": round(listing_lag.worst * 1000, 1),
    }
    if inserts is not None and inserts.writes > writes0:
        out["messages_per_insert_many"] = round(
            (inserts.documents - docs0) / (inserts.writes - writes0), 1
        )
    halves = windows.halves()
    out["server_cpu_second_half_over_first"] = round(halves, 3) if halves else None
    out["server_cpu_ms_per_message_by_2k"] = [round(v, 3) for v in windows.series()]
    client_series = windows.series(windows.client)
    out["client_cpu_ms_per_message_by_2k"] = [round(v, 3) for v in client_series]
    out["steal_pct_by_2k"] = [round(v, 1) for v in windows.steal_series()]
    client_halves = windows.halves(client_series)
    out["client_cpu_second_half_over_first"] = round(client_halves, 3) if client_halves else None
    at1k, at20k = out["server_cpu_ms_per_message_at_1k"], out["server_cpu_ms_per_message_at_20k"]
    if at1k and at20k:
        out["server_cpu_20k_over_1k"] = round(at20k / at1k, 3)
        # the same with each window's server CPU over the client's: the client's work per
        # message does not grow with the database, so its CPU per message gauges how fast the
        # machine ran in that window (a diagnostic beside the figure, not a replacement of it)
        client1k = windows.per_message_ms(250, 1750, windows.client)
        client20k = windows.per_message_ms(19250, 20750, windows.client)
        if client1k and client20k:
            out["server_over_client_cpu_20k_over_1k"] = round(
                (at20k / client20k) / (at1k / client1k), 3
            )
    for key in ("server_cpu_ms_per_message_at_1k", "server_cpu_ms_per_message_at_20k"):
        if out[key] is not None:
            out[key] = round(out[key], 3)
    return out


async def transcript(store: MongoStore, length: int = 200, rounds: int = 21) -> dict[str, Any]:
    from simulator.services.conversations import ConversationService

    exp = await store.experiments.get(PREFILL_EXPERIMENT) or await store.experiments.create(
        experiment()
    )
    cell = GridCell(
        counts={"Guard": 1, "Prisoner": 1}, days=1, total_messages=length, models=ModelSet()
    )
    conv = await store.conversations.create(
        Conversation(experiment_id=exp.id, cell=cell, status=Status.done, messages_done=length)
    )
    docs = [
        _to_doc(m, m.id)
        for m in (
            Message(
                conversation_id=conv.id,
                seq=s,
                speaker="Guard 1",
                role="Guard",
                content="A line of the transcript, long enough to be realistic. " * 4,
            )
            for s in range(length)
        )
    ]
    await store.db["messages"].insert_many(docs)
    service = ConversationService(store, "benchmark")
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        got = await service.messages(conv.id)
        times.append((time.perf_counter() - t0) * 1000)
    assert len(got) == length
    stored = await store.db["messages"].estimated_document_count()
    return {"stored": stored, "transcript_ms": round(statistics.median(times), 2)}


def export_peak(uri: str, fmt: str, out_dir: Path) -> dict[str, Any]:
    """Run ``simulator export`` of the pre-filled experiment in a subprocess; its peak RSS."""
    env = {**os.environ, "MONGODB_URI": uri, "MONGODB_DB": DB}
    cmd = [
        sys.executable,
        "-m",
        "simulator.cli",
        "export",
        "--experiment",
        PREFILL_EXPERIMENT,
        "--format",
        fmt,
        "-o",
        str(out_dir),
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if status != 0:
        raise SystemExit(f"export {fmt} failed ({status}): {err[-2000:]}")
    size = sum(p.stat().st_size for p in out_dir.iterdir())
    return {
        f"{fmt}_peak_mb": round(usage.ru_maxrss / 1024, 1),
        f"{fmt}_wall_s": round(wall, 1),
        f"{fmt}_file_mb": round(size / 2**20, 1),
    }


# --------------------------------------------------------------------------- driver


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each number over the runs; a series (a list) is given for each run."""
    out: dict[str, Any] = {}
    for key in runs[0]:
        if isinstance(runs[0][key], list):
            out[key] = [r.get(key) for r in runs]
            continue
        values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
        out[key] = round(statistics.median(values), 3) if values else runs[0][key]
    return out


async def one_run(args: argparse.Namespace, server: EmbeddedServer, uri: str) -> dict[str, Any]:
    pid = server.status(check_ping=False).pid
    assert pid is not None
    fresh = not args.prefill
    name = f"{DB}_{uuid.uuid4().hex[:8]}" if fresh and args.mode in ("batch", "throughput") else DB
    store = await connect_store(uri, name, timeout_ms=30_000)
    try:
        figures: dict[str, Any] = {"load_start": load_average()}
        if args.prefill:
            t0 = time.perf_counter()
            held = await prefill(store, args.prefill)
            figures["prefilled"] = held
            print(
                f"  database holds {held:,} pre-filled messages "
                f"({time.perf_counter() - t0:.0f} s to fill)",
                flush=True,
            )
        if args.mode == "batch":
            figures |= await run_batch(
                store, pid, args.conversations, args.latency_ms, args.concurrency
            )
        elif args.mode == "throughput":
            n = math.ceil(args.messages / PER_CONVERSATION)
            figures |= await run_batch(store, pid, n, 0.0, args.concurrency)
        elif args.mode == "transcript":
            figures |= await transcript(store)
        elif args.mode == "export":
            for fmt in ("parquet", "csv"):
                with tempfile.TemporaryDirectory(prefix="scale-export-") as out:
                    figures |= await asyncio.to_thread(export_peak, uri, fmt, Path(out))
        figures["load_end"] = load_average()
        if fresh and name != DB:
            await store.drop_database()
        return figures
    finally:
        await store.close()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    keep = args.data_dir is not None
    data_dir = Path(args.data_dir) if keep else Path(tempfile.mkdtemp(prefix="scale-bench-"))
    server = EmbeddedServer(data_dir)
    uri = await asyncio.to_thread(server.start)
    import simulator

    print(f"machine: {os.cpu_count()} cores; load average {load_average()}; mode {args.mode}")
    print(f"code: {Path(simulator.__file__).parent}")
    runs = []
    try:
        for i in range(args.runs):
            figures = await one_run(args, server, uri)
            print(f"run {i + 1}: {json.dumps(figures)}", flush=True)
            runs.append(figures)
    finally:
        await asyncio.to_thread(server.stop)
        if not keep:
            import shutil

            shutil.rmtree(data_dir, ignore_errors=True)
    result = medians(runs) if len(runs) > 1 else runs[0]
    result["runs"] = len(runs)
    result["mode"] = args.mode
    return result


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("mode", choices=["batch", "throughput", "transcript", "export"])
    p.add_argument("--conversations", type=int, default=2000)
    p.add_argument("--latency-ms", type=float, default=100.0)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--messages", type=int, default=20_000, help="throughput: messages at least")
    p.add_argument("--prefill", type=int, default=0, help="fill the database with N messages")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--data-dir", help="keep the embedded server's files here (default: temp)")
    return p.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    if arguments.mode in ("transcript", "export") and not arguments.prefill:
        arguments.prefill = 500_000
    figures = asyncio.run(main(arguments))
    print(json.dumps(figures))
    sys.exit(0)
