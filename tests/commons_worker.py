"""Subprocess entry of the commons SIGKILL test: ``python -m tests.commons_worker``.

Runs (or resumes) one commons conversation against the database named by the environment; prints
``ready`` once imported and connected. Environment: COMMONS_WORKER_URI, COMMONS_WORKER_DB,
COMMONS_WORKER_CONVERSATION.
"""

from __future__ import annotations

import asyncio
import os
import sys

import simulator.roles  # noqa: F401
from simulator.db.mongo import connect_store
from simulator.engine.conversation import run_conversation
from simulator.llm.registry import Backends
from simulator.scenarios.registry import install


async def main() -> int:
    env = os.environ
    store = await connect_store(env["COMMONS_WORKER_URI"], env["COMMONS_WORKER_DB"])
    backends = Backends()
    print("ready", flush=True)
    try:
        conv = await run_conversation(store, backends, env["COMMONS_WORKER_CONVERSATION"])
    finally:
        await backends.aclose()
        await store.close()
    print(conv.status.value, conv.error or "", flush=True)
    return 0 if conv.status.value == "done" else 1


if __name__ == "__main__":
    install()  # the experiment kinds, as the program's entry point does
    sys.exit(asyncio.run(main()))
