"""Ids as the app prints them: every command that takes a batch, experiment or conversation id
accepts a unique prefix of it (one resolver, ``db.ids``), and so does the Python API; an
ambiguous prefix is an error that lists the candidates (exit 2)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from simulator.analysis.loading import load_conversations, load_messages
from simulator.cli import main
from simulator.db.ids import (
    AmbiguousIdError,
    resolve_batch,
    resolve_conversation,
    resolve_experiment,
)
from simulator.domain import Batch, BatchSpec, Experiment, ModelRef, ModelSet
from simulator.engine.batch import BatchRunner
from simulator.llm.registry import Backends
from tests.plugins.batches import make_prison_experiment


@pytest.fixture
def cli(store: Any, mongo_uri: str, tmp_data_dir: Path, tmp_path: Path, monkeypatch) -> Path:
    """The command line on the test's database, in a scratch directory."""
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", store.db_name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def run(*args: str) -> int:
    return await asyncio.to_thread(main, list(args))


async def dryrun_batch(store: Any, exp: Experiment | None = None) -> Batch:
    exp = await store.experiments.create(exp or make_prison_experiment())
    spec = BatchSpec(
        experiment_id=exp.id,
        model_sets=[ModelSet(default=ModelRef(provider="dryrun", model="dryrun"))],
        max_agents={"Guard": 2},
        total_messages=2,
    )
    runner = BatchRunner(store, Backends(max_attempts=1, backoff_s=0.0), poll_s=0.05)
    batch = await runner.start(exp, spec, owner="ada")
    await runner.run(batch.id)
    return batch


async def test_export_takes_the_prefixes_the_app_prints(store: Any, cli: Path, capsys) -> None:
    batch = await dryrun_batch(store)
    other = await dryrun_batch(store)  # a second batch, so a filter must really choose
    convs = await load_conversations(store, batch_id=batch.id)
    short = batch.id[:8]  # as the progress line "batch 0197b0b3 ..." prints it
    assert await run("export", "--batch", short, "--what", "conversations", "-o", "b.csv") == 0
    exported = pd.read_csv(cli / "b.csv")
    assert set(exported["conversation_id"]) == set(convs["conversation_id"])
    assert set(exported["batch_id"]) == {batch.id}

    exp_id = batch.experiment_id
    assert await run("export", "--experiment", exp_id[:8], "-o", "e.csv") == 0
    assert set(pd.read_csv(cli / "e.csv")["experiment_id"]) == {exp_id}

    conv = convs["conversation_id"].iloc[0]
    assert await run("export", "--conversation", conv[:8], "-o", "c.csv") == 0
    assert set(pd.read_csv(cli / "c.csv")["conversation_id"]) == {conv}
    assert await run("plot", "--batch", other.id[:12], "--figure", "share", "-o", "s.png") == 0
    assert (cli / "s.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()


async def test_batch_commands_and_the_python_api_take_prefixes(store: Any, cli: Path) -> None:
    batch = await dryrun_batch(store)
    assert await run("resume", batch.id[:8]) == 0  # done already: said so, exit 0
    assert await run("cancel", batch.id[:6]) == 0
    frame = await load_messages(store, batch_id=batch.id[:8])
    assert set(frame["batch_id"]) == {batch.id}
    conv_id = frame["conversation_id"].iloc[0]
    assert (await resolve_conversation(store, conv_id[:10])).id == conv_id
    assert (await resolve_batch(store, batch.id.upper()[:8])).id == batch.id  # case of hex
    exp = await resolve_experiment(store, batch.experiment_id[:5])
    assert exp.id == batch.experiment_id
    frame = await load_conversations(store, conversation_ids=[conv_id[:9]])
    assert frame["conversation_id"].tolist() == [conv_id]


async def test_an_ambiguous_prefix_lists_the_candidates(store: Any, cli: Path, capsys) -> None:
    exp = await store.experiments.create(make_prison_experiment())
    ids = ["abcd1111" + "0" * 24, "abcd2222" + "0" * 24]
    for batch_id in ids:
        await store.batches.create(
            Batch(id=batch_id, experiment_id=exp.id, spec=BatchSpec(experiment_id=exp.id))
        )
    for args in (("export", "--batch", "abcd"), ("resume", "abcd"), ("cancel", "abcd")):
        assert await run(*args) == 2, args
        err = capsys.readouterr().err
        assert "error: Ambiguous id: 'abcd' matches several batches" in err, args
        assert all(i in err for i in ids), err
    with pytest.raises(AmbiguousIdError) as caught:
        await load_messages(store, batch_id="abcd")
    assert sorted(caught.value.candidates) == ids
    # a longer prefix is unique again; a short one is refused with a hint, not guessed
    assert (await resolve_batch(store, "abcd2")).id == ids[1]
    assert await run("export", "--batch", "abc") == 2
    assert "at least 4 characters" in capsys.readouterr().err
    assert await run("export", "--batch", "ffff0000") == 2
    assert "There is no batch 'ffff0000'" in capsys.readouterr().err


async def test_game_reports_take_prefixes(store: Any, cli: Path, capsys) -> None:
    assert await run("commons", "run", "--members", "2", "--rounds", "1", "-o", "run") == 0
    commons_id = json.loads((cli / "run" / "summary.json").read_text())["conversation_id"]
    capsys.readouterr()
    assert await run("commons", "report", commons_id[:8], "-o", "report") == 0
    summary = json.loads((cli / "report" / "summary.json").read_text())
    assert summary["conversation_id"] == commons_id  # the whole id, not the prefix

    args = ["--mix", "always_cooperate=2", "--game", "pd", "--steps", "1", "-o", "rep"]
    assert await run("reputation", "run", *args) == 0
    printed = capsys.readouterr().out
    reputation_id = printed.split("conversation ", 1)[1].split(":", 1)[0]
    assert await run("reputation", "report", reputation_id[:8], "-o", "rep2") == 0
    assert (cli / "rep2" / "metrics.csv").exists()
    # a conversation of the other game is named as such, not "has no stored steps"
    assert await run("reputation", "report", commons_id[:8]) == 2
    assert "is a commons run, not a reputation game" in capsys.readouterr().err
    assert await run("commons", "report", "0000ffff") == 2
    assert "There is no conversation '0000ffff'" in capsys.readouterr().err


async def test_the_store_lists_ids_by_prefix(store: Any) -> None:
    """The storage contract of the resolver (embedded server and MongoDB alike)."""
    exp = await store.experiments.create(make_prison_experiment(id="abc0" + "1" * 28))
    ids = sorted(f"ab{c}{'0' * 29}" for c in "fc9")
    for batch_id in ids:
        await store.batches.create(
            Batch(id=batch_id, experiment_id=exp.id, spec=BatchSpec(experiment_id=exp.id))
        )
    assert await store.batches.ids_with_prefix("ab") == ids
    assert await store.batches.ids_with_prefix("ab", limit=2) == ids[:2]
    assert await store.batches.ids_with_prefix("abf") == [ids[2]]
    assert await store.batches.ids_with_prefix("abz") == []
    assert await store.experiments.ids_with_prefix("abc0") == [exp.id]
    assert await store.conversations.ids_with_prefix("abc0") == []
