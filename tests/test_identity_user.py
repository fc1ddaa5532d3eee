"""Who the current user is: the OS account on the embedded server, the authenticated MongoDB
user on a real server (see also tests/test_identity_login.py for a fake server with auth)."""

from __future__ import annotations

import os
import pwd

import pytest

from simulator.services.identity import (
    current_user,
    os_user,
    user_from_status,
    user_from_uri,
)
from simulator.settings import load_settings


async def test_embedded_server_user_is_the_os_account(store) -> None:
    assert await current_user(store, load_settings()) == pwd.getpwuid(os.getuid()).pw_name


@pytest.mark.parametrize(
    ("uri", "user"),
    [
        ("mongodb://alice:s3cret@db.example.org:27017/", "alice"),
        ("mongodb+srv://first.last%40lab:p%40ss@cluster0.abcde.mongodb.net/?x=1", "first.last@lab"),
        ("mongodb://bob:***@host/", "bob"),
        ("mongodb://host:27017/", None),
        ("mongodb://carol@host/", "carol"),
        ("", None),
        (None, None),
    ],
)
def test_user_from_uri_never_returns_the_password(uri: str | None, user: str | None) -> None:
    assert user_from_uri(uri) == user


def test_user_from_connection_status() -> None:
    status = {"authInfo": {"authenticatedUsers": [{"user": "dana", "db": "admin"}]}, "ok": 1}
    assert user_from_status(status) == "dana"
    assert user_from_status({"authInfo": {"authenticatedUsers": []}}) is None
    assert user_from_status({"ok": 1, "result": []}) is None  # what the embedded server says
    assert user_from_status(None) is None


def test_os_user_never_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_entry(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_entry)  # a container without a passwd entry
    monkeypatch.setenv("USER", "someone-else")
    assert os_user() == f"uid{os.getuid()}"  # never the environment's claim


class _StatusStore:
    """A store whose server reports no authenticated user (an unauthenticated real server)."""

    uri_redacted = "mongodb://erin:***@db.example.org/"
    client = None


async def test_falls_back_to_the_uri_user() -> None:
    assert await current_user(_StatusStore(), load_settings()) == "erin"


def test_password_from_uri_is_found_for_scrubbing() -> None:
    from simulator.services.identity import password_from_uri

    assert password_from_uri("mongodb://a:p%40ss@h/") == "p@ss"
    assert password_from_uri("mongodb://a@h/") is None
    assert password_from_uri("mongodb://h/") is None


def test_the_root_registers_configured_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import SecretStr

    from simulator.logging_setup import scrub
    from simulator.services.root import AppRoot

    settings = load_settings(
        mongodb_uri=SecretStr("mongodb://u:uri-Secret-77@h/"),
        db_password=SecretStr("db-Secret-88"),
        openai_api_key=SecretStr("key-Secret-99"),
    )
    AppRoot(settings).target()  # deciding where to connect registers every secret it holds
    text = scrub("uri-Secret-77 db-Secret-88 key-Secret-99")
    assert "Secret" not in text
