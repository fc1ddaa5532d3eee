"""``simulator stats`` on a real store: a dryrun study scored and judged, then modelled (message
and conversation level, clustered), summarised, followed turn by turn and Granger-tested; bad
names are one readable error, exit code 2."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from simulator.cli import main
from tests.plugins.annotations import run_dialogue_study

RUBRIC = str(Path(__file__).resolve().parents[1] / "simulator/examples/rubrics/persuasion.yaml")
WORDS = "python:tests.scorers:lengths.words"


@pytest.fixture
def cli_env(store: Any, mongo_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", store.db_name)
    monkeypatch.setenv("SIMULATOR_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SIMULATOR_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_stats_of_a_scored_and_judged_study(store: Any, cli_env: Path, capsys: Any) -> None:
    study = await run_dialogue_study(store, repeats=3, total_messages=12)
    batch = study.batch_id
    assert await cli("annotate", "python:tests.scorers:lengths", "--batch", batch) == 0
    assert (
        await cli(
            "annotate", "judge", "--rubric", RUBRIC, "--model", "dryrun:judge", "--batch", batch
        )
        == 0
    )
    capsys.readouterr()

    # messages within a conversation are not independent: cluster by conversation
    assert await cli(
        "stats", "fit", WORDS, "--on", "role", "--on", "goal", "--se", "cluster",
        "--batch", batch, "-o", "tables/words",
    ) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith(f"OLS of {WORDS}")
    assert "N = 72 messages; 6 clusters" in out and "clustered by conversation" in out
    tidy = pd.read_csv(cli_env / "tables" / "words.csv")
    assert tidy["term"].tolist() == ["(intercept)", "role[Prisoner]", "goal[privileges]"]
    assert set(tidy["n"]) == {72} and set(tidy["clusters"]) == {6}
    assert (cli_env / "tables" / "words.tex").read_text().startswith("\\begin{table}")
    assert "| role[Prisoner]   |" in (cli_env / "tables" / "words.md").read_text()

    # the guard's mean per conversation, on the goal
    assert await cli(
        "stats", "fit", WORDS, "--per", "conversation", "--role", "guard", "--on", "goal",
        "--batch", batch,
    ) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "(mean per conversation, Guard)" in out and "N = 6 conversations" in out

    # a share of messages above a threshold, per conversation: a fractional logit
    assert await cli(
        "stats", "fit", f"{WORDS}>22", "--per", "conversation", "--on", "goal",
        "--batch", batch,
    ) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith(f"Fractional logit of {WORDS}>22 (mean per conversation)")

    assert await cli(
        "stats", "summary", "mean_words", "judge:persuasion.goal_achieved=yes", "--by", "goal",
        "--batch", batch, "-o", "summary.csv",
    ) == 0  # fmt: skip
    summary = pd.read_csv(cli_env / "summary.csv")
    assert len(summary) == 2 * 2  # two cells (one per goal), two measures; never pooled
    assert set(summary["n"]) == {3}
    by_measure = summary.groupby("measure")["interval"].first().to_dict()
    assert by_measure == {"judge:persuasion.goal_achieved=yes": "wilson", "mean_words": "t"}
    assert summary["ci_low"].notna().all() and "factor_goal" in summary.columns

    assert await cli("stats", "series", WORDS, "--batch", batch, "-o", "series.csv") == 0
    series = pd.read_csv(cli_env / "series.csv")
    assert len(series) == 2 * 12  # two cells x twelve agent turns
    assert set(series["n"]) == {3} and series["agent_turn"].tolist()[:3] == [1, 3, 5]
    assert {"mean", "sd", "ci_low", "ci_high"} <= set(series.columns)

    capsys.readouterr()
    assert (
        await cli("stats", "granger", "python:tests.scorers:lengths.chars", "--batch", batch) == 0
    )
    out = capsys.readouterr().out
    assert "Guard -> Prisoner (lag 1): 6 of 6 conversation(s) tested" in out
    assert "Prisoner -> Guard (lag 1): 6 of 6 conversation(s) tested" in out
    assert await cli(
        "stats", "granger", "python:tests.scorers:lengths.chars", "--cause", "guard",
        "--effect", "prisoner", "--lag", "2", "--batch", batch, "-o", "granger.csv",
    ) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "Guard -> Prisoner (lag 2): 0 of 6 conversation(s) tested" in out
    assert "no test in 6: too few turns: 6 paired turn(s) give 5 difference(s)" in out
    tests = pd.read_csv(cli_env / "granger.csv")
    assert tests["p_value"].isna().all() and tests["reason"].notna().all()
    assert (cli_env / "granger_summary.csv").exists()


async def test_bad_names_are_readable_errors(store: Any, cli_env: Path, capsys: Any) -> None:
    study = await run_dialogue_study(store, repeats=2)
    batch = study.batch_id
    code = await cli("stats", "fit", "toxicity", "--on", "goal", "--batch", batch)
    assert code == 2
    err = capsys.readouterr().err
    assert "error: Not in the data: no outcome or score 'toxicity'" in err
    assert "mean_words" in err and "Traceback" not in err
    code = await cli("stats", "fit", "mean_words", "--on", "mood", "--batch", batch)
    assert code == 2
    assert "no predictor 'mood': use a study factor (goal)" in capsys.readouterr().err
    code = await cli(
        "stats", "fit", "mean_words", "--on", "goal", "--family", "logit", "--batch", batch
    )
    assert code == 2
    assert "logit needs a yes/no outcome" in capsys.readouterr().err
