"""``simulator run / batches / resume / cancel`` in-process, on the session embedded server."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pymongo
import pytest

from simulator.cli import main
from simulator.db.mongo import connect_store
from simulator.domain import BatchSpec, ModelRef, ModelSet, Provider, Status
from simulator.engine.batch import BatchRunner
from simulator.llm.registry import Backends
from tests.plugins.batches import make_prison_experiment
from tests.plugins.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "simulator" / "examples" / "prison_study_batch.yaml"


@pytest.fixture
def db(mongo_uri: str, tmp_data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh database the CLI uses (MONGODB_URI/MONGODB_DB), read back with a sync client."""
    name = f"t_cli_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", name)
    monkeypatch.delenv("PRICE_TABLE", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    client: pymongo.MongoClient = pymongo.MongoClient(mongo_uri)
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()


def test_run_the_readme_example_spec_on_dryrun(db, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["run", str(EXAMPLE), "--yes"]) == 0
    out = capsys.readouterr().out
    assert "Grid: 1 model set x 10 factor combinations x 1 agent count" in out
    assert "Estimate: 10 conversations, 210 LLM calls" in out
    assert out.count("  done  #") == 10
    assert "done: 10 conversations" in out
    assert "calls 210/210" in out  # every call counted: 20 agent turns and a summary each
    batches = list(db.batches.find())
    assert len(batches) == 1 and batches[0]["status"] == "done"
    convs = list(db.conversations.find({"batch_id": batches[0]["_id"]}))
    assert len(convs) == 10
    assert {c["status"] for c in convs} == {"done"}
    assert {c["messages_done"] for c in convs} == {20}
    levels = {(c["cell"]["factors"]["goal"], c["cell"]["factors"]["persona"]) for c in convs}
    assert len(levels) == 10
    # agent messages are exactly the budget: 20 per conversation, plus kickoff and summary
    assert db.messages.count_documents({"kind": "utterance"}) == 200
    assert db.messages.count_documents({"kind": "summary"}) == 10
    # running the spec again adds a batch to the same stored experiment (no copy)
    assert main(["run", str(EXAMPLE), "--yes"]) == 0
    assert db.experiments.count_documents({}) == 1
    assert db.batches.count_documents({}) == 2


def test_dry_run_prints_the_estimate_and_stores_nothing(
    db, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    assert main(["run", str(EXAMPLE), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "10 conversations" in out and "LLM calls" in out and "tokens" in out
    assert "$0.00" in out  # dryrun costs nothing, a price table is given
    assert db.experiments.count_documents({}) == 0
    assert db.batches.count_documents({}) == 0


def test_a_malformed_spec_is_reported_with_its_field_path_before_anything_runs(
    db, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "experiment: {example: prison_study}\n"
        "batch:\n"
        "  max_agents: {guard: 0}\n"
        "  days: two\n"
        "  factors: [{goal: Parole}]\n",
        encoding="utf-8",
    )
    assert main(["run", str(spec), "--yes"]) == 2
    err = capsys.readouterr().err
    assert "error: Invalid specification:" in err
    assert "batch.max_agents.guard: must be a whole number from 1 to 100, not 0" in err
    assert "batch.days: must be a whole number from 1 to 365, not 'two'" in err
    assert "Traceback" not in err
    # a problem only the experiment can reveal, still before anything is stored
    spec.write_text(
        "experiment: {example: prison_study}\nbatch:\n  factors: [{goal: Parole}]\n",
        encoding="utf-8",
    )
    assert main(["run", str(spec), "--yes"]) == 2
    err = capsys.readouterr().err
    assert "batch.factors.0.goal: 'Parole' is not a level of 'goal'" in err
    assert db.experiments.count_documents({}) == 0
    assert db.batches.count_documents({}) == 0


def test_run_a_stored_experiment_by_name_with_an_inline_price_table(
    db, mongo_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    async def store_experiment() -> None:
        store = await connect_store(mongo_uri, db.name)
        try:
            await store.experiments.create(make_prison_experiment(name="Stored prison"))
        finally:
            await store.close()

    asyncio.run(store_experiment())
    spec = tmp_path / "spec.json"
    spec.write_text(
        '{"experiment": "stored prison", "batch": {"total_messages": 4, "days": 2, '
        '"max_agents": {"Guard": 2}, "models": "openai:gpt-4o-mini"}, '
        '"prices": {"gpt-4o-mini": {"input_per_1k": 1.0, "output_per_1k": 1.0}}}',
        encoding="utf-8",
    )
    assert main(["run", str(spec), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Experiment: Stored prison" in out
    assert "2 conversations, 12 LLM calls" in out  # 2 cells x (4 turns + 2 summaries)
    assert "about $" in out and "$0.00" not in out
    assert db.batches.count_documents({}) == 0
    missing = tmp_path / "missing.yaml"
    missing.write_text("experiment: Nope\n", encoding="utf-8")
    assert main(["run", str(missing), "--dry-run"]) == 2
    assert "No experiment 'Nope'" in capsys.readouterr().err


def test_batches_cancel_and_resume(db, mongo_uri: str, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    async def start_batch() -> str:
        store = await connect_store(mongo_uri, db.name)
        try:
            exp = await store.experiments.create(make_prison_experiment())
            spec = BatchSpec(
                experiment_id=exp.id,
                model_sets=[ModelSet(default=ModelRef(provider=Provider.dryrun, model="dryrun"))],
                max_agents={"Guard": 2},
                total_messages=4,
            )
            batch = await BatchRunner(store, Backends()).start(exp, spec, owner="ada")
            return batch.id
        finally:
            await store.close()

    batch_id = asyncio.run(start_batch())
    assert main(["batches"]) == 0
    out = capsys.readouterr().out
    assert batch_id[:12] in out and "pending" in out and "Prison batch test" in out

    assert main(["cancel", batch_id[:8]]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert db.batches.find_one({"_id": batch_id})["status"] == Status.cancelled.value

    assert main(["resume", batch_id[:8]]) == 0
    out = capsys.readouterr().out
    assert "Resuming batch" in out and out.count("  done  #") == 2
    assert db.batches.find_one({"_id": batch_id})["status"] == "done"
    assert db.conversations.count_documents({"batch_id": batch_id, "status": "done"}) == 2

    assert main(["resume", batch_id]) == 0
    assert "already done" in capsys.readouterr().out
    assert main(["cancel", "ffffffffff"]) == 2
    assert "no batch" in capsys.readouterr().err


def test_the_example_runs_on_a_fresh_install_with_the_embedded_server(
    tmp_data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No MONGODB_URI, an empty data directory: the embedded server is started and stopped."""
    for name in ("MONGODB_URI", "DB_USER", "DB_PASSWORD", "DB_CLUSTER_URL", "PRICE_TABLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MONGODB_DB", "simulator")
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(EXAMPLE), "--yes"]) == 0
    out = capsys.readouterr().out
    assert out.count("  done  #") == 10 and "done: 10 conversations" in out
    assert main(["batches"]) == 0
    listing = capsys.readouterr().out
    assert "Prison study" in listing and " done " in listing


def test_a_placeholder_error_in_an_inline_experiment_is_reported_before_anything_runs(
    db, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "experiment:\n"
        "  name: Typo\n"
        "  roles:\n"
        "    - name: Guard\n"
        "      sections: [{title: Role, kind: private, content: 'You are a <Gaurd_NOUN>.'}]\n"
        "batch: {total_messages: 2}\n",
        encoding="utf-8",
    )
    assert main(["run", str(spec), "--yes"]) == 2
    err = capsys.readouterr().err
    assert "Gaurd_NOUN" in err and "Traceback" not in err
    assert db.experiments.count_documents({}) == 0


async def test_sigterm_stops_simulator_run_cleanly_and_resume_finishes_it(
    db, mongo_uri: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """``kill PID`` on a running ``simulator run``: the batch is left interrupted (with the
    signal as its reason) with a resume hint, and ``simulator resume`` completes it."""
    import os
    import signal
    import sys

    spec = tmp_path / "slow.yaml"
    spec.write_text(
        "experiment: {example: prison_study}\n"
        "batch:\n"
        "  models: [{default: {provider: dryrun, model: dryrun, options: {latency_ms: 80}}}]\n"
        "  total_messages: 6\n"
        "  concurrency: 2\n",
        encoding="utf-8",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator.cli",
        "run",
        str(spec),
        "--yes",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None and proc.stderr is not None
    seen = ""
    try:
        while "  done  #" not in seen:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)  # wait deadline
            assert line, (await proc.stderr.read()).decode()
            seen += line.decode()

        def mid_run() -> bool:
            """A conversation is running with part of its messages stored: the signal lands
            inside it (not between two conversations, when none would be interrupted)."""
            running = [c["_id"] for c in db.conversations.find({"status": "running"})]
            stored = [
                m["conversation_id"]
                for m in db.messages.find(
                    {"conversation_id": {"$in": running}, "kind": "utterance"}
                )
            ]
            return any(1 <= stored.count(cid) <= 3 for cid in running)

        await wait_until(mid_run, what="a conversation half way")
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=20)  # wait deadline
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    err = (await proc.stderr.read()).decode()
    assert proc.returncode == 130, err
    batch = db.batches.find_one()
    assert batch["status"] == "interrupted"
    assert batch["stop_reason"] == "stopped by SIGTERM (kill)"
    assert f"simulator resume {batch['_id']}" in err
    assert db.conversations.count_documents({"status": "running"}) == 0
    stopped = list(db.conversations.find({"status": "interrupted"}))
    assert stopped and {c["stop_reason"] for c in stopped} == {"stopped by SIGTERM (kill)"}
    assert 1 <= db.conversations.count_documents({"status": "done"}) < 10

    async def resume() -> int:
        return await asyncio.to_thread(main, ["resume", batch["_id"]])

    assert await resume() == 0
    assert db.batches.find_one()["status"] == "done"
    assert db.conversations.count_documents({"status": "done"}) == 10
    assert db.messages.count_documents({"kind": "utterance"}) == 60
