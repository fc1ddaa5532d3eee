"""Remembered credentials: the password in the keyring when there is one, else not kept at all
(never in plain text)."""

import os
import stat

import keyring
import pytest
from keyring.backend import KeyringBackend
from pydantic import SecretStr

from simulator.credentials import KEYRING_SERVICE, NOT_KEPT, Credentials, CredentialStore
from simulator.settings import Settings

PASSWORD = "s3cret-P@ss/word"


class MemoryKeyring(KeyringBackend):
    """Stands in for the operating system's keyring (none exists on a CI machine)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.items.get((service, username))

    def set_password(self, service, username, password):
        self.items[(service, username)] = password

    def delete_password(self, service, username):
        self.items.pop((service, username), None)


@pytest.fixture
def memory_keyring():
    previous = keyring.get_keyring()
    kr = MemoryKeyring()
    keyring.set_keyring(kr)
    yield kr
    keyring.set_keyring(previous)


@pytest.fixture
def no_keyring():
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


def creds() -> Credentials:
    return Credentials("cluster0.example.mongodb.net", "alice", SecretStr(PASSWORD))


def test_with_keyring_the_file_holds_no_password(tmp_path, memory_keyring) -> None:
    store = CredentialStore(tmp_path)
    assert store.save(creds()) == "keyring"
    content = store.path.read_text()
    assert PASSWORD not in content
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert memory_keyring.items[(KEYRING_SERVICE, "alice@cluster0.example.mongodb.net")] == PASSWORD
    loaded = store.load()
    assert loaded is not None and loaded.password.get_secret_value() == PASSWORD
    assert store.forget() is True
    assert not store.path.exists()
    assert memory_keyring.items == {}
    assert store.load() is None


def test_without_keyring_the_password_is_not_kept(tmp_path, no_keyring) -> None:
    store = CredentialStore(tmp_path)
    where = store.save(creds())
    assert where == NOT_KEPT
    assert PASSWORD not in store.path.read_text()
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    loaded = store.load()
    assert loaded == Credentials("cluster0.example.mongodb.net", "alice", None)
    # the remembered login without its password: the app asks for it
    assert Settings(_env_file=None).needs_password(loaded) is True
    assert Settings(_env_file=None, db_password=SecretStr("x")).needs_password(loaded) is False
    assert store.forget() is True
    assert store.forget() is False


def test_repr_never_shows_the_password() -> None:
    assert PASSWORD not in repr(creds())
    assert PASSWORD not in str(creds())


def test_remembered_credentials_log_in_automatically(tmp_path) -> None:
    s = Settings(_env_file=None)
    assert s.mongodb_connection_uri() is None  # nothing configured: embedded server
    uri = s.mongodb_connection_uri(creds())
    assert uri is not None
    assert uri.get_secret_value() == (
        "mongodb+srv://alice:s3cret-P%40ss%2Fword@cluster0.example.mongodb.net/"
    )


def test_configured_user_without_password_asks_unless_remembered() -> None:
    s = Settings(_env_file=None, db_cluster_url="cluster0.example.mongodb.net", db_user="alice")
    assert s.needs_password() is True
    assert s.needs_password(creds()) is False
    other = Credentials("cluster0.example.mongodb.net", "bob", SecretStr("x"))
    assert s.needs_password(other) is True
