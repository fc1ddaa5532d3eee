"""Retries are recorded where a researcher sees them, in CLI runs as in the TUI: on the stored
message (``retries``: attempt, cause and wait) and as a line of ``simulator run``."""

from __future__ import annotations

import uuid
from pathlib import Path

import pymongo
import pytest

from simulator.cli import main
from tests.servers import FakeOpenAIServer, Fault
from tests.servers.openai_server import CHAT


@pytest.fixture
def cli_db(mongo_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    name = f"t_retry_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", name)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key-for-the-fake-server")
    monkeypatch.setenv("SIMULATOR_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.delenv("PRICE_TABLE", raising=False)
    monkeypatch.chdir(tmp_path)
    client: pymongo.MongoClient = pymongo.MongoClient(mongo_uri)
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()


def test_a_cli_run_stores_and_prints_each_retry(
    cli_db, openai_server: FakeOpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    openai_server.script(CHAT, Fault(429, retry_after=0), Fault(503, retry_after=0))
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "experiment:\n"
        "  name: Retry study\n"
        "  roles: [{name: Guard}, {name: Prisoner}]\n"
        "  models:\n"
        f"    - {{provider: openai, model: fake-model, base_url: '{openai_server.base_url}'}}\n"
        "batch: {total_messages: 2}\n",
        encoding="utf-8",
    )
    assert main(["run", str(spec), "--yes"]) == 0
    out = capsys.readouterr().out
    retry_lines = [line for line in out.splitlines() if line.strip().startswith("retry")]
    assert len(retry_lines) == 2, out
    assert "attempt 1: 429" in retry_lines[0] and "Guard 1 day 1 turn 1" in retry_lines[0]
    assert "attempt 2: 503" in retry_lines[1]

    (first,) = list(cli_db.messages.find({"kind": "utterance", "turn": 1}))
    assert first["attempts"] == 3
    assert [(r["attempt"], r["reason"][:3], r["wait_s"]) for r in first["retries"]] == [
        (1, "429", 0.0),
        (2, "503", 0.0),
    ]
    later = list(cli_db.messages.find({"kind": "utterance", "turn": 2}))
    assert later and all(m["retries"] == [] and m["attempts"] == 1 for m in later)
