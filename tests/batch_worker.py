"""Subprocess entry of the SIGKILL test: start a batch and run it until killed.

    python -m tests.batch_worker URI DB EXPERIMENT_ID LATENCY_MS

Prints ``batch <id>`` (flushed) once the batch and its conversations are stored.
"""

from __future__ import annotations

import asyncio
import sys

from simulator.db.mongo import connect_store
from simulator.domain import BatchSpec, ModelRef, ModelSet, Provider
from simulator.engine.batch import BatchRunner
from simulator.llm.registry import Backends
from simulator.scenarios.registry import install


async def main(uri: str, db: str, experiment_id: str, latency_ms: int) -> None:
    store = await connect_store(uri, db)
    experiment = await store.experiments.get(experiment_id)
    assert experiment is not None
    model = ModelRef(provider=Provider.dryrun, model="dryrun", options={"latency_ms": latency_ms})
    spec = BatchSpec(
        experiment_id=experiment.id,
        model_sets=[ModelSet(default=model)],
        max_agents={"Guard": 3, "Prisoner": 2},
        days=3,
        every_day_count=True,
        repeats=2,
        total_messages=6,
        concurrency=4,
    )
    runner = BatchRunner(store, Backends())
    batch = await runner.start(experiment, spec, owner="worker")
    print(f"batch {batch.id}", flush=True)
    await runner.run(batch.id)
    print("finished", flush=True)


if __name__ == "__main__":
    install()  # the experiment kinds, as the program's entry point does
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
