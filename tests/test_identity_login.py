"""Login, remember me, whoami and logout against a MongoDB that checks passwords (a minimal
wire-protocol server doing real SCRAM-SHA-256; see tests/plugins/services.py), plus an
unreachable server. Secrets never reach the output or the logs."""

from __future__ import annotations

import asyncio
import getpass
import json
import stat
import sys
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend

from simulator.cli import main
from simulator.credentials import KEYRING_SERVICE, CredentialStore
from simulator.db.mongo import connect_store
from simulator.domain.errors import AuthenticationError, DatabaseUnavailableError
from simulator.services.identity import current_user, os_user
from simulator.services.login import verify_login
from simulator.settings import build_uri, load_settings
from tests.plugins.services import FAKE_PASSWORD, FakeMongo, closed_port


class MemoryKeyring(KeyringBackend):
    """Stands in for the operating system's keyring (a CI machine has none)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


@pytest.fixture
def memory_keyring():  # type: ignore[no-untyped-def]
    previous = keyring.get_keyring()
    kr = MemoryKeyring()
    keyring.set_keyring(kr)
    yield kr
    keyring.set_keyring(previous)


@pytest.fixture
def no_keyring():  # type: ignore[no-untyped-def]
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def login_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Nothing configured (no URI, no cluster); config and logs in tmp_path."""
    for var in ("MONGODB_URI", "DB_USER", "DB_PASSWORD", "DB_CLUSTER_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SIMULATOR_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SIMULATOR_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("MONGODB_TIMEOUT_MS", "1500")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def typed_passwords(monkeypatch: pytest.MonkeyPatch, *passwords: str) -> list[str]:
    """Answer getpass prompts with ``passwords`` in turn; returns the prompts shown."""
    queue = list(passwords)
    prompts: list[str] = []

    def fake_getpass(prompt: str = "Password: ", stream: object = None) -> str:
        prompts.append(prompt)
        return queue.pop(0)

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    return prompts


def everything_written(root: Path, captured: tuple[str, str]) -> str:
    logs = "".join(p.read_text(errors="replace") for p in (root / "logs").glob("*") if p.is_file())
    return captured[0] + captured[1] + logs


# --------------------------------------------------------------------------- service level


async def test_verify_login_returns_the_authenticated_user(fake_mongo) -> None:
    settings = load_settings(mongodb_timeout_ms=2000)
    assert await verify_login(settings, fake_mongo.address, "alice", FAKE_PASSWORD) == "alice"
    assert "saslContinue" in fake_mongo.commands


async def test_current_user_on_a_real_server_is_the_authenticated_user(fake_mongo) -> None:
    uri = build_uri(fake_mongo.address, "alice", FAKE_PASSWORD)
    store = await connect_store(uri, "simulator", 2000)
    try:
        assert await current_user(store, load_settings()) == "alice"
        assert "connectionStatus" in fake_mongo.commands
    finally:
        await store.close()


async def test_rejected_password_is_a_clear_authentication_error(fake_mongo) -> None:
    settings = load_settings(mongodb_timeout_ms=2000)
    with pytest.raises(AuthenticationError) as err:
        await verify_login(settings, fake_mongo.address, "alice", "wrong-password")
    text = str(err.value)
    assert "refused the user name or password" in text
    assert "wrong-password" not in text
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert fake_mongo.failed_logins == 1


async def test_unreachable_server_fails_within_the_timeout() -> None:
    settings = load_settings(mongodb_timeout_ms=500)
    login = verify_login(settings, f"127.0.0.1:{closed_port()}", "alice", FAKE_PASSWORD)
    # the configured timeout is the one used, and the message names it
    unreachable = r"Cannot reach MongoDB at 127\.0\.0\.1:\d+ within 0\.5s"
    with pytest.raises(DatabaseUnavailableError, match=unreachable):
        await asyncio.wait_for(login, timeout=15)  # hang guard: 30x the configured timeout


# --------------------------------------------------------------------------- the commands


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_login_retries_a_rejected_password_then_remembers_it_in_the_keyring(
    fake_mongo, login_env: Path, memory_keyring: MemoryKeyring, monkeypatch, capsys
) -> None:
    prompts = typed_passwords(monkeypatch, "not-it", FAKE_PASSWORD)
    code = await cli("login", "--cluster", fake_mongo.address, "--user", "alice")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert len(prompts) == 2 and prompts[0].startswith("Password for alice at 127.0.0.1:")
    assert "refused the user name or password" in captured.err
    assert "Try again (2 left)" in captured.err
    assert f"Logged in to {fake_mongo.address} as alice." in captured.out
    assert "keyring" in captured.out

    path = login_env / "config" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert FAKE_PASSWORD not in text
    assert json.loads(text)["password_in"] == "keyring"
    assert memory_keyring.items == {(KEYRING_SERVICE, f"alice@{fake_mongo.address}"): FAKE_PASSWORD}
    assert FAKE_PASSWORD not in everything_written(login_env, (captured.out, captured.err))

    # auto-login: whoami connects with the remembered login, no question asked
    assert await cli("whoami") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "alice"
    assert f"on {fake_mongo.address} (remembered login" in out

    assert await cli("logout") == 0
    assert "Forgot the remembered login" in capsys.readouterr().out
    assert not path.exists()
    assert memory_keyring.items == {}
    assert await cli("logout") == 0
    assert "No login was remembered." in capsys.readouterr().out


class _Terminal:
    """Stands in for stdin at a terminal (the password prompt is only shown at one)."""

    def isatty(self) -> bool:
        return True


async def test_without_a_keyring_the_password_is_not_kept(
    fake_mongo, login_env: Path, no_keyring, monkeypatch, capsys
) -> None:
    typed_passwords(monkeypatch, FAKE_PASSWORD)
    assert await cli("login", "--cluster", fake_mongo.address, "--user", "alice") == 0
    captured = capsys.readouterr()
    assert "the password is not kept (never in plain text)" in captured.out
    path = login_env / "config" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert FAKE_PASSWORD not in path.read_text()
    assert FAKE_PASSWORD not in everything_written(login_env, (captured.out, captured.err))
    remembered = CredentialStore(path.parent).load()
    assert remembered is not None and remembered.user == "alice"
    assert remembered.password is None
    assert not (login_env / ".env").exists()  # never the project's .env

    # Later: without a terminal the command says how to give the password ...
    assert await cli("whoami") == 2
    err = capsys.readouterr().err
    assert "No password is known for alice at" in err and "DB_PASSWORD" in err
    # ... at a terminal it asks (masked), each time ...
    prompts = typed_passwords(monkeypatch, FAKE_PASSWORD)
    monkeypatch.setattr(sys, "stdin", _Terminal())
    assert await cli("whoami") == 0
    assert capsys.readouterr().out.splitlines()[0] == "alice"
    assert prompts == [f"Password for alice at {fake_mongo.address}: "]
    # ... or it comes from the user's own environment (or .env).
    monkeypatch.setenv("DB_PASSWORD", FAKE_PASSWORD)
    assert await cli("whoami") == 0
    assert capsys.readouterr().out.splitlines()[0] == "alice"
    assert prompts == [f"Password for alice at {fake_mongo.address}: "]  # not asked again
    assert await cli("logout") == 0
    assert not path.exists()


def test_an_old_plain_text_password_is_removed_and_never_used(tmp_path: Path) -> None:
    """Older versions wrote the password into credentials.json without a keyring."""
    path = tmp_path / "credentials.json"
    path.write_text(
        json.dumps(
            {
                "cluster_url": "db.example.org",
                "user": "alice",
                "password_in": "file",
                "password": FAKE_PASSWORD,
            }
        )
    )
    store = CredentialStore(tmp_path)
    loaded = store.load()
    assert loaded is not None and loaded.user == "alice" and loaded.password is None
    assert FAKE_PASSWORD not in path.read_text()
    assert store.notice is not None and "plain text" in store.notice
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_login_gives_up_after_the_allowed_attempts_and_remembers_nothing(
    fake_mongo, login_env: Path, memory_keyring, monkeypatch, capsys
) -> None:
    typed_passwords(monkeypatch, "bad-1", "bad-2")
    code = await cli("login", "--cluster", fake_mongo.address, "--user", "alice", "--attempts", "2")
    captured = capsys.readouterr()
    assert code == 2
    assert "error: Login failed: MongoDB at 127.0.0.1" in captured.err
    assert "refused the user name or password" in captured.err
    assert fake_mongo.failed_logins == 2
    assert not (login_env / "config" / "credentials.json").exists()
    assert memory_keyring.items == {}
    for secret in ("bad-1", "bad-2"):
        assert secret not in everything_written(login_env, (captured.out, captured.err))


async def test_login_to_an_unreachable_server_is_readable_and_bounded(
    login_env: Path, monkeypatch, capsys
) -> None:
    typed_passwords(monkeypatch, FAKE_PASSWORD)
    login = cli("login", "--cluster", f"127.0.0.1:{closed_port()}", "--user", "alice")
    code = await asyncio.wait_for(login, timeout=30)  # hang guard: 20x the configured 1.5 s
    err = capsys.readouterr().err
    assert code == 2
    assert "error: Database unreachable: Cannot reach MongoDB at 127.0.0.1:" in err
    assert "within 1.5s" in err
    assert "Traceback" not in err and FAKE_PASSWORD not in err


async def test_login_refuses_an_address_with_credentials(login_env: Path, capsys) -> None:
    assert await cli("login", "--cluster", "mongodb://bob:pw@db.example.org", "--user", "b") == 2
    assert "without a user name or password" in capsys.readouterr().err


async def test_whoami_on_the_embedded_server_is_the_os_account(
    store, mongo_uri: str, login_env: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", store.db_name)
    assert await cli("whoami") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == os_user()


async def test_login_is_refused_while_mongodb_uri_is_set(
    login_env: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1/")
    assert await cli("login") == 2
    assert "MONGODB_URI is set" in capsys.readouterr().err


async def test_a_refusal_by_the_servers_roles_is_a_clean_permission_error(
    mongo_uri: str,
) -> None:
    """docs/identity.md: a researcher role without `remove` cannot delete, even as the owner."""
    import uuid

    from simulator.domain.errors import PermissionDeniedError
    from simulator.services.root import AppRoot
    from tests.plugins.roles import make_experiment

    backend = mongo_uri.split("://", 1)[1].split("/", 1)[0]
    front = FakeMongo({"alice": FAKE_PASSWORD}, backend=backend, forbid=("delete",)).start()
    db_name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        store = await connect_store(build_uri(front.address, "alice", FAKE_PASSWORD), db_name)
        try:
            services = await AppRoot(load_settings()).services(store)  # alice, as the app
            svc = services.experiments
            exp = await svc.create(make_experiment())
            assert exp.owner == "alice"
            with pytest.raises(PermissionDeniedError) as err:
                await svc.delete(exp.id)
            assert "The database refused to delete experiment 'Prison study (test)'" in str(
                err.value
            )
            assert (await svc.get(exp.id)).owner == "alice"  # still there
            await store.drop_database()
        finally:
            await store.close()
    finally:
        front.stop()
