"""Shared pytest fixtures of the services tests (registered in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from simulator.domain import Conversation, Experiment, GridCell, Message, ModelSet
from simulator.services.container import Services
from simulator.services.experiments import ExperimentService
from simulator.services.root import AppRoot
from simulator.settings import load_settings
from tests.plugins.roles import make_experiment

ServicesAs = Callable[[str], Awaitable[Services]]


@pytest.fixture
async def services_as(store) -> AsyncIterator[ServicesAs]:  # type: ignore[no-untyped-def]
    """A factory: ``await services_as("bob")`` is the services of user ``bob`` on the test's
    database, built by the composition root as the app builds them (the one way tests act as
    a user); closed after the test."""
    built: list[Services] = []

    async def make(user: str) -> Services:
        services = await AppRoot(load_settings(), user=user).services(store)
        built.append(services)
        return services

    yield make
    for services in built:
        await services.aclose()


@pytest.fixture
async def alice(services_as: ServicesAs) -> ExperimentService:
    """The experiment service of user ``alice`` on the test's fresh database."""
    return (await services_as("alice")).experiments


@pytest.fixture
async def bob(services_as: ServicesAs) -> ExperimentService:
    """The experiment service of user ``bob`` on the same database as ``alice``."""
    return (await services_as("bob")).experiments


@pytest.fixture
async def alices_experiment(alice: ExperimentService) -> Experiment:
    return await alice.create(make_experiment())


async def add_conversation(
    store,  # type: ignore[no-untyped-def]
    experiment: Experiment,
    owner: str,
    messages: int = 2,
) -> Conversation:
    """Store a finished-looking conversation with ``messages`` messages (no model involved)."""
    cell = GridCell(counts={"Guard": 1, "Prisoner": 1}, days=1, total_messages=2, models=ModelSet())
    conv = await store.conversations.create(
        Conversation(experiment_id=experiment.id, owner=owner, cell=cell)
    )
    for seq in range(messages):
        await store.messages.append(
            Message(conversation_id=conv.id, seq=seq, speaker="Guard 1", role="Guard", content="hi")
        )
    return conv


# --------------------------------------------------------------------------- a MongoDB with logins
#
# The embedded server has no authentication, so login tests talk to this minimal server instead:
# it speaks the real wire protocol (OP_QUERY/OP_MSG handshake, SCRAM-SHA-256 exactly as RFC 7677
# defines it) so the driver's own authentication code runs, and a wrong password is refused by the
# server with code 18 (AuthenticationFailed), as MongoDB does. Data commands get empty answers.

import base64  # noqa: E402
import hashlib  # noqa: E402
import hmac  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import socketserver  # noqa: E402
import struct  # noqa: E402
import threading  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

import bson  # noqa: E402
from bson.binary import Binary  # noqa: E402

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
AUTH_FAILED = {
    "ok": 0.0,
    "code": 18,
    "codeName": "AuthenticationFailed",
    "errmsg": "Authentication failed.",
}


def _scram_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    return hashlib.sha256(client_key).digest(), server_key


class _Handler(socketserver.BaseRequestHandler):
    server: _FakeServer

    def handle(self) -> None:
        self.user: str | None = None
        self.scram: dict[str, object] = {}
        try:
            while True:
                header = self._read(16)
                length, request_id, _, opcode = struct.unpack("<iiii", header)
                body = self._read(length - 16)
                doc = self._command(opcode, body)
                fake = self.server.fake
                fake.commands.append(next(iter(doc)))
                if self.user is not None and fake.forwards(doc):
                    self.request.sendall(self._forward(header + body))
                    continue
                reply = fake.answer(self, doc)
                self.request.sendall(self._encode(opcode, request_id, reply))
        except (ConnectionError, OSError, EOFError):
            return
        finally:
            if getattr(self, "backend", None) is not None:
                self.backend.close()

    def _forward(self, message: bytes) -> bytes:
        """Relay one request to the backend server and return its reply, byte for byte."""
        if getattr(self, "backend", None) is None:
            host, port = self.server.fake.backend.rsplit(":", 1)  # type: ignore[union-attr]
            self.backend = socket.create_connection((host, int(port)), timeout=30)
        self.backend.sendall(message)
        header = _recv_exactly(self.backend, 16)
        length = struct.unpack("<i", header[:4])[0]
        return header + _recv_exactly(self.backend, length - 16)

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.request.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    @staticmethod
    def _command(opcode: int, body: bytes) -> dict:
        if opcode == OP_QUERY:
            pos = 4
            end = body.index(b"\x00", pos)
            pos = end + 1 + 8
            size = struct.unpack("<i", body[pos : pos + 4])[0]
            return bson.decode(body[pos : pos + size])
        assert opcode == OP_MSG, opcode
        pos, doc, extra = 4, None, {}
        while pos < len(body):
            kind = body[pos]
            pos += 1
            if kind == 0:
                size = struct.unpack("<i", body[pos : pos + 4])[0]
                doc = bson.decode(body[pos : pos + size])
                pos += size
            else:
                size = struct.unpack("<i", body[pos : pos + 4])[0]
                section = body[pos + 4 : pos + size]
                name, _, docs = section.partition(b"\x00")
                extra[name.decode()] = bson.decode_all(docs)
                pos += size
        assert doc is not None
        doc.update(extra)
        return doc

    @staticmethod
    def _encode(opcode: int, request_id: int, reply: dict) -> bytes:
        data = bson.encode(reply)
        if opcode == OP_QUERY:
            payload = struct.pack("<iqii", 0, 0, 0, 1) + data
            op = OP_REPLY
        else:
            payload = struct.pack("<I", 0) + b"\x00" + data
            op = OP_MSG
        return struct.pack("<iiii", 16 + len(payload), request_id + 1, request_id, op) + payload


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


class _FakeServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeMongo


class FakeMongo:
    """A MongoDB wire-protocol server with SCRAM-SHA-256 logins for ``users``.

    With ``backend`` (``host:port`` of the embedded server), it is an authenticating front for
    that server: once a connection has logged in, its commands are relayed there byte for byte,
    so the whole app runs on real storage behind a real password check.
    """

    LOCAL = frozenset(["hello", "ismaster", "saslstart", "saslcontinue", "connectionstatus"])

    def __init__(
        self, users: dict[str, str], backend: str | None = None, forbid: tuple[str, ...] = ()
    ) -> None:
        self.users = users
        self.backend = backend
        self.forbid = {c.lower() for c in forbid}  # commands refused as a role would (code 13)
        self.commands: list[str] = []
        self.failed_logins = 0
        self._server = _FakeServer(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FakeMongo:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def forwards(self, doc: dict) -> bool:
        name = next(iter(doc)).lower()
        return self.backend is not None and name not in self.LOCAL and name not in self.forbid

    def answer(self, conn: _Handler, doc: dict) -> dict:
        name = next(iter(doc)).lower()
        if name in ("hello", "ismaster"):
            reply = {
                "ismaster": True,
                "isWritablePrimary": True,
                "helloOk": True,
                "maxBsonObjectSize": 16 * 1024 * 1024,
                "maxMessageSizeBytes": 48_000_000,
                "maxWriteBatchSize": 100_000,
                "localTime": datetime.now(UTC),
                "logicalSessionTimeoutMinutes": 30,
                "minWireVersion": 0,
                "maxWireVersion": 21,
                "ok": 1.0,
            }
            if "saslSupportedMechs" in doc:
                reply["saslSupportedMechs"] = ["SCRAM-SHA-256"]
            return reply
        if name == "saslstart":
            return self._sasl_start(conn, bytes(doc["payload"]))
        if name == "saslcontinue":
            return self._sasl_continue(conn, bytes(doc["payload"]))
        if name in self.forbid:
            return {
                "ok": 0.0,
                "code": 13,
                "codeName": "Unauthorized",
                "errmsg": f"not authorized on {doc.get('$db')} to execute command {name}",
            }
        if name == "connectionstatus":
            users = [{"user": conn.user, "db": "admin"}] if conn.user else []
            return {
                "authInfo": {"authenticatedUsers": users, "authenticatedUserRoles": []},
                "ok": 1.0,
            }
        if conn.user is None and name not in ("ping", "endsessions", "buildinfo"):
            return {
                "ok": 0.0,
                "code": 13,
                "codeName": "Unauthorized",
                "errmsg": f"command {name} requires authentication",
            }
        if name in ("find", "aggregate"):
            coll = doc[next(iter(doc))]
            return {
                "cursor": {"firstBatch": [], "id": 0, "ns": f"{doc.get('$db')}.{coll}"},
                "ok": 1.0,
            }
        if name in ("insert", "update", "delete"):
            return {
                "n": len(doc.get("documents", doc.get("updates", doc.get("deletes", [])))),
                "ok": 1.0,
            }
        return {"ok": 1.0}

    def _sasl_start(self, conn: _Handler, payload: bytes) -> dict:
        first_bare = payload.split(b",", 2)[2]
        fields = dict(part.split(b"=", 1) for part in first_bare.split(b","))
        user = fields[b"n"].decode()
        nonce = fields[b"r"] + base64.b64encode(os.urandom(18))
        salt, iterations = os.urandom(16), 4096
        server_first = b"r=" + nonce + b",s=" + base64.b64encode(salt) + b",i=4096"
        conn.scram = {
            "user": user,
            "first_bare": first_bare,
            "server_first": server_first,
            "salt": salt,
            "iterations": iterations,
            "nonce": nonce,
        }
        return {"conversationId": 1, "done": False, "payload": Binary(server_first), "ok": 1.0}

    def _sasl_continue(self, conn: _Handler, payload: bytes) -> dict:
        s = conn.scram
        without_proof, _, proof_b64 = payload.rpartition(b",p=")
        password = self.users.get(str(s.get("user")))
        if password is None or not without_proof.endswith(b"r=" + s["nonce"]):  # type: ignore[operator]
            self.failed_logins += 1
            return AUTH_FAILED
        stored_key, server_key = _scram_keys(password, s["salt"], s["iterations"])  # type: ignore[arg-type]
        auth_message = s["first_bare"] + b"," + s["server_first"] + b"," + without_proof  # type: ignore[operator]
        signature = hmac.new(stored_key, auth_message, "sha256").digest()
        proof = base64.b64decode(proof_b64)
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if hashlib.sha256(client_key).digest() != stored_key:
            self.failed_logins += 1
            return AUTH_FAILED
        conn.user = str(s["user"])
        server_sig = hmac.new(server_key, auth_message, "sha256").digest()
        return {
            "conversationId": 1,
            "done": True,
            "payload": Binary(b"v=" + base64.b64encode(server_sig)),
            "ok": 1.0,
        }


FAKE_PASSWORD = "Pa55/w@rd:with%odd&chars"


@pytest.fixture
def fake_mongo():  # type: ignore[no-untyped-def]
    """A MongoDB with one user, ``alice`` (password ``FAKE_PASSWORD``)."""
    server = FakeMongo({"alice": FAKE_PASSWORD}).start()
    try:
        yield server
    finally:
        server.stop()


def closed_port() -> int:
    """A loopback port nothing listens on (for unreachable-server tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
