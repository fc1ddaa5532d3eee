"""SIGKILL worker of tests/test_batch_resume.py: runs one stored batch to its end
(see tests/workers/harness.py)."""

from __future__ import annotations

from typing import Any

from simulator.engine.batch import BatchRunner
from tests.workers.harness import serve


async def run_batch(store: Any, backends: Any, batch_id: str) -> Any:
    return await BatchRunner(store, backends).run(batch_id)


if __name__ == "__main__":
    serve(run_batch)
