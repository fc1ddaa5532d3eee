"""One composition root (``simulator.services.root.AppRoot``) for the TUI, every command and the
tests: with a login remembered for a server that cannot be reached, every command that uses the
database fails the same clear way, and none falls back to the embedded database.

The commands are read from the parser itself, so a new command is covered without a new line
here (a command that needs particular arguments to get as far as the database gets them in
``ARGUMENTS``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from pydantic import SecretStr

from simulator.cli import build_parser, main
from simulator.credentials import Credentials, CredentialStore
from simulator.domain.errors import DatabaseUnavailableError, PermissionDeniedError
from simulator.services.root import AppRoot, Source
from simulator.settings import load_settings
from tests.plugins.services import closed_port
from tests.test_credentials import MemoryKeyring

EXAMPLES = Path(__file__).resolve().parents[1] / "simulator" / "examples"
RUBRIC = str(EXAMPLES / "rubrics" / "persuasion.yaml")


def coders_sheets(folder: Path) -> list[str]:
    """Two coders' sheets of the persuasion rubric with no item coded (valid, and empty)."""
    from simulator.analysis.coding import COMMENT, SHEET_COLUMNS
    from simulator.annotations.rubric import load_rubric

    columns = [*SHEET_COLUMNS, *(q.id for q in load_rubric(Path(RUBRIC)).questions), COMMENT]
    paths = []
    for coder in ("ann", "ben"):
        path = folder / f"{coder}.csv"
        path.write_text(",".join(columns) + "\n", encoding="utf-8")
        paths.append(str(path))
    return paths


def empty_cache_file(folder: Path) -> str:
    """A response cache file (``simulator cache export``'s format) with no answer in it."""
    import json

    from simulator.commands.cache import FORMAT, VERSION

    path = folder / "answers.jsonl"
    path.write_text(json.dumps({"format": FORMAT, "version": VERSION}) + "\n", encoding="utf-8")
    return str(path)


#: Arguments that get a command as far as opening the database (the rest get placeholders);
#: a function makes the files it needs in a folder of its own.
ARGUMENTS: dict[str, list[str] | Callable[[Path], list[str]]] = {
    "run": [str(EXAMPLES / "prison_study_batch.yaml"), "--yes"],
    "annotate": ["judge", "--rubric", RUBRIC, "--model", "dryrun:judge"],
    "commons judge": ["0a1b2c3d", "--model", "dryrun:judge"],
    "coding sheet": ["--rubric", RUBRIC],
    "coding import": lambda folder: ["--rubric", RUBRIC, *coders_sheets(folder)],
    "cache import": lambda folder: [empty_cache_file(folder)],
}


def leaf_commands() -> dict[str, argparse.ArgumentParser]:
    """Every command of the parser, by its words (``experiments list``)."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, words: list[str]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found[" ".join(words)] = parser
        for action in subs:
            for name, sub in action.choices.items():
                walk(sub, [*words, name])

    walk(build_parser(), [])
    return found


COMMANDS = leaf_commands()
DATABASE_COMMANDS = sorted(
    name
    for name, parser in COMMANDS.items()
    if parser.get_default("uses_database") and name != "tui"  # the TUI: its own test below
)


def argv_for(name: str, folder: Path | None = None) -> list[str]:
    """The command with placeholder values for its positional arguments and required options
    (``ARGUMENTS`` first; their files are made in ``folder``)."""
    if name in ARGUMENTS:
        given = ARGUMENTS[name]
        if callable(given):
            assert folder is not None
            given = given(folder)
        return [*name.split(), *given]
    values = []
    for action in COMMANDS[name]._actions:
        if action.dest == "help" or (action.option_strings and not action.required):
            continue
        if action.option_strings:
            values.append(action.option_strings[0])
        if action.choices:
            values.append(str(next(iter(action.choices))))
        elif action.type is int:
            values.append("1")
        else:
            values.append("0a1b2c3d")
    return [*name.split(), *values]


def test_every_command_says_whether_it_uses_the_database() -> None:
    undeclared = [n for n, p in COMMANDS.items() if p.get_default("uses_database") is None]
    assert not undeclared, f"set_defaults(uses_database=...) is missing for {undeclared}"
    # the commands that must not need a database: they are how a user gets out of a bad one
    for name in ("login", "logout", "db status", "db stop"):
        assert COMMANDS[name].get_default("uses_database") is False
    assert len(DATABASE_COMMANDS) >= 25  # run, batches, resume, cancel, export, plot, ...


@pytest.fixture
def unreachable_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Path]]:
    """A login remembered by ``simulator login`` (password in the keyring) for a server nobody
    answers at; nothing else configured. Yields the server's address and the data directory."""
    for name in ("MONGODB_URI", "DB_CLUSTER_URL", "DB_USER", "DB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    monkeypatch.setenv("MONGODB_TIMEOUT_MS", "300")
    monkeypatch.setenv("SIMULATOR_CONFIG_DIR", str(tmp_path / "config"))
    data = tmp_path / "data"
    monkeypatch.setenv("SIMULATOR_DATA_DIR", str(data))
    monkeypatch.setenv("SIMULATOR_LOG_DIR", str(tmp_path / "logs"))
    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    server = f"127.0.0.1:{closed_port()}"
    try:
        CredentialStore().save(Credentials(server, "alice", SecretStr("remembered-Pw-1")))
        yield server, data
    finally:
        keyring.set_keyring(previous)


def expected_error(server: str) -> str:
    """What opening the remembered login's database says: the one line every command prints."""
    import asyncio

    root = AppRoot(load_settings())
    target = root.target()
    assert target.source is Source.remembered and target.host == server
    with pytest.raises(DatabaseUnavailableError) as caught:
        asyncio.run(root.open(target))
    return f"error: {caught.value.title}: {caught.value}"


def no_embedded_database(data: Path) -> bool:
    """Nothing of the embedded server was started or written under ``data``."""
    return not (data / "mongo").exists() or not any((data / "mongo").iterdir())


@pytest.mark.parametrize("name", DATABASE_COMMANDS)
def test_an_unreachable_remembered_login_stops_every_command_the_same_way(
    name: str,
    unreachable_login: tuple[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, data = unreachable_login
    expected = expected_error(server)
    assert server in expected and "simulator logout" in expected and "simulator login" in expected
    capsys.readouterr()
    argv = argv_for(name, tmp_path)

    code = main(argv)

    err = capsys.readouterr().err.strip()
    assert code == 2, f"{argv}: exit code {code}: {err}"
    assert err == expected, f"{argv} said: {err}"
    assert no_embedded_database(data), f"{name} opened the embedded database instead"


def test_without_the_password_the_remembered_login_asks_and_never_falls_back(
    unreachable_login: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """No keyring keeps the password and there is no terminal to type it at: the command says
    so, and still does not use the embedded database."""
    from keyring.backends import fail

    server, data = unreachable_login
    keyring.set_keyring(fail.Keyring())
    assert main(["batches"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Login needed: No password is known for alice at " + server)
    assert "\n" not in err
    assert no_embedded_database(data)


def test_db_status_names_the_remembered_login_as_what_the_app_uses(
    unreachable_login: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    server, _ = unreachable_login
    assert main(["db", "status"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("The app uses"))
    assert server in line and "remembered by 'simulator login'" in line
    assert "remembered-Pw-1" not in line


async def test_the_tui_shows_the_unreachable_remembered_server_and_what_to_do(
    unreachable_login: tuple[str, Path],
) -> None:
    from textual.widgets import Static

    from simulator.tui.app import SimulatorApp
    from simulator.tui.screens.startup import DatabaseErrorScreen
    from tests.plugins.tui import wait_until

    server, data = unreachable_login
    app = SimulatorApp(root=AppRoot.from_environment(), offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(
            pilot, lambda: isinstance(app.screen, DatabaseErrorScreen), what="error screen"
        )
        text = str(app.screen.query_one("#db-error-message", Static).render())
        assert server in text and "simulator logout" in text
        hint = str(app.screen.query_one("#db-error-hint", Static).render())
        assert "simulator logout" in hint and "MONGODB_URI" not in hint
        await wait_until(pilot, lambda: app.screen.query_one("#retry").region.width > 0)
    assert no_embedded_database(data)


# --------------------------------------------------------------------------- users and services


async def test_a_test_acts_as_a_user_through_the_root(store: Any) -> None:
    """Tests act as several users by giving the root a user; the app never does (it asks the
    store who you are)."""
    settings = load_settings()
    alice = await AppRoot(settings, user="alice").services(store)
    bob = await AppRoot(settings, user="bob").services(store)
    try:
        (mine,) = await alice.experiments.ensure_examples()
        assert mine.owner == "alice" and bob.user == "bob"
        with pytest.raises(PermissionDeniedError):
            await bob.experiments.delete(mine.id)
        copy = await bob.experiments.duplicate(mine.id)
        assert copy.owner == "bob"
    finally:
        await alice.aclose()
        await bob.aclose()


def test_the_root_builds_backends_and_bus_once(monkeypatch: pytest.MonkeyPatch) -> None:
    root = AppRoot(load_settings())
    assert root.backends is root.backends and root.bus is root.bus
    assert root.backends.on_event == root.bus.publish  # model retries reach the session's bus


def test_commands_run_as_the_user_the_root_is_given(
    store: Any,
    mongo_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", store.db_name)
    monkeypatch.setenv("SIMULATOR_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.chdir(tmp_path)

    def as_bob(settings: Any) -> AppRoot:
        return AppRoot(settings, user="bob")

    assert main(["whoami"], make_root=as_bob) == 0
    assert capsys.readouterr().out.splitlines()[0] == "bob"
    assert main(["experiments", "import", str(EXAMPLES / "prison_study.yaml")]) == 0
    assert main(["experiments", "list", "--mine"], make_root=as_bob) == 0
    assert "No experiments." in capsys.readouterr().out  # the import was the real user's
