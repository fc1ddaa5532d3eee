"""Settings: which MongoDB URI the app uses, how credentials are escaped, how URIs are redacted."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
from pydantic import SecretStr
from pymongo.uri_parser import parse_uri

from simulator.credentials import Credentials
from simulator.domain.errors import ConfigurationError
from simulator.settings import Settings, build_uri, load_settings, redact_uri

ROOT = Path(__file__).resolve().parent.parent
DB_VARS = (
    "MONGODB_URI",
    "DB_USER",
    "DB_PASSWORD",
    "DB_CLUSTER_URL",
    "MONGODB_DB",
    "SIMULATOR_DATA_DIR",
)


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No database variables in the environment, and a working directory with no .env."""
    for var in DB_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


NASTY_USER = "ana@lab:x"
NASTY_PASSWORD = "p@ss:w/rd%+ é?#"


def test_credentials_are_escaped_and_parse_back_exactly() -> None:
    uri = build_uri("db.example.org:27017", NASTY_USER, NASTY_PASSWORD)

    assert uri.startswith("mongodb://")
    parsed = parse_uri(uri)
    assert (parsed["username"], parsed["password"]) == (NASTY_USER, NASTY_PASSWORD)
    assert parsed["nodelist"] == [("db.example.org", 27017)]


def test_atlas_host_uses_srv_and_a_uri_is_used_as_is() -> None:
    srv = build_uri("cluster0.abcde.mongodb.net", "alice", "s/cret")
    creds = srv.removeprefix("mongodb+srv://").split("@", 1)[0]

    assert srv.startswith("mongodb+srv://")
    assert srv.endswith("@cluster0.abcde.mongodb.net/")
    assert [unquote_plus(p) for p in creds.split(":")] == ["alice", "s/cret"]
    given = "mongodb://other:pw@h1:27017,h2:27017/?replicaSet=rs0"
    assert build_uri(given, "ignored", "ignored") == given
    assert build_uri("localhost:27017", None, None) == "mongodb://localhost:27017/"


def test_mongodb_uri_wins_over_the_parts(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URI", "mongodb://localhost:27018/")
    monkeypatch.setenv("DB_CLUSTER_URL", "cluster0.example.mongodb.net")
    monkeypatch.setenv("DB_USER", "alice")

    uri = load_settings().mongodb_connection_uri()

    assert uri is not None and uri.get_secret_value() == "mongodb://localhost:27018/"


def test_a_malformed_mongodb_uri_is_refused_without_echoing_it(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONGODB_URI", "localhost:27017 user:hunter22")

    with pytest.raises(ConfigurationError) as err:
        load_settings().mongodb_connection_uri()

    assert "MONGODB_URI" in str(err.value)
    assert "hunter22" not in str(err.value)


def test_the_copied_template_means_the_embedded_server(clean_env: Path) -> None:
    """`cp .env_template .env` leaves every value empty: nothing is configured."""
    shutil.copy(ROOT / ".env_template", clean_env / ".env")

    settings = load_settings()

    assert settings.mongodb_connection_uri() is None
    assert settings.uses_embedded_server
    assert settings.simulator_data_dir is None
    assert settings.mongodb_db == "simulator"


def test_dotenv_parts_build_the_uri_and_the_environment_wins(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / ".env").write_text(
        "DB_USER=alice\nDB_PASSWORD='p@ss word'\nDB_CLUSTER_URL=db.example.org:27017\n"
        "MONGODB_DB=from_dotenv\n"
    )
    monkeypatch.setenv("MONGODB_DB", "from_env")

    settings = load_settings()
    uri = settings.mongodb_connection_uri()

    assert uri is not None
    parsed = parse_uri(uri.get_secret_value())
    assert (parsed["username"], parsed["password"]) == ("alice", "p@ss word")
    assert settings.mongodb_db == "from_env"
    assert "p@ss" not in repr(settings) and "p@ss" not in str(settings.model_dump())


def test_remembered_password_fills_in_only_for_the_same_user_and_cluster(
    clean_env: Path,
) -> None:
    settings = Settings(_env_file=None, db_user="alice", db_cluster_url="db.example.org:27017")
    mine = Credentials("db.example.org:27017", "alice", SecretStr("remembered!"))
    other = Credentials("db.example.org:27017", "bob", SecretStr("bobs"))

    assert settings.needs_password() is True
    assert settings.needs_password(other) is True
    assert settings.needs_password(mine) is False
    uri = settings.mongodb_connection_uri(mine)
    assert uri is not None and parse_uri(uri.get_secret_value())["password"] == "remembered!"
    other_uri = settings.mongodb_connection_uri(other)
    assert other_uri is not None
    assert not parse_uri(other_uri.get_secret_value())["password"]  # someone else's: not used


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mongodb://alice:secret@db:27017/x", "mongodb://alice:***@db:27017/x"),
        ("mongodb+srv://alice:s%40cret@c0.mongodb.net/", "mongodb+srv://alice:***@c0.mongodb.net/"),
        ("mongodb://alice@db/", "mongodb://alice@db/"),
        ("mongodb://db:27017/", "mongodb://db:27017/"),
    ],
)
def test_redact_uri(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected


@pytest.mark.parametrize("password", ["p@ss", "pa/ss", "a@b/c@d", "x:y"])
def test_redact_hides_malformed_passwords_whole(password: str) -> None:
    text = f"cannot parse mongodb://alice:{password}@db.example.org/ (check it); retry"

    redacted = redact_uri(text)

    assert password not in redacted
    assert "mongodb://alice:***@" in redacted
    assert redacted.endswith("(check it); retry")


def test_redact_every_uri_in_a_message() -> None:
    text = "tried mongodb://a:one@h1/ then mongodb+srv://b:two@h2/"

    assert redact_uri(text) == "tried mongodb://a:***@h1/ then mongodb+srv://b:***@h2/"
