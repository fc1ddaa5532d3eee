"""Human coding: sheets from the judge's rubric, coders' sheets read back and checked (one readable
error naming the file, row and column, exit code 2, nothing stored), agreement, and the agreed
labels stored as ``human:<rubric>`` annotations that export and join like the judge's."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from openpyxl import load_workbook

from simulator.analysis.coding import (
    CodingError,
    agreement_table,
    load_items,
    parse_levels,
    read_sheets,
    resolve,
    store_labels,
    write_sheet,
)
from simulator.annotations.base import Item
from simulator.annotations.judge import JudgeAnnotator
from simulator.annotations.rubric import load_rubric
from simulator.annotations.tables import annotations_frame, load_annotations, wide_frame
from simulator.cli import main
from simulator.domain import ModelRef, Provider
from simulator.domain.filters import ConversationFilter
from tests.plugins.annotations import run_dialogue_study

RUBRIC = str(Path(__file__).resolve().parents[1] / "simulator/examples/rubrics/persuasion.yaml")


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


def fill_xlsx(path: Path, answers: dict[str, tuple[Any, Any]]) -> None:
    """Write (goal_achieved, goal_third) per conversation id into a blank XLSX sheet."""
    wb = load_workbook(path)
    ws = wb["coding"]
    header = [c.value for c in ws[1]]
    cid, goal, third = (
        header.index(n) + 1 for n in ("conversation_id", "goal_achieved", "goal_third")
    )
    for r in range(2, ws.max_row + 1):
        achieved, when = answers[ws.cell(r, cid).value]
        ws.cell(r, goal).value = achieved
        ws.cell(r, third).value = when
    wb.save(path)


def fill_csv(path: Path, answers: dict[str, tuple[Any, Any]]) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["goal_achieved"] = [answers[c][0] or "" for c in frame["conversation_id"]]
    frame["goal_third"] = [
        "" if answers[c][1] is None else str(answers[c][1]) for c in frame["conversation_id"]
    ]
    frame.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)


async def test_a_sheet_shows_what_the_judge_is_shown(store: Any, tmp_path: Path) -> None:
    study = await run_dialogue_study(store, repeats=2)
    rubric = load_rubric(RUBRIC)
    items = await load_items(store, rubric, ConversationFilter(batch_id=study.batch_id))
    assert len(items) == 4 and {i.seq for i in items} == {None}
    judge = JudgeAnnotator(
        rubric,
        ModelRef(provider=Provider.dryrun, model="judge"),
        None,
        experiment_names={study.experiment.id: study.experiment.name},
    )
    for item in items:
        conv = item.conversation
        messages = await store.messages.list(conv.id)
        request, _, transcript = judge.request(
            Item(conv, questions=("goal_achieved", "goal_third"), payload=messages)
        )
        assert item.instructions == request.messages[0].content
        assert conv.cell.factors["goal"] in item.instructions  # {goal} filled in
        assert request.messages[1].content.startswith(item.shown)
        assert "[1]" in item.shown and "goal_third" in item.shown and "JSON" not in item.shown
        assert item.turns == transcript.turns == 6
        assert "factor" not in item.shown.casefold()  # coders are as blind as the judge

    sheet = write_sheet(rubric, items, tmp_path / "blank.xlsx")
    wb = load_workbook(sheet)
    ws = wb["coding"]
    header = [c.value for c in ws[1]]
    assert header[-3:] == ["goal_achieved", "goal_third", "comment"]
    assert [ws.cell(r, header.index("goal_achieved") + 1).value for r in range(2, 6)] == [None] * 4
    lists = wb["lists"]
    rules = {str(dv.sqref): dv for dv in ws.data_validations.dataValidation}
    goal = rules["J2:J5"]
    assert goal.type == "list" and goal.formula1 == "=lists!$A$1:$A$3"
    assert [lists[f"A{i}"].value for i in (1, 2, 3)] == ["yes", "no", "not_tried"]
    assert rules["K2:K5"].formula1 == "=lists!$B$1:$B$3"
    assert [lists[f"B{i}"].value for i in (1, 2, 3)] == ["1", "2", "3"]
    assert wb["rubric"]["A2"].value == "goal_achieved"
    blank_csv = write_sheet(rubric, items, tmp_path / "blank.csv")
    frame = pd.read_csv(blank_csv)
    assert frame["conversation_id"].tolist() == [i.conversation.id for i in items]
    assert frame["goal_achieved"].isna().all()


async def test_coders_sheets_agree_and_the_labels_are_stored(
    store: Any, cli_env: Path, capsys: Any
) -> None:
    study = await run_dialogue_study(store, repeats=2)
    ids = [c.id for c in study.conversations]
    assert (
        await cli(
            "coding",
            "sheet",
            "--rubric",
            RUBRIC,
            "--batch",
            study.batch_id,
            "--coder",
            "ana",
            "--coder",
            "ben",
            "--coder",
            "cy",
            "-o",
            "sheets",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "4 item(s) in 4 conversation(s)" in out
    ana = {
        ids[0]: ("yes", 2),
        ids[1]: ("no", None),
        ids[2]: ("not_tried", None),
        ids[3]: ("yes", 3),
    }
    ben = {ids[0]: ("yes", 2), ids[1]: ("no", None), ids[2]: ("no", None), ids[3]: ("yes", 1)}
    fill_xlsx(cli_env / "sheets" / "ana.xlsx", ana)
    fill_xlsx(cli_env / "sheets" / "ben.xlsx", ben)
    # a coder may work in CSV: the same sheet, the same checks
    assert (
        await cli(
            "coding", "sheet", "--rubric", RUBRIC, "--batch", study.batch_id, "-o", "sheets/cy.csv"
        )
        == 0
    )
    cy = {ids[0]: ("YES", "2"), ids[1]: ("no", None), ids[2]: ("no", None), ids[3]: ("yes", 2)}
    fill_csv(cli_env / "sheets" / "cy.csv", cy)

    rubric = load_rubric(RUBRIC)
    sheets = read_sheets(["sheets/ana.xlsx", "sheets/ben.xlsx"], rubric)
    table = agreement_table(rubric, sheets).set_index("question")
    # goal_achieved: 3 of 4 agree; kappa by hand: p_o = 0.75; marginals ana (yes 2, no 1,
    # not_tried 1), ben (yes 2, no 2): p_e = 0.5 * 0.5 + 0.25 * 0.5 = 0.375
    assert table.loc["goal_achieved", "agreement"] == 0.75
    assert table.loc["goal_achieved", "kappa"] == pytest.approx((0.75 - 0.375) / (1 - 0.375))
    assert table.loc["goal_third", "items"] == 2 and table.loc["goal_third", "level"] == "ordinal"
    three = read_sheets(["sheets/ana.xlsx", "sheets/ben.xlsx", "sheets/cy.csv"], rubric)
    assert three[2].answers[(ids[0], None)] == {"goal_achieved": "yes", "goal_third": 2}
    assert pd.isna(agreement_table(rubric, three).loc[0, "kappa"])  # alpha only, for 3 coders

    code = await cli(
        "coding",
        "agreement",
        "--rubric",
        RUBRIC,
        "sheets/ana.xlsx",
        "sheets/ben.xlsx",
        "--weights",
        "linear",
        "-o",
        "agreement",
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "| goal_achieved |" in out and "Disagreements: 2" in out
    written = pd.read_csv(cli_env / "agreement" / "disagreements.csv")
    assert set(written["question"]) == {"goal_achieved", "goal_third"}
    assert {"coder:ana", "coder:ben"} <= set(written.columns)

    code = await cli(
        "coding", "import", "--rubric", RUBRIC, "sheets/ana.xlsx", "sheets/ben.xlsx", "--dry-run"
    )
    assert code == 0 and "Dry run: nothing stored." in capsys.readouterr().out
    assert await load_annotations(store, ConversationFilter(batch_id=study.batch_id)) == []
    levels = parse_levels(["interval", "goal_achieved=nominal"], rubric)
    assert levels == {"goal_achieved": "nominal", "goal_third": "interval"}
    with pytest.raises(CodingError, match="no question 'goal'"):
        parse_levels(["goal=ordinal"], rubric)

    code = await cli("coding", "import", "--rubric", RUBRIC, "sheets/ana.xlsx", "sheets/ben.xlsx")
    assert code == 0
    out = capsys.readouterr().out
    # unanimous: conversation 0 (yes, 2), 1 (no; goal_third not applicable) and 3's goal (yes);
    # conversation 2's goal (not_tried, no), hence its goal_third, and 3's goal_third (3, 1) not
    assert "5 resolved (5 unanimous, 0 by the unanimous rule), 3 unresolved" in out
    long = annotations_frame(
        await load_annotations(store, ConversationFilter(batch_id=study.batch_id))
    )
    human = long[long["annotator"] == "human:persuasion"]
    assert set(human["annotator_kind"]) == {"human"}
    assert len(human) == 5
    wide = wide_frame(long).set_index("conversation_id")
    assert wide.loc[ids[0], "human:persuasion.goal_achieved"] == "yes"
    assert wide.loc[ids[0], "human:persuasion.goal_third"] == 2.0
    assert pd.isna(wide.loc[ids[1], "human:persuasion.goal_third"])
    assert ids[2] not in wide.index  # unresolved: nothing stored
    na = human[(human["conversation_id"] == ids[1]) & (human["question"] == "goal_third")]
    assert '"applicable": false' in na["data"].iloc[0]
    # the same sheets again: the same version, nothing new
    assert (
        await cli("coding", "import", "--rubric", RUBRIC, "sheets/ana.xlsx", "sheets/ben.xlsx") == 0
    )
    assert "Stored 0 annotation(s)" in capsys.readouterr().out

    # an adjudicator settles the disagreements: a new version, kept apart from the first
    labels, unresolved = resolve(rubric, sheets, "adjudicator", "ana")
    assert unresolved == []
    by = {(lab.key[0], lab.question): lab for lab in labels}
    assert by[(ids[2], "goal_achieved")].value == "not_tried"
    assert by[(ids[3], "goal_third")].value == 3 and not by[(ids[3], "goal_third")].agreed
    report = await store_labels(
        store, rubric, sheets, labels, rule="adjudicator", adjudicator="ana"
    )
    assert report.stored == 8
    long = annotations_frame(
        await load_annotations(store, ConversationFilter(batch_id=study.batch_id))
    )
    assert long[long["annotator"] == "human:persuasion"]["annotator_version"].nunique() == 2
    majority, left = resolve(rubric, three, "majority")
    by = {(lab.key[0], lab.question): lab for lab in majority}
    assert by[(ids[2], "goal_achieved")].value == "no"  # ben and cy against ana
    assert not by[(ids[2], "goal_third")].applicable
    assert left == [((ids[3], None), "goal_third")]  # 3, 1, 2: no majority


async def test_a_bad_answer_is_one_readable_error_and_nothing_is_stored(
    store: Any, cli_env: Path, capsys: Any
) -> None:
    study = await run_dialogue_study(store)
    ids = [c.id for c in study.conversations]
    assert (
        await cli(
            "coding",
            "sheet",
            "--rubric",
            RUBRIC,
            "--batch",
            study.batch_id,
            "--coder",
            "ana",
            "--coder",
            "ben",
            "-o",
            "sheets",
        )
        == 0
    )
    fill_xlsx(cli_env / "sheets" / "ana.xlsx", {ids[0]: ("maybe", None), ids[1]: ("no", 2)})
    fill_xlsx(cli_env / "sheets" / "ben.xlsx", {ids[0]: ("yes", 4), ids[1]: ("no", None)})
    capsys.readouterr()
    code = await cli("coding", "import", "--rubric", RUBRIC, "sheets/ana.xlsx", "sheets/ben.xlsx")
    assert code == 2
    err = capsys.readouterr().err
    assert "error: Coding sheet:" in err
    assert "sheets/ana.xlsx (coder ana) has 2 problem(s)" in err
    assert "row 2, column goal_achieved: must be one of yes, no, not_tried, not 'maybe'" in err
    assert (
        "row 3, column goal_third: answered 2, but goal_third applies only when "
        "goal_achieved is yes" in err
    )
    assert "sheets/ben.xlsx (coder ben) has 1 problem(s)" in err
    assert "row 2, column goal_third: must be a whole number from 1 to 3, not 4" in err
    assert "Traceback" not in err
    assert await load_annotations(store, ConversationFilter(batch_id=study.batch_id)) == []

    rubric = load_rubric(RUBRIC)
    with pytest.raises(CodingError, match=r"nope\.xlsx: no such file"):
        read_sheets(["nope.xlsx"], rubric)
    with pytest.raises(CodingError, match="two sheets have the coder 'ana'"):
        read_sheets(["sheets/ana.xlsx", "ana=sheets/ben.xlsx"], rubric)
    other = load_rubric(RUBRIC)
    object.__setattr__(other, "version", "2")
    fill_xlsx(cli_env / "sheets" / "ana.xlsx", {ids[0]: ("no", None), ids[1]: ("no", None)})
    with pytest.raises(CodingError, match="the sheet was made from 'persuasion 1"):
        read_sheets(["sheets/ana.xlsx"], other)
