"""The SIGKILL tests' worker processes: both sides of them.

A worker (``python -m tests.workers.<name>``: batch, commons, engine, reputation) runs one job
(a conversation or a batch, named by ``WORKER_TARGET``) against the database named by
``WORKER_URI`` and ``WORKER_DB``, and reports on stdout, one flushed line at a time:

    ready          connected, about to run the job
    stored N       its N-th message is stored (N counts this process's inserts)
    held           its first insert held by ``WORKER_HOLD_AT`` (its conversation is running)
    <status>       the job ended with this status (done, failed, cancelled)

Kills are chosen by events, never by time: the test reads these lines and sends SIGKILL after
``stored k``. ``WORKER_HOLD_AT=h`` makes the worker's (h+1)-th insert wait forever, so a worker
killed after ``stored k`` (k <= h) is killed with at most h new messages stored: a run with more
than h messages to store cannot have finished, whatever the machine's load. Between ``stored k``
and the kill the worker keeps running (model calls, inserts up to the hold), so where exactly
the kill lands still varies.

``WORKER_CALL_LOG`` (optional) names a file that gets one JSON line per completed model call,
each appended with one ``write`` on an ``O_APPEND`` descriptor, so the lines survive a SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.plugins.waiting import DEADLINE_S

ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- the worker's side

#: A worker's job: ``job(store, backends, target)`` returns the conversation or batch as it ended.
Job = Callable[[Any, Any, str], Awaitable[Any]]


def say(line: str) -> None:
    print(line, flush=True)


def report_stored_messages(store: Any, hold_at: int | None) -> None:
    """Say ``stored N`` after each stored message; hold every insert after the ``hold_at``-th."""
    repo = store.messages
    append = repo.append
    attempts = stored = 0
    holding = False
    held = asyncio.Event()  # never set: a held insert waits for the test's SIGKILL

    async def reporting_append(message: Any) -> bool:
        nonlocal attempts, stored, holding
        if hold_at is not None and attempts >= hold_at:
            if not holding:
                holding = True
                say("held")
            await held.wait()
        attempts += 1
        inserted: bool = await append(message)
        if inserted:
            stored += 1
            say(f"stored {stored}")
        return inserted

    repo.append = reporting_append


class LoggedBackends:
    """The real backends, with a line per completed call in the call log."""

    def __init__(self, inner: Any, path: str) -> None:
        self.inner = inner
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    async def chat(self, request: Any) -> Any:
        result = await self.inner.chat(request)
        m = request.meta
        line = {"pid": os.getpid(), "purpose": m.purpose, "agent": m.agent}
        line |= {"day": m.day, "turn": m.turn}
        os.write(self.fd, (json.dumps(line) + "\n").encode())
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def _serve(job: Job) -> int:
    from simulator.db.mongo import connect_store
    from simulator.llm.registry import Backends

    env = os.environ
    store = await connect_store(env["WORKER_URI"], env["WORKER_DB"])
    hold_at = env.get("WORKER_HOLD_AT")
    report_stored_messages(store, int(hold_at) if hold_at else None)
    backends: Any = Backends()
    if env.get("WORKER_CALL_LOG"):
        backends = LoggedBackends(backends, env["WORKER_CALL_LOG"])
    say("ready")
    try:
        ended = await job(store, backends, env["WORKER_TARGET"])
    finally:
        await backends.aclose()
        await store.close()
    if ended.error:
        print(ended.error, file=sys.stderr, flush=True)
    say(ended.status.value)
    return 0 if ended.status.value == "done" else 1


def serve(job: Job) -> None:
    """The worker's main: run ``job`` on the environment's target and exit 0 if it is done."""
    from simulator.scenarios.registry import install

    install()  # the experiment kinds, as the program's entry point does
    sys.exit(asyncio.run(_serve(job)))


# --------------------------------------------------------------------------- the test's side


class Worker:
    """A running worker process, as the test sees it."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.stored = 0  # messages it has reported stored so far

    async def line(self) -> str:
        """Its next stdout line ('' once it has exited)."""
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), DEADLINE_S)  # wait deadline
        return raw.decode().strip()

    async def stderr(self) -> str:
        assert self.proc.stderr is not None
        return (await self.proc.stderr.read()).decode()[-3000:]

    async def kill_after(self, k: int) -> None:
        """SIGKILL it once it says its k-th message is stored; it must die of that signal."""
        await self._kill_when(lambda line: self.stored >= k, f"the {k} messages it was to store")

    async def kill_once_held(self) -> None:
        """SIGKILL it once one of its inserts is held (``WORKER_HOLD_AT``): that insert's
        conversation is running and stays so until the kill, whatever the machine's load (a
        kill after ``stored k`` may land when every conversation in flight has just ended)."""
        await self._kill_when(lambda line: line == "held", "an insert held")

    async def _kill_when(self, reached: Callable[[str], bool], what: str) -> None:
        line = ""
        while not reached(line):
            line = await self.line()
            if line.startswith("stored "):
                self.stored = int(line.split()[1])
            elif line == "" or self.proc.returncode is not None:
                raise AssertionError(
                    f"the worker ended after {self.stored} stored messages, before {what}: "
                    f"{await self.stderr()}"
                )
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()  # SIGKILL
        await self.proc.wait()
        assert self.proc.returncode == -signal.SIGKILL, "the worker finished before its kill"

    async def finish(self) -> str:
        """Let it run to the end; returns its last line (the job's status)."""
        out, err = await asyncio.wait_for(self.proc.communicate(), DEADLINE_S * 3)  # wait deadline
        lines = out.decode().split()
        assert self.proc.returncode == 0, f"exit {self.proc.returncode}: {err.decode()[-3000:]}"
        return lines[-1] if lines else ""


@contextlib.asynccontextmanager
async def worker(
    name: str,
    *,
    uri: str,
    db: str,
    target: str,
    data_dir: Path,
    hold_at: int | None = None,
    call_log: Path | None = None,
) -> AsyncIterator[Worker]:
    """Start ``python -m tests.workers.<name>`` on ``target`` and wait until it is ready; it is
    killed on the way out if it still runs (a held worker never ends by itself)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "WORKER_URI": uri,
        "WORKER_DB": db,
        "WORKER_TARGET": target,
        "SIMULATOR_DATA_DIR": str(data_dir),
    }
    if hold_at is not None:
        env["WORKER_HOLD_AT"] = str(hold_at)
    if call_log is not None:
        env["WORKER_CALL_LOG"] = str(call_log)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        f"tests.workers.{name}",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    running = Worker(proc)
    try:
        first = await running.line()
        if first != "ready":
            raise AssertionError(f"worker did not start: {first!r} {await running.stderr()}")
        yield running
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
