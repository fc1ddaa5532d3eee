"""``simulator cache stats|export|import|clear``, ``simulator batches``' ledger columns and
``simulator export --what ledger``: sharing a cache with a paper, in-process on the embedded
server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pymongo
import pytest

from simulator.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "simulator" / "examples" / "prison_study.yaml"


@pytest.fixture
def db(
    mongo_uri: str, tmp_data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Any]:
    name = f"t_cachecli_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", name)
    for var in ("PRICE_TABLE", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_uri)
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()


def spec(tmp_path: Path, cache: str = "reuse") -> Path:
    path = tmp_path / f"spec-{cache}.yaml"
    path.write_text(
        f"experiment: {{file: '{EXAMPLE}'}}\n"
        "batch:\n"
        "  total_messages: 4\n"
        "  max_agents: {guard: 2}\n"
        "  factors: [{goal: Escape, persona: No persona}]\n"
        f"  cache: {cache}\n",
        encoding="utf-8",
    )
    return path


def test_export_clear_import_and_a_free_rerun(
    db: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(spec(tmp_path)), "--yes"]) == 0
    answers = db.responses.count_documents({})
    assert answers == 2 * (4 + 1)
    capsys.readouterr()

    assert main(["cache", "stats"]) == 0
    out = capsys.readouterr().out
    assert "dryrun" in out and f"{answers} answers in all" in out

    for name in ("cache.jsonl", "cache.parquet"):
        assert main(["cache", "export", str(tmp_path / name)]) == 0
        assert f"{answers} answers written" in capsys.readouterr().out
    lines = (tmp_path / "cache.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0]) == {"format": "llm-interaction-simulator/responses", "version": 1}
    assert len(lines) == 1 + answers
    assert len(pd.read_parquet(tmp_path / "cache.parquet")) == answers

    assert main(["cache", "clear", "--yes"]) == 0
    assert db.responses.count_documents({}) == 0
    before = list(db.batches.find())
    # the Parquet file brings every answer back; the JSONL one then adds nothing (a merge)
    assert main(["cache", "import", str(tmp_path / "cache.parquet")]) == 0
    assert f"{answers} new, 0 already stored" in capsys.readouterr().out
    assert main(["cache", "import", str(tmp_path / "cache.jsonl")]) == 0
    assert f"0 new, {answers} already stored" in capsys.readouterr().out
    assert db.responses.count_documents({}) == answers

    # another lab's rerun with the imported cache: nothing asked, every answer served
    assert main(["rerun", before[0]["_id"], "--yes"]) == 0
    assert "answers from the response cache: 10 of 10" in capsys.readouterr().out

    assert main(["batches"]) == 0
    listing = capsys.readouterr().out
    assert "calls" in listing and "cached" in listing and "cost" in listing

    out_csv = tmp_path / "ledger.csv"
    assert main(["export", "--what", "ledger", "-o", str(out_csv)]) == 0
    ledger = pd.read_csv(out_csv)
    assert set(ledger["batch_id"]) == {b["_id"] for b in db.batches.find()}
    assert set(ledger["purpose"]) == {"utterance", "summary"}
    per_batch = ledger.groupby("batch_id")[["calls", "cache_hits"]].sum()
    assert sorted(per_batch["calls"]) == [0, 10] and sorted(per_batch["cache_hits"]) == [0, 10]


def test_an_import_of_a_file_that_is_not_a_cache_names_the_problem(
    db: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"hello": 1}\n', encoding="utf-8")
    assert main(["cache", "import", str(bad)]) == 2
    assert "bad.jsonl line 1: not a response cache file" in capsys.readouterr().err
    broken = tmp_path / "broken.jsonl"
    broken.write_text(
        '{"format": "llm-interaction-simulator/responses", "version": 1}\n{"id": "k"}\n',
        encoding="utf-8",
    )
    assert main(["cache", "import", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "broken.jsonl line 2: request: Field required" in err and "Traceback" not in err
    assert db.responses.count_documents({}) == 0
