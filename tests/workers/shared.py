"""SIGKILL worker of tests/test_workers.py: joins a stored batch as one of several workers
(``BatchRunner.run(join=True)``, what ``simulator worker --batch`` does) and reports the batch as
it left it (see tests/workers/harness.py). Every conversation lease it takes is written to the
call log first (``{"pid", "took"}``), so a test knows which conversations a killed worker held."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace
from typing import Any

from simulator.engine.batch import BatchRunner
from tests.workers.harness import serve


async def join_batch(store: Any, backends: Any, batch_id: str) -> Any:
    runner = BatchRunner(store, backends, poll_s=0.05, heartbeat_s=0.2, lease_s=60)
    log_path = os.environ.get("WORKER_CALL_LOG")
    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

        def logged(take: Any) -> Any:
            async def logged_take(conversation_id: str, *args: Any, **kwargs: Any) -> Any:
                line = {"pid": os.getpid(), "took": conversation_id}
                os.write(fd, (json.dumps(line) + "\n").encode())  # before: it may hold it after
                return await take(conversation_id, *args, **kwargs)

            return logged_take

        # both forms of a lease: a pending conversation's also starts it
        repo = store.conversations
        repo.take_lease = logged(repo.take_lease)
        repo.take_lease_and_start = logged(repo.take_lease_and_start)
    batch = await runner.run(batch_id, join=True)
    # the last worker to leave stores the end; the others leave the batch running
    status = "done" if batch.status.value in ("done", "running") else batch.status.value
    return SimpleNamespace(status=SimpleNamespace(value=status), error=batch.error)


if __name__ == "__main__":
    serve(join_batch)
