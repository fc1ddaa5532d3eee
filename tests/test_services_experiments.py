"""ExperimentService on the real embedded server: ownership, versions, validation, files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from simulator.db.store import ExperimentFilter
from simulator.domain.errors import (
    NotFoundError,
    PermissionDeniedError,
    SpecError,
    StaleVersionError,
)
from simulator.services.experiments import ExperimentService, PlaceholderError
from tests.plugins.roles import make_experiment
from tests.plugins.services import add_conversation


async def test_create_sets_the_owner_and_lists_with_conversation_counts(
    store, alice: ExperimentService, bob: ExperimentService
) -> None:
    exp = await alice.create(make_experiment(owner="someone else"))
    assert exp.owner == "alice"
    await add_conversation(store, exp, "bob")
    await add_conversation(store, exp, "alice")
    rows = await bob.list()
    assert [(r.experiment.id, r.experiment.owner, r.conversations) for r in rows] == [
        (exp.id, "alice", 2)
    ]
    assert await alice.list(ExperimentFilter(owner="bob")) == []


async def test_create_refuses_invalid_placeholders_listing_each(alice: ExperimentService) -> None:
    bad = make_experiment(starting_message="Hello <GAURD_NOUN>, <NAME>")
    with pytest.raises(PlaceholderError) as err:
        await alice.create(bad)
    assert isinstance(err.value, SpecError)
    assert len(err.value.issues) == 2
    text = str(err.value)
    assert "2 placeholder problems" in text
    assert "starting message, line 1, column 7: <GAURD_NOUN>" in text
    assert "Did you mean <GUARD_NOUN>?" in text
    assert await alice.list() == []


async def test_owner_edits_in_place_while_there_are_no_conversations(
    alice: ExperimentService, alices_experiment
) -> None:
    edited = alices_experiment.model_copy(update={"note": "v2"})
    saved = await alice.save(edited)
    assert saved.id == alices_experiment.id
    assert saved.version == alices_experiment.version + 1
    assert (await alice.get(saved.id)).note == "v2"


async def test_edit_of_an_experiment_with_conversations_becomes_a_new_version(
    store, alice: ExperimentService, alices_experiment
) -> None:
    await add_conversation(store, alices_experiment, "alice")
    edited = alices_experiment.model_copy(update={"starting_message": "Changed."})
    saved = await alice.save(edited)
    assert saved.id != alices_experiment.id
    assert saved.parent_id == alices_experiment.id
    assert saved.version == alices_experiment.version + 1
    assert saved.owner == "alice"
    original = await alice.get(alices_experiment.id)
    assert original.starting_message == alices_experiment.starting_message
    rows = {r.experiment.id: r.conversations for r in await alice.list()}
    assert rows == {alices_experiment.id: 1, saved.id: 0}


async def test_save_of_a_stale_copy_is_refused(alice: ExperimentService, alices_experiment) -> None:
    await alice.save(alices_experiment.model_copy(update={"note": "first"}))
    with pytest.raises(StaleVersionError, match="changed elsewhere"):
        await alice.save(alices_experiment.model_copy(update={"note": "second"}))


async def test_save_validates_placeholders(alice: ExperimentService, alices_experiment) -> None:
    bad = alices_experiment.model_copy(update={"starting_message": "<WARDEN_NOUN>"})
    with pytest.raises(PlaceholderError, match="unknown role 'WARDEN'"):
        await alice.save(bad)


async def test_non_owner_cannot_edit_delete_note_or_favourite(
    store, alice: ExperimentService, bob: ExperimentService, alices_experiment
) -> None:
    eid = alices_experiment.id
    assert alice.can_edit(alices_experiment) and not bob.can_edit(alices_experiment)
    with pytest.raises(PermissionDeniedError) as err:
        await bob.save(alices_experiment.model_copy(update={"note": "mine now"}))
    assert "You (bob) cannot edit experiment 'Prison study (test)'" in str(err.value)
    assert "Duplicate it" in str(err.value)
    with pytest.raises(PermissionDeniedError, match="only its owner can delete"):
        await bob.delete(eid)
    with pytest.raises(PermissionDeniedError):
        await bob.set_note(eid, "hijack")
    with pytest.raises(PermissionDeniedError):
        await bob.toggle_favourite(eid)
    stored = await alice.get(eid)
    assert (stored.note, stored.favourite, stored.version) == (
        alices_experiment.note,
        False,
        alices_experiment.version,
    )


async def test_anyone_duplicates_into_their_own_library(
    bob: ExperimentService, alices_experiment
) -> None:
    copy = await bob.duplicate(alices_experiment.id)
    assert copy.owner == "bob"
    assert copy.parent_id == alices_experiment.id
    assert copy.name == "Prison study (test) (copy)"
    renamed = await bob.duplicate(alices_experiment.id, name="Bob's prison")
    assert renamed.name == "Bob's prison"
    # the copy is bob's: he edits and deletes it
    saved = await bob.save(copy.model_copy(update={"note": "bob's"}))
    assert saved.note == "bob's"
    await bob.delete(copy.id)
    with pytest.raises(NotFoundError):
        await bob.get(copy.id)


async def test_owner_deletes_with_conversations_and_messages(
    store, alice: ExperimentService, alices_experiment
) -> None:
    conv = await add_conversation(store, alices_experiment, "bob", messages=3)
    await alice.delete(alices_experiment.id)
    assert await store.experiments.get(alices_experiment.id) is None
    assert await store.conversations.get(conv.id) is None
    assert await store.messages.list(conv.id) == []


async def test_note_and_favourite_by_the_owner(alice: ExperimentService, alices_experiment) -> None:
    await alice.set_note(alices_experiment.id, "pilot run")
    fav = await alice.toggle_favourite(alices_experiment.id)
    assert fav.favourite is True
    stored = await alice.get(alices_experiment.id)
    assert (stored.note, stored.favourite) == ("pilot run", True)
    assert (await alice.toggle_favourite(alices_experiment.id)).favourite is False


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
async def test_export_then_import_round_trips_into_the_importers_library(
    tmp_path: Path, alice: ExperimentService, bob: ExperimentService, alices_experiment, suffix
) -> None:
    path = await bob.export(alices_experiment.id, tmp_path / f"exp{suffix}")
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    assert data["format"] == "llm-interaction-simulator/experiment"
    assert "owner" not in data["experiment"] and "id" not in data["experiment"]
    assert "alice" not in text
    imported = await bob.import_file(path)
    assert imported.owner == "bob"
    assert imported.id != alices_experiment.id
    keep = {"id", "owner", "created_at", "updated_at", "version", "parent_id", "favourite"}
    assert imported.model_dump(exclude=keep) == alices_experiment.model_dump(exclude=keep)


async def test_import_reports_the_field_path_of_a_problem(
    tmp_path: Path, alice: ExperimentService
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "experiment:\n  name: Bad\n  roles:\n    - name: Guard\n      gender: robot\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecError) as err:
        await alice.import_file(path)
    assert "experiment.roles.0.gender" in str(err.value)
    assert str(path) in str(err.value)


async def test_import_of_a_missing_file_is_a_clear_error(
    tmp_path: Path, alice: ExperimentService
) -> None:
    with pytest.raises(SpecError, match="no such file"):
        await alice.import_file(tmp_path / "nope.yaml")


async def test_import_of_a_file_with_bad_placeholders_is_refused(
    tmp_path: Path, alice: ExperimentService
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: Bad\nstarting_message: Hello <GUARDS_NOUN>\nroles:\n  - name: Guard\n",
        encoding="utf-8",
    )
    with pytest.raises(PlaceholderError, match="Did you mean <GUARD_NOUN>"):
        await alice.import_file(path)


async def test_ensure_examples_fills_an_empty_library_once(alice: ExperimentService) -> None:
    added = await alice.ensure_examples()
    assert [e.name for e in added] == ["Prison study"]
    assert added[0].owner == "alice"
    assert await alice.ensure_examples() == []
    assert len(await alice.list()) == 1


async def test_find_by_id_prefix_or_name(
    alice: ExperimentService, bob: ExperimentService, alices_experiment
) -> None:
    assert (await bob.find(alices_experiment.id[:8])).id == alices_experiment.id
    assert (await bob.find("prison study (TEST)")).id == alices_experiment.id
    await bob.duplicate(alices_experiment.id, name="Prison study (test)")
    assert (await bob.find("Prison study (test)")).owner == "bob"  # own one wins
    with pytest.raises(NotFoundError, match="No experiment 'nothing'"):
        await bob.find("nothing")


async def test_create_never_adopts_someone_elses_id(
    alice: ExperimentService, bob: ExperimentService, alices_experiment
) -> None:
    again = alices_experiment.model_copy(update={"name": "Bob's attempt"})
    with pytest.raises(PermissionDeniedError, match="already exists and belongs to alice"):
        await bob.create(again)
    assert (await alice.create(alices_experiment)).id == alices_experiment.id  # a retried create
