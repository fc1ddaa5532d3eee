"""Subprocess entry of the SIGKILL resume test: ``python -m tests.engine_worker``.

Runs (or resumes) one conversation against the database named by the environment and appends one
JSON line per completed model call to a call log (one ``write`` on an ``O_APPEND`` descriptor, so
lines survive a SIGKILL). Prints ``ready`` once everything is imported and connected, so the test
can time its kill within the run itself.

Environment: ENGINE_WORKER_URI, ENGINE_WORKER_DB, ENGINE_WORKER_CONVERSATION,
ENGINE_WORKER_CALL_LOG.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import simulator.roles  # noqa: F401
from simulator.db.mongo import connect_store
from simulator.engine.conversation import run_conversation
from simulator.llm.base import ChatRequest, ChatResult
from simulator.llm.registry import Backends
from simulator.scenarios.registry import install


class LoggedBackends:
    """The real registry, with a line per completed call in the call log."""

    def __init__(self, inner: Backends, path: str) -> None:
        self.inner = inner
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    async def chat(self, request: ChatRequest) -> ChatResult:
        result = await self.inner.chat(request)
        m = request.meta
        line = {
            "pid": os.getpid(),
            "purpose": m.purpose,
            "agent": m.agent,
            "day": m.day,
            "turn": m.turn,
        }
        os.write(self.fd, (json.dumps(line) + "\n").encode())
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def main() -> int:
    env = os.environ
    store = await connect_store(env["ENGINE_WORKER_URI"], env["ENGINE_WORKER_DB"])
    backends = LoggedBackends(Backends(), env["ENGINE_WORKER_CALL_LOG"])
    print("ready", flush=True)
    try:
        conv = await run_conversation(store, backends, env["ENGINE_WORKER_CONVERSATION"])
    finally:
        await store.close()
    print(conv.status.value, flush=True)
    return 0 if conv.status.value == "done" else 1


if __name__ == "__main__":
    install()  # the experiment kinds, as the program's entry point does
    sys.exit(asyncio.run(main()))
