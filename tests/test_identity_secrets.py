"""Acceptance 9.1: a full session with a known database password and API key (login, create, a
batch against an OpenAI-compatible local server that needs the key, a batch whose server rejects
the key and echoes it back, exports), then every log file, the database dump, the exports and
the console output are searched: neither secret appears anywhere.

The database is the embedded server behind an authenticating front (real SCRAM-SHA-256, see
tests/plugins/services.py), so the login is a real password check and the data is really stored.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import uuid
from pathlib import Path
from urllib.parse import quote_plus

import keyring
import pytest
from keyring.backend import KeyringBackend
from pymongo import AsyncMongoClient

from simulator.analysis.exports import export
from simulator.cli import main
from simulator.db.store import ConversationFilter
from simulator.domain import BatchSpec, ModelRef, ModelSet, Status
from simulator.domain.errors import LLMError
from simulator.engine.spec import load_example
from simulator.services.files import write_experiment
from simulator.services.root import AppRoot
from tests.plugins.services import FakeMongo
from tests.servers import FakeOpenAIServer, Fault
from tests.servers.openai_server import CHAT

PASSWORD = "Kn0wn/P@ss:w%rd-7c41"
API_KEY = "sk-known-Key-9f8e7d6c5b4a3210ZZ"
SECRETS = [PASSWORD, quote_plus(PASSWORD), API_KEY]


class MemoryKeyring(KeyringBackend):
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


def _host_port(uri: str) -> str:
    return uri.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]


async def _dump(mongo_uri: str, db_name: str) -> str:
    """Every document of every collection of the database, as text."""
    client: AsyncMongoClient = AsyncMongoClient(mongo_uri)
    try:
        db = client[db_name]
        parts = []
        for name in await db.list_collection_names():
            docs = await db[name].find({}).to_list(None)
            parts.append(f"== {name} ({len(docs)})\n" + json.dumps(docs, default=str))
        return "\n".join(parts)
    finally:
        await client.close()


def _files_text(root: Path) -> str:
    return "\n".join(
        f"== {p}\n" + p.read_text(encoding="utf-8", errors="replace")
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix != ".parquet"
    ) + "".join(p.read_bytes().decode("latin-1") for p in root.rglob("*.parquet") if p.is_file())


async def test_secrets_never_reach_logs_database_exports_or_output(
    mongo_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memory_keyring, capsys
) -> None:
    db_name = f"t_{uuid.uuid4().hex[:12]}"
    front = FakeMongo({"alice": PASSWORD}, backend=_host_port(mongo_uri)).start()
    good = FakeOpenAIServer(api_key=API_KEY)
    # Accepts our key for the model check before the run, then rejects it on the first chat,
    # echoing it back (the key revoked between the check and the call): the run fails and
    # stores its reason, which must not hold the key.
    strict = FakeOpenAIServer(api_key=API_KEY)
    strict.script(
        CHAT,
        Fault(
            401,
            body={
                "error": {
                    "message": f"Incorrect API key provided: {API_KEY}.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
        ),
    )
    logs, exports, config = tmp_path / "logs", tmp_path / "exports", tmp_path / "config"
    for var in ("MONGODB_URI", "DB_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DB_CLUSTER_URL", front.address)
    monkeypatch.setenv("DB_USER", "alice")
    monkeypatch.setenv("MONGODB_DB", db_name)
    monkeypatch.setenv("MONGODB_TIMEOUT_MS", "5000")
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("LLM_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("SIMULATOR_CONFIG_DIR", str(config))
    monkeypatch.setenv("SIMULATOR_LOG_DIR", str(logs))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(getpass, "getpass", lambda prompt="", stream=None: PASSWORD)
    output = ""
    try:
        with good, strict:
            # 1. log in (the password is typed once, then remembered in the keyring)
            assert await asyncio.to_thread(main, ["login"]) == 0
            # 2. create: import an experiment whose models are the two servers
            definition = load_example("prison_study").model_copy(
                update={
                    "models": [
                        ModelRef(provider="openai", model="fake-model", base_url=good.base_url),
                        ModelRef(provider="openai", model="fake-model", base_url=strict.base_url),
                    ]
                }
            )
            write_experiment(definition, tmp_path / "study.yaml")
            assert await asyncio.to_thread(main, ["experiments", "import", "study.yaml"]) == 0
            output += "".join(capsys.readouterr())

            # 3. batches, as the remembered user, through the authenticating front
            async with AppRoot.from_environment().session(ask_password=None) as services:
                store, user = services.store, services.user
                assert user == "alice"
                (row,) = await services.experiments.list()
                experiment = row.experiment
                statuses = []
                for server in (good, strict):
                    ref = ModelRef(provider="openai", model="fake-model", base_url=server.base_url)
                    spec = BatchSpec(
                        experiment_id=experiment.id,
                        model_sets=[ModelSet(default=ref)],
                        total_messages=4,
                        factor_levels=[{"goal": "Escape", "persona": "No persona"}],
                    )
                    batch = await services.batches.start(experiment, spec, owner=user)
                    try:
                        await services.batches.run(batch.id)
                    except LLMError as exc:  # the model check before the run: key rejected
                        assert API_KEY not in str(exc)
                    (conv,) = await services.conversations.list(
                        ConversationFilter(batch_id=batch.id)
                    )
                    stored_batch = await store.batches.get(batch.id)
                    statuses.append((stored_batch.status, conv.status))
                # 4. export (tables and transcripts) from the same session
                await export(
                    store,
                    ConversationFilter(experiment_id=experiment.id),
                    fmt="csv",
                    what="messages",
                    output=exports / "messages.csv",
                )
                await export(
                    store,
                    ConversationFilter(experiment_id=experiment.id),
                    fmt="csv",
                    what="conversations",
                    output=exports / "conversations.csv",
                )
                await export(
                    store,
                    ConversationFilter(experiment_id=experiment.id),
                    fmt="html",
                    output=exports / "transcripts.html",
                )
            assert (
                await asyncio.to_thread(
                    main,
                    ["experiments", "export", experiment.id, "-o", str(exports / "study.yaml")],
                )
                == 0
            )
            assert await asyncio.to_thread(main, ["whoami"]) == 0
            output += "".join(capsys.readouterr())

            # the secrets were really used: the key reached the servers, the password the front
            assert any(r.headers.get("authorization") == f"Bearer {API_KEY}" for r in good.requests)
            assert any(
                r.headers.get("authorization") == f"Bearer {API_KEY}" for r in strict.requests
            )
            assert front.failed_logins == 0 and "saslContinue" in front.commands
            assert statuses[0] == (Status.done, Status.done)
            assert Status.failed in statuses[1]  # the batch (or its conversation) failed
    finally:
        front.stop()

    dump = await _dump(mongo_uri, db_name)
    assert '"owner": "alice"' in dump and "== messages" in dump  # the dump holds the session
    assert "API key was rejected" in dump  # the failed run stored its (scrubbed) reason
    log_text = _files_text(logs)
    assert log_text.strip(), "the session wrote no log at all"
    export_text = _files_text(exports)
    assert "Prison study" in export_text
    config_text = _files_text(config)
    for secret in SECRETS:
        assert secret not in log_text, f"secret in the logs: {secret!r}"
        assert secret not in dump, f"secret in the database: {secret!r}"
        assert secret not in export_text, f"secret in an export: {secret!r}"
        assert secret not in output, f"secret printed: {secret!r}"
        assert secret not in config_text, f"secret in the config directory: {secret!r}"
    await _drop(mongo_uri, db_name)


async def _drop(mongo_uri: str, db_name: str) -> None:
    client: AsyncMongoClient = AsyncMongoClient(mongo_uri)
    try:
        await client.drop_database(db_name)
    finally:
        await client.close()
