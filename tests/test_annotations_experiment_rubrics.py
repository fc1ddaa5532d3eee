"""Rubrics carried by an experiment: validated like a rubric file (errors name the rubric and the
question), stored with the experiment and kept across versions, copies and its exported file,
and found by name by ``simulator annotate judge --rubric NAME`` (an existing path wins; an
unknown name lists the experiment's rubrics)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.annotations.service import AnnotatorSpec, build_annotator, resolve_rubric
from simulator.domain.errors import SpecError
from simulator.engine.spec import load_example
from simulator.services.experiments import ExperimentService
from simulator.services.files import experiment_from_data, experiment_to_data
from tests.plugins.annotations import RUBRIC, run_dialogue_study
from tests.plugins.batches import make_prison_experiment
from tests.test_annotations_cli import cli, cli_env  # noqa: F401 (a fixture)

REPO = Path(__file__).resolve().parents[1]


def persuasion() -> dict[str, Any]:
    """The shipped persuasion rubric, as a rubric file's ``rubric:`` mapping."""
    data = yaml.safe_load((REPO / RUBRIC).read_text(encoding="utf-8"))
    return dict(data["rubric"])


def other_rubric(name: str = "tone") -> dict[str, Any]:
    return {
        "name": name,
        "instructions": "Code the tone of the guard.",
        "questions": [{"id": "polite", "ask": "Was the guard polite?", "answer": "yes_no"}],
    }


# --------------------------------------------------------------------------- the model


def test_an_experiment_carries_rubrics_validated_like_a_file() -> None:
    exp = make_prison_experiment(with_goal_factor=True, rubrics=[persuasion(), other_rubric()])
    assert exp.rubric_names() == ["persuasion", "tone"]
    # a rubric file's whole content (with its format wrapper) is taken as its rubric
    whole = yaml.safe_load((REPO / RUBRIC).read_text(encoding="utf-8"))
    wrapped = make_prison_experiment(with_goal_factor=True, rubrics=[whole])
    assert wrapped.rubrics == [persuasion()]
    rubric = resolve_rubric("Persuasion", {exp.id: exp})  # names are case-insensitive
    file_rubric = resolve_rubric(REPO / RUBRIC, {})
    assert rubric.digest == file_rubric.digest and rubric.name == "persuasion"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda r: r["questions"][1].update(answer="thirds"),
            "rubrics.0 (rubric 'persuasion') has 1 problem(s):\n  questions.1.answer: must be "
            "one of",
        ),
        (
            lambda r: r["questions"][0].update(ask="Did it work ({mood})?"),
            "rubrics.0 (rubric 'persuasion'): {mood} is neither a study factor of experiment "
            "'Prison batch test' nor a built-in",
        ),
        (lambda r: r.pop("instructions"), "instructions: required"),
        (lambda r: r.update(colour="red"), "colour: unknown field"),
    ],
)
def test_a_bad_rubric_in_an_experiment_file_names_the_rubric_and_the_question(
    change: Any, message: str
) -> None:
    rubric = persuasion()
    change(rubric)
    exp = make_prison_experiment(with_goal_factor=True)
    data = experiment_to_data(exp)
    data["experiment"]["rubrics"] = [rubric]
    with pytest.raises(SpecError) as err:
        experiment_from_data(data, "study.yaml")
    assert str(err.value).startswith("study.yaml: ")
    assert message in str(err.value)


def test_two_rubrics_of_one_name_are_refused() -> None:
    data = experiment_to_data(make_prison_experiment(with_goal_factor=True))
    data["experiment"]["rubrics"] = [other_rubric("tone"), other_rubric("Tone")]
    with pytest.raises(SpecError, match=r"rubrics\.1 \(rubric 'Tone'\): another rubric"):
        experiment_from_data(data, "study.yaml")


def test_the_prison_study_example_ships_the_persuasion_rubric() -> None:
    exp = load_example("prison_study")
    assert exp.rubric_names() == ["persuasion"]
    shipped = resolve_rubric("persuasion", {exp.id: exp})
    assert shipped.digest == resolve_rubric(REPO / RUBRIC, {}).digest  # the same coding


# --------------------------------------------------------------------------- storage


async def test_rubrics_are_stored_and_kept_by_versions_copies_and_files(
    store: Any, tmp_path: Path
) -> None:
    service = ExperimentService(store, "alice")
    mine = await service.create(
        make_prison_experiment(with_goal_factor=True, rubrics=[persuasion(), other_rubric()])
    )
    raw = await store.db["experiments"].find_one({"_id": mine.id})
    assert [r["name"] for r in raw["rubrics"]] == ["persuasion", "tone"]
    assert (await service.get(mine.id)).rubrics == [persuasion(), other_rubric()]

    bob = ExperimentService(store, "bob")
    theirs = await bob.duplicate(mine.id)
    assert theirs.owner == "bob" and theirs.rubrics == mine.rubrics

    await run_dialogue_study_on(store, mine)  # conversations: the next edit is a new version
    edited = mine.model_copy(update={"note": "a new version", "rubrics": [persuasion()]})
    version = await service.save(edited)
    assert version.id != mine.id and version.parent_id == mine.id
    assert (await service.get(version.id)).rubrics == [persuasion()]
    assert (await service.get(mine.id)).rubrics == [persuasion(), other_rubric()]

    for suffix in ("yaml", "json"):
        path = await service.export(mine.id, tmp_path / f"study.{suffix}")
        assert "goal_achieved" in path.read_text(encoding="utf-8")
        imported = await bob.import_file(path)
        assert imported.id != mine.id and imported.rubrics == mine.rubrics


async def run_dialogue_study_on(store: Any, exp: Any) -> None:
    """One finished dryrun conversation of ``exp`` (so that saving it makes a new version)."""
    from simulator.domain import BatchSpec, ModelSet
    from simulator.engine.batch import BatchRunner
    from simulator.llm.registry import Backends
    from tests.plugins.annotations import DRYRUN

    backends = Backends(max_attempts=1, backoff_s=0.0)
    try:
        runner = BatchRunner(store, backends, None, poll_s=0.05)
        spec = BatchSpec(
            experiment_id=exp.id, model_sets=[ModelSet(default=DRYRUN)], total_messages=2
        )
        batch = await runner.start(exp, spec, owner="alice")
        await runner.run(batch.id)
    finally:
        await backends.aclose()


# --------------------------------------------------------------------------- simulator annotate


@pytest.mark.usefixtures("cli_env")
async def test_annotate_judge_with_the_experiments_rubric_by_name(
    store: Any, capsys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = await run_dialogue_study(store, rubrics=[persuasion(), other_rubric()])
    monkeypatch.chdir(tmp_path)
    name = study.experiment.name
    code = await cli(
        "annotate", "judge", "--rubric", "persuasion", "--experiment", name,
        "--model", "dryrun:judge",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Annotator: judge:persuasion, version 1-" in out
    assert "Done: 2 of 2 item(s) annotated; 4 annotation(s) stored; 4 answer(s)" in out
    docs = await store.db["annotations"].find({}).to_list(None)
    assert {d["annotator"] for d in docs} == {"judge:persuasion"} and len(docs) == 4
    # the shipped file holds the same rubric: the same annotator version, nothing asked again
    code = await cli(
        "annotate", "judge", "--rubric", str(REPO / RUBRIC), "--experiment", name,
        "--model", "dryrun:judge",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "stored: 2, to annotate: 0" in out

    # an existing path wins over a rubric of the same name
    (tmp_path / "tone").write_text(yaml.safe_dump({"rubric": other_rubric("tone_file")}))
    code = await cli(
        "annotate", "judge", "--rubric", "tone", "--experiment", name, "--model", "dryrun:judge"
    )
    out = capsys.readouterr().out
    assert code == 0 and "Annotator: judge:tone_file" in out
    assert await store.db["annotations"].count_documents({"annotator": "judge:tone"}) == 0


@pytest.mark.usefixtures("cli_env")
async def test_an_unknown_rubric_name_lists_the_experiments_rubrics(
    store: Any, capsys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = await run_dialogue_study(store, rubrics=[persuasion(), other_rubric()])
    monkeypatch.chdir(tmp_path)
    code = await cli(
        "annotate", "judge", "--rubric", "persuasio", "--experiment", study.experiment.name,
        "--model", "dryrun:judge",
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err
    assert (
        "rubric 'persuasio': no such rubric file, and experiment 'Prison batch test' has no "
        "rubric of that name (its rubrics: persuasion, tone)" in err
    )
    assert await store.db["annotations"].count_documents({}) == 0
    assert await store.db["annotators"].count_documents({}) == 0


async def test_a_rubric_name_needs_one_experiment_or_the_same_rubric_in_each(
    store: Any, tmp_path: Path
) -> None:
    one = make_prison_experiment(with_goal_factor=True, rubrics=[persuasion()])
    same = make_prison_experiment(with_goal_factor=True, name="Copy", rubrics=[persuasion()])
    changed = copy.deepcopy(persuasion())
    changed["instructions"] += " Be strict."
    other = make_prison_experiment(with_goal_factor=True, name="Strict", rubrics=[changed])
    found = resolve_rubric("persuasion", {one.id: one, same.id: same})
    assert found.digest == resolve_rubric(REPO / RUBRIC, {}).digest
    with pytest.raises(Exception, match=r"come from 2 experiments .* do not all carry the same"):
        resolve_rubric("persuasion", {one.id: one, other.id: other})
    none = make_prison_experiment(with_goal_factor=True)
    with pytest.raises(Exception, match="it carries no rubric"):
        build_annotator(
            AnnotatorSpec("judge", rubric="persuasion", model="dryrun:judge"),
            backends=None,
            experiments={none.id: none},
        )
