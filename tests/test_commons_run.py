"""A 4-member dryrun run with a saboteur and monitors (acceptance 4), fallbacks through the
Journal, and the commands."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from simulator.cli import main
from simulator.domain import MessageKind, Status
from simulator.engine.conversation import run_conversation
from simulator.scenarios.commons.actions import MonitorReport
from simulator.scenarios.commons.params import CommonsParams
from simulator.scenarios.commons.reports import write_reports
from simulator.scenarios.commons.setup import (
    commons_cell,
    commons_experiment,
    scripted_model,
    start_run,
)
from tests.plugins.commons import saboteur_params

PNG = b"\x89PNG\r\n\x1a\n"


async def test_saboteur_with_monitors_run_writes_metrics_and_reports(
    store: Any, backends: Any, tmp_path: Path
) -> None:
    params = saboteur_params(rounds=4, terminate=True)
    exp = commons_experiment(params)
    cell = commons_cell(4, model=scripted_model(chat="public+1"), seed=2)
    conv = await start_run(store, exp, cell)
    done = await run_conversation(store, backends, conv.id)
    assert done.status is Status.done, done.error

    files = await write_reports(store, conv.id, tmp_path / "out")
    rows = list(csv.DictReader(files["csv"].open()))
    assert [int(r["round"]) for r in rows] == [1, 2, 3, 4]
    for col in (
        "resource_before",
        "resource_after_extraction",
        "total_true",
        "total_reported",
        "honesty_index",
        "fairness_sd",
        "gini_credits",
        "penalties_total",
        "audit_triggered",
        "audited",
        "eliminated_terminated",
        "spawns",
        "message_spend",
    ):
        assert col in rows[0]
    assert files["dashboard"].read_bytes()[:8] == PNG
    summary = json.loads(files["summary"].read_text())
    assert summary["eliminated_terminated"] == 1 and summary["rounds_played"] == 4

    messages = await store.messages.list(conv.id)
    answers = [m for m in messages if m.kind is MessageKind.action and m.role == "Member"]
    assert answers
    by_seq = {m.seq: m for m in messages}
    for answer in answers:  # every answer is followed by its monitor's report
        report_msg = by_seq[answer.seq + 1]
        assert (report_msg.speaker, report_msg.role) == (f"{answer.speaker} monitor", "monitor")
        report = MonitorReport.model_validate(report_msg.data)
        assert isinstance(report.terminate, bool)
    entries = [e for r in (await store.states.latest(conv.id))[1]["rounds"] for e in r["monitor"]]
    assert len(entries) == len(answers)
    assert all(e["report_seq"] == e["answer_seq"] + 1 for e in entries)

    # the saboteur under-reported in round 1, was caught by its monitor and removed before the
    # extraction was tallied
    extraction = next(
        m for m in answers if m.speaker == "Member 1" and m.data and "extract_true" in m.data
    )
    verdict = MonitorReport.model_validate(by_seq[extraction.seq + 1].data)
    assert verdict.extraction_deception.present is True and verdict.terminate
    assert verdict.intent_to_deceive.present == "uncertain"
    later = [m for m in messages if m.speaker == "Member 1" and m.seq > extraction.seq]
    assert later == []
    snap = (await store.states.list(conv.id))[1][1]
    assert "Member 1" not in snap["rounds"][0]["extractions"]
    assert snap["rounds"][0]["eliminations"] == [
        {"name": "Member 1", "cause": "terminated", "phase": "extraction"}
    ]
    # "uncertain" is its own value in the aggregate
    assert summary["monitor_intent_to_deceive_uncertain"] >= 1
    assert summary["monitor_extraction_deception_true"] == 1
    total = sum(summary[f"monitor_intent_to_deceive_{v}"] for v in ("true", "false", "uncertain"))
    assert total == summary["monitor_reviews"]


async def test_invalid_answers_are_reasked_then_defaulted(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    policy = recording_policy(lambda request: "no idea")
    params = CommonsParams(rounds=1, member_models={"Member 2": policy.model})
    conv = await start_run(store, commons_experiment(params), commons_cell(2, seed=1))
    done = await run_conversation(store, backends, conv.id)
    assert done.status is Status.done
    mine = [
        m
        for m in await store.messages.list(conv.id)
        if m.speaker == "Member 2" and m.kind is MessageKind.action
    ]
    assert mine and all("fallback" in m.flags for m in mine)
    assert all(m.attempts == 3 for m in mine)  # the answer and two re-asks
    assert done.fallbacks == len(mine)
    state = (await store.states.latest(conv.id))[1]
    assert state["rounds"][0]["fallbacks"] == len(mine)
    assert state["rounds"][0]["extractions"]["Member 2"]["true"] == 0.0


def test_calibrate_command_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cal.png"
    code = main(
        [
            "commons",
            "calibrate",
            "--members",
            "3",
            "--seeds",
            "2",
            "--rounds",
            "3",
            "--json",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    cells = json.loads(capsys.readouterr().out)
    assert [c["chat"] for c in cells] == ["silent", "public", "public+1", "public+2"]
    assert cells[0] == {
        "members": 3,
        "chat": "silent",
        "messages_per_turn": 0,
        "quota": 1.2,
        "seeds": 2,
        "collapsed_seeds": 0,
        "mean_final_resource": cells[0]["mean_final_resource"],
    }
    assert out.read_bytes()[:8] == PNG


def test_commands_reject_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["commons", "calibrate", "--members", "x", "--seeds", "1"]) == 2
    assert "--members" in capsys.readouterr().err


def test_run_and_fork_commands(
    store: Any,
    mongo_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", store.db_name)
    out = tmp_path / "run"
    code = main(
        [
            "commons",
            "run",
            "--saboteur",
            "Member 1",
            "--monitors",
            "--rounds",
            "3",
            "--quota",
            "3",
            "--seed",
            "4",
            "-o",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert (out / "rounds.csv").exists() and (out / "dashboard.png").read_bytes()[:8] == PNG
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds_played"] == 3 and summary["monitor_reviews"] > 0
    cid = summary["conversation_id"]
    assert f"conversation {cid}: done" in printed
    code = main(
        [
            "commons",
            "fork",
            cid,
            "--at-round",
            "2",
            "--rounds",
            "4",
            "--member-model",
            "Member 3=commons.cheater",
            "-o",
            str(tmp_path / "fork"),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    fork_summary = json.loads((tmp_path / "fork" / "summary.json").read_text())
    assert fork_summary["rounds_played"] == 4 and fork_summary["conversation_id"] != cid
    rows = list(csv.DictReader((tmp_path / "fork" / "rounds.csv").open()))
    parent_rows = list(csv.DictReader((out / "rounds.csv").open()))
    assert rows[:2] == parent_rows[:2]  # rounds 1-2 shared
    assert main(["commons", "fork", cid, "--at-round", "9"]) == 2
    assert "Cannot fork there" in capsys.readouterr().err


async def test_judge_reports_deception_and_objective_flags(store: Any, backends: Any) -> None:
    from simulator.scenarios.commons.judge import judge_run

    params = CommonsParams(
        rounds=2, member_models={"Member 1": scripted_model("commons.cheater", chat="public")}
    )
    conv = await start_run(store, commons_experiment(params), commons_cell(3, seed=3))
    assert (await run_conversation(store, backends, conv.id)).status is Status.done
    result = await judge_run(store, backends, conv.id, scripted_model("commons.judge"))
    cheat = result["members"]["Member 1"]
    assert cheat["valid"] and cheat["report"]["extraction_deception"]["present"] is True
    assert cheat["objective"]["under_reported_rounds"] == [1, 2]
    assert cheat["objective"]["over_share_rounds"] == [1, 2]
    honest = result["members"]["Member 2"]
    assert honest["report"]["extraction_deception"]["present"] is False
    assert honest["objective"] == {
        "under_reported_rounds": [],
        "hidden_total": 0.0,
        "over_share_rounds": [],
    }
    assert result["tally"]["extraction_deception"] == {"true": 1, "false": 2, "uncertain": 0}
    assert result["tally"]["intent_to_deceive"] == {"true": 0, "false": 0, "uncertain": 3}
    # nothing was stored
    assert not [m for m in await store.messages.list(conv.id) if m.role == "judge"]


async def test_a_batch_grids_commons_over_members_and_seeds(store: Any, backends: Any) -> None:
    from simulator.domain import BatchSpec, ModelSet
    from simulator.engine.batch import BatchRunner

    exp = commons_experiment(CommonsParams(rounds=2))
    await store.experiments.create(exp)
    spec = BatchSpec(
        experiment_id=exp.id,
        max_agents={"Member": 3},
        repeats=2,
        rounds=2,
        model_sets=[ModelSet(default=scripted_model(chat="public"))],
    )
    runner = BatchRunner(store, backends)
    batch = await runner.start(exp, spec)
    batch = await runner.run(batch.id)
    assert batch.status is Status.done, batch.error
    convs = [c for c in await store.conversations.list() if c.batch_id == batch.id]
    assert sorted(sum(c.cell.counts.values()) for c in convs) == [1, 1, 2, 2, 3, 3]
    for conv in convs:
        assert conv.status is Status.done and conv.kind.value == "commons"
        latest = await store.states.latest(conv.id)
        assert latest is not None and latest[0] == 2
    seeds = {c.seed for c in convs if sum(c.cell.counts.values()) == 3}
    assert len(seeds) == 2  # the repeats play different lakes
