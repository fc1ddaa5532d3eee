"""Start-up: unreachable database (error screen, retry after the fix), login (masked password,
rejected credentials, unreachable host, remember me), ownership refusal in the TUI."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure
from textual.widgets import Input, Static

import simulator.db.mongo as mongo
from simulator.credentials import CredentialStore
from simulator.settings import Settings
from simulator.tui.app import SimulatorApp
from simulator.tui.screens.dialogs import ConfirmDialog
from simulator.tui.screens.startup import DatabaseErrorScreen, LoginScreen
from tests.plugins.tui import wait_library, wait_until


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_for(**values: Any) -> Settings:
    return Settings(_env_file=None, ollama_host="http://127.0.0.1:9", **values)  # type: ignore[call-arg]


def drop(uri: str, db: str) -> None:
    client: MongoClient[Any] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(db)
    finally:
        client.close()


async def test_unreachable_database_shows_error_then_retry_connects(
    tui_settings: Settings, mongo_uri: str
) -> None:
    bad = settings_for(mongodb_uri=f"mongodb://127.0.0.1:{closed_port()}/", mongodb_timeout_ms=500)
    db = f"t_{uuid.uuid4().hex[:12]}"
    fixed = settings_for(mongodb_uri=mongo_uri, mongodb_db=db)
    reloads: list[int] = []

    def reload() -> Settings:
        # Settings are re-read on every retry: still broken the first time, fixed the second.
        reloads.append(1)
        return bad if len(reloads) == 1 else fixed

    app = SimulatorApp(bad, user="alice", reload_settings=reload, offer_example=False)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            # The configured timeout (0.5 s) is the one used: the message names it.
            await wait_until(
                pilot,
                lambda: isinstance(app.screen, DatabaseErrorScreen),
                within=15,  # hang guard: 30x the configured timeout
                what="error screen",
            )
            message = str(app.screen.query_one("#db-error-message", Static).render())
            assert "Cannot reach MongoDB at 127.0.0.1" in message
            assert "within 0.5s" in message
            hint = str(app.screen.query_one("#db-error-hint", Static).render())
            assert "MONGODB_URI" in hint
            # The Retry button retries (still unreachable: the error screen again) ...
            first = app.screen
            await wait_until(pilot, lambda: first.query_one("#retry").region.width > 0)
            await pilot.click("#retry")
            await wait_until(
                pilot,
                lambda: isinstance(app.screen, DatabaseErrorScreen) and app.screen is not first,
                what="a second error screen",
            )
            assert reloads == [1]
            # ... and so does r, once the settings are fixed.
            await pilot.press("r")
            await wait_library(pilot)
            assert reloads == [1, 1]
            assert app.services is not None and app.services.user == "alice"
            assert "MongoDB at" in app.sub_title
    finally:
        drop(mongo_uri, db)


def test_invalid_uri_is_explained_not_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed URI is refused when the settings are read: the TUI does not start, and the
    message names the variable (a clean exit, code 2)."""
    from simulator.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MONGODB_URI", "localhost:27017")
    assert main(["tui"]) == 2
    err = capsys.readouterr().err
    assert "MONGODB_URI" in err and "mongodb://" in err and "Traceback" not in err


def embedded_host(mongo_uri: str) -> str:
    return mongo_uri.split("://", 1)[1].split("/", 1)[0]


async def test_login_masked_rejected_retry_and_remember(
    tui_settings: Settings, mongo_uri: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    host = embedded_host(mongo_uri)
    db = f"t_{uuid.uuid4().hex[:12]}"
    settings = settings_for(db_cluster_url=host, db_user="alice", mongodb_db=db)
    assert settings.needs_password(None)
    creds = CredentialStore(tmp_path / "creds")
    # The embedded server has no authentication: the driver's refusal is raised at its
    # boundary (code 18 = AuthenticationFailed), as a real MongoDB would answer.
    refuse = {"on": True}
    real_command = AsyncDatabase.command

    async def command(self: Any, *args: Any, **kwargs: Any) -> Any:
        if refuse["on"]:
            raise OperationFailure("Authentication failed.", code=18)
        return await real_command(self, *args, **kwargs)

    monkeypatch.setattr(AsyncDatabase, "command", command)
    real_open = mongo.open_store

    async def open_without_auth(s: Settings, remembered: Any = None, **kw: Any) -> Any:
        # Past the refusal, connect to the embedded server (which cannot do SCRAM) directly.
        if refuse["on"]:
            return await real_open(s, remembered, **kw)
        assert s.db_password is not None and s.db_password.get_secret_value() == "right pw"
        return await mongo.connect_store(mongo_uri, db, 3000), None

    monkeypatch.setattr(mongo, "open_store", open_without_auth)
    app = SimulatorApp(settings, user="alice", credential_store=creds, offer_example=False)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), what="login")
            password = app.screen.query_one("#login-password", Input)
            assert password.password  # masked
            assert app.screen.query_one("#login-user", Input).value == "alice"
            password.focus()
            await pilot.press(*"wrong")
            await pilot.press("enter")
            await wait_until(
                pilot,
                lambda: (
                    isinstance(app.screen, LoginScreen)
                    and "rejected" in str(app.screen.query_one("#login-error", Static).render())
                ),
                what="rejected message",
            )
            error = str(app.screen.query_one("#login-error", Static).render())
            assert "User name or password rejected" in error
            assert "wrong" not in error
            # Try again without restarting.
            refuse["on"] = False
            app.screen.query_one("#login-password", Input).value = "right pw"
            app.screen.query_one("#login-password", Input).focus()
            await pilot.press("enter")
            await wait_until(
                pilot, lambda: isinstance(app.screen, ConfirmDialog), what="remember me"
            )
            if creds.uses_keyring:
                assert "never in .env" in app.screen.message
            else:  # no keyring: the password is not kept at all
                assert "the password is not kept" in app.screen.message
            await pilot.press("y")
            await wait_library(pilot)
            assert creds.path.exists()
            assert (creds.path.stat().st_mode & 0o777) == 0o600
            remembered = creds.load()
            assert remembered is not None and remembered.user == "alice"
            assert (remembered.password is not None) == creds.uses_keyring
            assert "right pw" not in creds.path.read_text()
    finally:
        drop(mongo_uri, db)


async def test_login_unreachable_host_lets_user_retry(
    tui_settings: Settings, tmp_path: Any
) -> None:
    settings = settings_for(
        db_cluster_url=f"127.0.0.1:{closed_port()}", db_user="bob", mongodb_timeout_ms=300
    )
    app = SimulatorApp(
        settings, credential_store=CredentialStore(tmp_path / "c"), offer_example=False
    )
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen))
        app.screen.query_one("#login-password", Input).value = "secret-pw"
        app.screen.query_one("#login-password", Input).focus()
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, LoginScreen)
                and "Cannot reach" in str(app.screen.query_one("#login-error", Static).render())
            ),
            what="unreachable message on the login screen",
        )
        error = str(app.screen.query_one("#login-error", Static).render())
        assert "secret-pw" not in error
        # The form is still there, filled in, for another try.
        assert app.screen.query_one("#login-user", Input).value == "bob"
