"""``simulator annotate``, ``simulator interview`` and ``simulator export --what annotations``:
progress and summary lines, idempotent re-runs, bad input refused with exit code 2 and nothing
stored, failures reported with exit code 1, and the export merging with the messages table in
one line of pandas."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from simulator.cli import main
from tests.plugins.annotations import RUBRIC, DialogueStudy
from tests.servers import FakeModerationServer, Fault
from tests.servers.openai_server import CHAT

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli_env(
    store: Any, mongo_uri: str, tmp_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", store.db_name)
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PRICE_TABLE", "LLM_MAX_ATTEMPTS"):
        monkeypatch.delenv(var, raising=False)


async def cli(*args: str) -> int:
    return await asyncio.to_thread(main, list(args))


async def test_annotate_judge_then_again_then_dry_run(
    store: Any, dialogue_study: DialogueStudy, cli_env: None, capsys: Any
) -> None:
    rubric = str(REPO / RUBRIC)
    code = await cli("annotate", "judge", "--rubric", rubric, "--model", "dryrun:judge")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Annotator: judge:persuasion, version 1-" in out
    assert "Conversations: 2; items: 2, stored: 0, to annotate: 2" in out
    assert "annotate judge:persuasion" in out and "2/2" in out
    assert "Done: 2 of 2 item(s) annotated; 4 annotation(s) stored; 4 answer(s)" in out
    assert await store.db["annotations"].count_documents({}) == 4
    code = await cli("annotate", "judge", "--rubric", rubric, "--model", "dryrun:judge")
    out = capsys.readouterr().out
    assert code == 0 and "Nothing to do: every item is annotated." in out
    code = await cli(
        "annotate", "judge", "--rubric", rubric, "--model", "dryrun:judge.invalid", "--dry-run"
    )
    out = capsys.readouterr().out
    assert code == 0 and "to annotate: 2" in out and "Dry run" in out
    assert await store.db["annotations"].count_documents({}) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["annotate", "toxigen"], "unknown annotator 'toxigen'"),
        (["annotate", "judge", "--model", "dryrun"], "give the rubric with --rubric FILE"),
        (["annotate", "judge", "--rubric", RUBRIC], "choose the judge's model with --model"),
        (["annotate", "judge", "--rubric", RUBRIC, "--model", "gpt4"], "--model: 'gpt4' is not"),
        (["annotate", "judge", "--rubric", "nothere.yaml", "--model", "dryrun"], "no such rubric"),
        (["annotate", "moderation", "--rubric", RUBRIC], "--rubric belongs to the judge"),
        (["annotate", "python:nosuch.module:f"], "cannot import 'nosuch.module'"),
        (["annotate", "python:tests.scorers:lengths", "--concurrency", "0"], "--concurrency"),
        (["annotate", "moderation", "--experiment", "Nope"], "No experiment 'Nope'"),
        (["interview", "-q", "Why?", "--agent", "Nobody 9"], "has an agent named 'Nobody 9'"),
        (["interview", "--question", " "], "--question: give the question"),
        (["interview", "--question", "Why?", "--day", "0"], "--day must be 1 or more"),
        (["export", "--wide"], "--wide and --annotator go with --what annotations"),
        (["export", "--what", "annotations", "--kind", "utterance"], "--kind selects messages"),
        (["export", "--what", "annotations", "-f", "html"], "is a table"),
        (["export", "--what", "annotations"], "have no annotations"),
    ],
)
async def test_bad_input_is_one_message_exit_code_2_and_nothing_stored(
    store: Any,
    dialogue_study: DialogueStudy,
    cli_env: None,
    capsys: Any,
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(REPO)
    code = await cli(*args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert await store.db["annotations"].count_documents({}) == 0
    assert await store.db["annotators"].count_documents({}) == 0


async def test_moderation_python_and_export_merge_with_messages(
    store: Any,
    dialogue_study: DialogueStudy,
    cli_env: None,
    capsys: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakeModerationServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
        assert await cli("annotate", "moderation", "--batch-size", "5") == 0
        assert all(
            r.headers["authorization"] == "Bearer sk-local-test"
            for r in server.seen("/v1/moderations")
        )
    out = capsys.readouterr().out
    assert "Annotator: moderation, version omni-moderation-latest@127.0.0.1:" in out
    assert "12 of 12 item(s) annotated; 12 annotation(s) stored" in out
    assert "sk-local-test" not in out
    assert await cli("annotate", "python:tests.scorers:lengths", "--kind", "utterance") == 0
    long_csv, wide_csv, messages_csv = (tmp_path / n for n in ("a.csv", "w.csv", "m.csv"))
    assert await cli("export", "--what", "annotations", "-o", str(long_csv)) == 0
    assert await cli("export", "--what", "annotations", "--wide", "-o", str(wide_csv)) == 0
    assert await cli("export", "-o", str(messages_csv)) == 0
    long = pd.read_csv(long_csv)
    assert len(long) == 12 * 14 + 12 * 2  # 13 categories + flagged; chars + words
    assert set(long["annotator"]) == {"moderation", "python:tests.scorers:lengths"}
    messages = pd.read_csv(messages_csv)
    merged = messages.merge(pd.read_csv(wide_csv), on=["conversation_id", "seq"], how="left")
    agent = merged[merged["kind"] == "utterance"]
    assert agent["moderation.violence"].notna().all()
    assert (agent["python:tests.scorers:lengths.chars"] == agent["content"].str.len()).all()
    assert merged[merged["kind"] != "utterance"]["moderation.violence"].isna().all()
    only = tmp_path / "only.csv"
    assert await cli("export", "--what", "annotations", "--annotator", "moderation",
                     "-o", str(only)) == 0  # fmt: skip
    assert set(pd.read_csv(only)["annotator"]) == {"moderation"}


async def test_a_failed_item_gives_exit_code_1_and_the_next_run_completes(
    store: Any,
    dialogue_study: DialogueStudy,
    cli_env: None,
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_MAX_ATTEMPTS", "1")
    with FakeModerationServer() as server:
        server.script(CHAT, Fault(status=503))
        args = ["annotate", "judge", "--rubric", str(REPO / RUBRIC), "--model", "openai:fake-judge",
                "--base-url", server.base_url, "--concurrency", "1"]  # fmt: skip
        assert await cli(*args) == 1
        out = capsys.readouterr().out
        assert "failed 1 item(s)" in out and "1 item(s) failed; run the same command again" in out
        assert await cli(*args) == 0
        assert "stored: 1, to annotate: 1" in capsys.readouterr().out


async def test_interview_prints_and_stores_each_answer(
    store: Any, dialogue_study: DialogueStudy, cli_env: None, capsys: Any
) -> None:
    conv = dialogue_study.conversations[0]
    code = await cli("interview", conv.id, "--agent", "prisoner 1", "-q", "What did you want?")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Interviewing 1 agent(s) in 1 conversation(s); 0 answer(s) stored before" in out
    assert f"Prisoner 1 · #1 1v1, 1 day, goal={conv.cell.factors['goal']} · {conv.id}" in out
    assert "context: end of day 1 · model dryrun (not a model)" in out
    assert "Q: What did you want?" in out and "A: [dryrun] Prisoner 1 (Prisoner)" in out
    (stored,) = await store.db["annotations"].find({}).to_list(None)
    assert stored["agent"] == "Prisoner 1" and stored["annotator"] == "interview"
    code = await cli("interview", conv.id, "--agent", "Prisoner 1", "-q", "What did you want?")
    assert code == 0 and "1 answer(s) stored before, 0 to ask" in capsys.readouterr().out
