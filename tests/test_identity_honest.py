"""Identity that means what it says: on the embedded server you are the account the process runs
as (from its uid), whatever ``USER``/``LOGNAME`` claim; credentials given to a server without
authentication are refused plainly (the URI's user name, ``simulator login``)."""

from __future__ import annotations

import asyncio
import getpass
import os
import pwd
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.db.mongo import NoAuthenticationError, connect_store
from simulator.services.identity import current_user, os_user
from simulator.services.root import AppRoot
from simulator.settings import load_settings
from tests.plugins.roles import make_experiment

ACCOUNT = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def cli_env(store, mongo_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", store.db_name)
    monkeypatch.setenv("SIMULATOR_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SIMULATOR_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def embedded_only(mongo_uri: str) -> None:
    if os.environ.get("TEST_MONGODB_URI"):
        pytest.skip("TEST_MONGODB_URI points at a real MongoDB: these tests need the embedded one")


async def test_user_from_the_environment_does_not_change_who_you_are(
    store,
    services_as,
    cli_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("USER", "someone-else")
    monkeypatch.setenv("LOGNAME", "someone-else")
    monkeypatch.setenv("USERNAME", "someone-else")
    assert getpass.getuser() == "someone-else"  # what the old code believed
    assert os_user() == ACCOUNT
    assert await current_user(store, load_settings()) == ACCOUNT
    services = await AppRoot(load_settings()).services(store)  # as the app builds them
    try:
        assert services.user == ACCOUNT
    finally:
        await services.aclose()

    # someone-else's experiment stays theirs: the spoofed name gives no right to delete it
    theirs = await (await services_as("someone-else")).experiments.create(make_experiment())
    assert await asyncio.to_thread(main, ["whoami"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == ACCOUNT
    assert await asyncio.to_thread(main, ["experiments", "delete", theirs.id, "--yes"]) == 2
    err = capsys.readouterr().err
    assert f"You ({ACCOUNT}) cannot delete" in err and "someone-else's" in err
    assert await store.experiments.get(theirs.id) is not None


async def test_a_user_name_in_the_uri_of_the_embedded_server_says_it_has_no_authentication(
    mongo_uri: str,
) -> None:
    embedded_only(mongo_uri)
    with_user = mongo_uri.replace("mongodb://", "mongodb://mallory:secret-pw@", 1)
    with pytest.raises(NoAuthenticationError) as info:
        await connect_store(with_user, "t_no_auth", 3000)
    text = str(info.value)
    assert "has no authentication" in text and "secret-pw" not in text


async def test_login_against_a_server_without_authentication_says_so(
    mongo_uri: str,
    cli_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    embedded_only(mongo_uri)
    monkeypatch.delenv("MONGODB_URI")
    host = mongo_uri.split("://", 1)[1].split("/", 1)[0]
    asked: list[str] = []

    def typed(prompt: str = "", stream: object = None) -> str:
        asked.append(prompt)
        return "pw-1234"

    monkeypatch.setattr(getpass, "getpass", typed)
    code = await asyncio.to_thread(main, ["login", "--cluster", host, "--user", "mallory"])
    err = capsys.readouterr().err
    assert code == 2
    assert "No authentication on this server" in err and "KeyError" not in err
    assert "Traceback" not in err and "pw-1234" not in err
    assert len(asked) == 1  # not asked again: another password cannot help
    assert not (cli_env / "config" / "credentials.json").exists()
