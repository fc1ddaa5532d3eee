"""``simulator experiments ...`` in-process against the embedded server (the store fixture's
database): listing, files, duplicate, and owner-only delete/edit with clean messages."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from simulator.cli import main
from simulator.domain import Experiment
from simulator.services.identity import os_user
from tests.plugins.roles import make_experiment
from tests.plugins.services import add_conversation

ME = os_user()


@pytest.fixture
def cli_env(store, mongo_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI talks to the store fixture's database; config and logs stay in tmp_path."""
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", store.db_name)
    monkeypatch.setenv("SIMULATOR_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SIMULATOR_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def cli(*argv: str) -> int:
    # In a thread: the command runs its own event loop (asyncio.run), as in a terminal.
    return await asyncio.to_thread(main, list(argv))


async def others_experiment(store, owner: str = "someone-else") -> Experiment:
    return await store.experiments.create(make_experiment(owner=owner))


async def test_list_shows_everyones_experiments_with_runs(store, cli_env, capsys) -> None:
    theirs = await others_experiment(store)
    await add_conversation(store, theirs, "someone-else")
    assert await cli("experiments", "list") == 0
    out = capsys.readouterr().out
    assert "ID" in out and "OWNER" in out
    line = next(ln for ln in out.splitlines() if ln.startswith(theirs.id[:8]))
    assert "Prison study (test)" in line and "someone-else" in line and " 1 " in line
    assert await cli("experiments", "list", "--mine") == 0
    assert "No experiments." in capsys.readouterr().out


async def test_import_export_show_and_duplicate(store, cli_env: Path, capsys) -> None:
    source = cli_env / "prison.yaml"
    from simulator.services.files import write_experiment

    write_experiment(make_experiment(name="Imported study"), source)
    assert await cli("experiments", "import", str(source)) == 0
    out = capsys.readouterr().out
    assert "Imported 'Imported study'" in out and "(yours)" in out
    (mine,) = await store.experiments.list()
    assert mine.owner == ME

    assert await cli("experiments", "show", "Imported study") == 0
    shown = capsys.readouterr().out
    assert f"owner {ME}" in shown and "name: Imported study" in shown

    assert await cli("experiments", "export", mine.id[:8]) == 0
    exported = cli_env / "imported_study.yaml"
    assert exported.exists()
    assert yaml.safe_load(exported.read_text())["experiment"]["name"] == "Imported study"
    assert await cli("experiments", "export", mine.id, "-o", str(cli_env / "x.json")) == 0
    assert (cli_env / "x.json").read_text().startswith("{")

    theirs = await others_experiment(store)
    capsys.readouterr()
    assert await cli("experiments", "duplicate", theirs.id, "--name", "My copy") == 0
    assert f"owned by {ME}" in capsys.readouterr().out
    copies = [e for e in await store.experiments.list() if e.name == "My copy"]
    assert len(copies) == 1 and copies[0].owner == ME and copies[0].parent_id == theirs.id


async def test_non_owner_is_refused_delete_and_edit_with_a_clean_message(
    store, cli_env, capsys
) -> None:
    theirs = await others_experiment(store)
    assert await cli("experiments", "delete", theirs.id, "--yes") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Not allowed: You (")
    assert "cannot delete experiment 'Prison study (test)'" in err
    assert "Traceback" not in err
    assert await store.experiments.get(theirs.id) is not None

    assert await cli("experiments", "note", theirs.id, "mine now") == 2
    assert "cannot edit the note of" in capsys.readouterr().err
    assert await cli("experiments", "favourite", theirs.id) == 2
    assert (await store.experiments.get(theirs.id)).note == ""


async def test_owner_deletes_and_can_set_note_and_favourite(store, cli_env, capsys) -> None:
    mine = await others_experiment(store, owner=ME)
    await add_conversation(store, mine, ME)
    assert await cli("experiments", "note", mine.id, "pilot") == 0
    assert await cli("experiments", "favourite", mine.id) == 0
    stored = await store.experiments.get(mine.id)
    assert (stored.note, stored.favourite) == ("pilot", True)
    assert await cli("experiments", "delete", mine.id, "--yes") == 0
    assert "Deleted 'Prison study (test)'" in capsys.readouterr().out
    assert await store.experiments.get(mine.id) is None
    assert await store.conversations.list() == []


async def test_delete_without_yes_needs_a_terminal(store, cli_env, capsys) -> None:
    mine = await others_experiment(store, owner=ME)
    assert await cli("experiments", "delete", mine.id) == 2
    assert "add --yes" in capsys.readouterr().err
    assert await store.experiments.get(mine.id) is not None


async def test_unknown_experiment_and_bad_file_are_clean_errors(
    store, cli_env: Path, capsys
) -> None:
    assert await cli("experiments", "show", "no-such-thing") == 2
    assert "error: Not found: No experiment 'no-such-thing'" in capsys.readouterr().err
    bad = cli_env / "bad.yaml"
    bad.write_text("name: X\nroles:\n  - name: Guard\n    gender: robot\n", encoding="utf-8")
    assert await cli("experiments", "import", str(bad)) == 2
    err = capsys.readouterr().err
    assert "error: Invalid specification:" in err and "experiment.roles.0.gender" in err


async def test_update_from_a_file_is_owner_only_and_versions_once_run(
    store, cli_env: Path, capsys
) -> None:
    from simulator.services.files import write_experiment

    theirs = await others_experiment(store)
    edited = cli_env / "edited.yaml"
    write_experiment(theirs.model_copy(update={"starting_message": "Edited."}), edited)
    assert await cli("experiments", "update", theirs.id, str(edited)) == 2
    assert "cannot edit experiment 'Prison study (test)'" in capsys.readouterr().err
    assert (await store.experiments.get(theirs.id)).starting_message != "Edited."

    mine = await others_experiment(store, owner=ME)
    assert await cli("experiments", "update", mine.id, str(edited)) == 0
    assert "now version 2" in capsys.readouterr().out
    assert (await store.experiments.get(mine.id)).starting_message == "Edited."

    await add_conversation(store, mine, ME)
    write_experiment(mine.model_copy(update={"starting_message": "Again."}), edited)
    assert await cli("experiments", "update", mine.id, str(edited)) == 0
    assert "the edit is a new version" in capsys.readouterr().out
    versions = [e for e in await store.experiments.list() if e.parent_id == mine.id]
    assert len(versions) == 1 and versions[0].starting_message == "Again."
    assert (await store.experiments.get(mine.id)).starting_message == "Edited."
