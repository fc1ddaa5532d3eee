"""``simulator worker`` in-process, on the session embedded server: it joins a batch (named or
the next one waiting), runs it to the end, and refuses bad options with exit code 2."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from simulator.cli import main
from simulator.db.mongo import connect_store
from simulator.domain import BatchSpec, ModelRef, ModelSet, Provider
from simulator.engine.batch import BatchRunner
from simulator.llm.registry import Backends
from tests.plugins.batches import make_prison_experiment
from tests.test_cli_run import db  # noqa: F401 - the fixture: a fresh database for the CLI


def _start_batch(mongo_uri: str, db_name: str) -> str:
    async def start() -> str:
        store = await connect_store(mongo_uri, db_name)
        try:
            exp = await store.experiments.create(make_prison_experiment())
            spec = BatchSpec(
                experiment_id=exp.id,
                model_sets=[ModelSet(default=ModelRef(provider=Provider.dryrun, model="dryrun"))],
                max_agents={"Guard": 2},
                total_messages=4,
            )
            return (await BatchRunner(store, Backends()).start(exp, spec, owner="ada")).id
        finally:
            await store.close()

    return asyncio.run(start())


def test_a_worker_without_a_batch_runs_the_waiting_one_then_finds_none(
    db: Any,  # noqa: F811
    mongo_uri: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["worker"]) == 0
    assert "No batch to work on." in capsys.readouterr().out

    batch_id = _start_batch(mongo_uri, db.name)
    assert main(["worker"]) == 0
    out = capsys.readouterr().out
    assert f"Working on batch {batch_id}" in out and out.count("  done  #") == 2
    assert "No batch left to work on." in out
    stored = db.batches.find_one({"_id": batch_id})
    assert stored["status"] == "done" and stored["workers"] == []
    assert db.conversations.count_documents({"batch_id": batch_id, "status": "done"}) == 2
    # every lease released (read back whole: the embedded server's count_documents
    # undercounts a filter on null)
    leases = [
        (d["runner"], d["lease_until"]) for d in db.conversations.find({"batch_id": batch_id})
    ]
    assert leases == [(None, None), (None, None)]

    assert main(["worker", "--batch", batch_id[:8]]) == 0
    assert "already done" in capsys.readouterr().out
    assert main(["batches"]) == 0
    assert "done" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["worker", "--lease-s", "1"], "--lease-s must be from 2 to 3600 seconds, not 1"),
        (["worker", "--batch", "ab", "--wait"], "--wait goes without --batch"),
    ],
)
def test_bad_worker_options_exit_2_naming_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err
