"""Subprocess entry of the reputation SIGKILL test: ``python -m tests.reputation_worker``.

Runs (or resumes) one reputation conversation against the database named by the environment
(REPUTATION_WORKER_URI, REPUTATION_WORKER_DB, REPUTATION_WORKER_CONVERSATION). Prints ``ready``
once connected, then the final status.
"""

from __future__ import annotations

import asyncio
import os
import sys

import simulator.scenarios.reputation as reputation
from simulator.db.mongo import connect_store
from simulator.llm.registry import Backends
from simulator.scenarios.registry import install


async def main() -> int:
    env = os.environ
    store = await connect_store(env["REPUTATION_WORKER_URI"], env["REPUTATION_WORKER_DB"])
    backends = Backends()
    print("ready", flush=True)
    try:
        conv = await reputation.play(store, backends, env["REPUTATION_WORKER_CONVERSATION"])
    finally:
        await backends.aclose()
        await store.close()
    print(conv.status.value, flush=True)
    return 0 if conv.status.value == "done" else 1


if __name__ == "__main__":
    install()  # the experiment kinds, as the program's entry point does
    sys.exit(asyncio.run(main()))
