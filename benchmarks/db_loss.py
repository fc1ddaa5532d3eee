"""Give-up time when the database dies mid-batch: how long ``simulator run`` takes to stop.

Starts its own embedded server in a temporary directory, runs ``simulator run SPEC --yes`` (a
dryrun batch of 40 conversations, 3 at a time) in a subprocess against it, SIGKILLs the server
once ``--kill-after`` messages are stored, and measures the time from the kill until the command
exits. It then restarts the server on the same files and resumes the batch in-process, checking
that nothing was lost or duplicated.

The floor is ``MONGODB_TIMEOUT_MS`` (default 5 s): the driver waits that long for the dead server
before the first write fails; the run then stops every conversation at once and tries for 1.5 s
to store the interruption. Target (issue 23): the run ends within 10 s of the kill, with exit
code 1, one readable message and the resume command.

    python benchmarks/db_loss.py [--kill-after 40] [--timeout-ms 5000]

Prints the figures and, as its last line, one JSON object with the keys ``give_up_s``,
``exit_code``, ``message_lines``, ``resume_hint``, ``traceback``, ``timeout_ms``,
``stored_at_kill``, ``lost`` and ``duplicated``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pymongo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.db.embedded import EmbeddedServer  # noqa: E402
from simulator.scenarios.registry import install  # noqa: E402

SPEC = """\
experiment: {example: prison_study}
batch:
  models: [{default: {provider: dryrun, model: script, options: {latency_ms: 30}}}]
  total_messages: 6
  repeats: 4
  concurrency: 3
"""
DB = "db_loss_benchmark"

install()  # the experiment kinds, as the composition root (AppRoot) installs them for a command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kill-after", type=int, default=40, help="stored messages at the kill")
    parser.add_argument("--timeout-ms", type=int, default=5000, help="MONGODB_TIMEOUT_MS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(Path(tmp), args.kill_after, args.timeout_ms)
    print(f"gave up {result['give_up_s']:.2f} s after the kill (exit {result['exit_code']})")
    print(f"lost {result['lost']}, duplicated {result['duplicated']} after the resume")
    print(json.dumps(result))


def measure(tmp: Path, kill_after: int, timeout_ms: int) -> dict[str, Any]:
    server = EmbeddedServer(tmp / "mongo")
    uri = server.start()
    spec = tmp / "spec.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    env = {
        **os.environ,
        "MONGODB_URI": uri,
        "MONGODB_DB": DB,
        "MONGODB_TIMEOUT_MS": str(timeout_ms),
        "PYTHONPATH": str(ROOT),
        "SIMULATOR_LOG_DIR": str(tmp / "logs"),
        "SIMULATOR_DATA_DIR": str(tmp / "data"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "run", str(spec), "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp,
    )
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(uri)
    try:
        while (stored := client[DB].messages.count_documents({})) < kill_after:
            if proc.poll() is not None:
                raise SystemExit(f"the run ended before the kill: {proc.communicate()}")
            time.sleep(0.02)
    finally:
        client.close()
    os.kill(server.pid or 0, signal.SIGKILL)
    killed = time.monotonic()
    out, err = proc.communicate(timeout=300)
    give_up = time.monotonic() - killed
    batch_id = next((line.split()[1] for line in out.splitlines() if line.startswith("Batch ")), "")
    server.stop()

    restarted = EmbeddedServer(tmp / "mongo")
    uri = restarted.start()
    try:
        lost, duplicated = asyncio.run(resume_and_check(uri, batch_id))
    finally:
        restarted.stop()
    return {
        "give_up_s": round(give_up, 2),
        "exit_code": proc.returncode,
        "message_lines": len(err.strip().splitlines()),
        "resume_hint": f"simulator resume {batch_id}" in err,
        "traceback": "Traceback" in err,
        "timeout_ms": timeout_ms,
        "stored_at_kill": stored,
        "lost": lost,
        "duplicated": duplicated,
    }


async def resume_and_check(uri: str, batch_id: str) -> tuple[int, int]:
    """Resume the batch; return (agent messages missing, messages stored twice)."""
    from simulator.db.mongo import connect_store
    from simulator.engine.batch import BatchRunner
    from simulator.llm.registry import Backends
    from simulator.scenarios.registry import KINDS

    store = await connect_store(uri, DB)
    try:
        await BatchRunner(store, Backends(), kinds=KINDS).resume(batch_id)
    finally:
        await store.close()
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(uri)
    try:
        db = client[DB]
        lost = duplicated = 0
        for conv in db.conversations.find({"batch_id": batch_id}):
            seqs = [m["seq"] for m in db.messages.find({"conversation_id": conv["_id"]})]
            duplicated += len(seqs) - len(set(seqs))
            agent = db.messages.count_documents(
                {"conversation_id": conv["_id"], "kind": "utterance"}
            )
            lost += max(0, conv["budget"] - agent)
        return lost, duplicated
    finally:
        client.close()


if __name__ == "__main__":
    main()
