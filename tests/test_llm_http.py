"""The lean HTTP/1.1 transport of the OpenAI-compatible backend (simulator/llm/http.py), against
a real local server written at the socket level, so every framing and connection case is real:
keep-alive reuse, chunked and close-delimited bodies, gzip, a server that drops idle
connections, a server that never answers, cancellation, the connection limit, proxies."""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from simulator.domain import ModelRef, Provider
from simulator.domain.errors import LLMError
from simulator.llm.base import ChatMessage, ChatRequest, LLMEvent
from simulator.llm.http import LeanTransport, http_client, proxied
from simulator.llm.registry import Backends
from simulator.settings import Settings

Answer = Callable[[bytes, "RawServer"], Awaitable[tuple[bytes, bool]]]


def completion(text: str) -> bytes:
    return json.dumps(
        {
            "choices": [
                {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        }
    ).encode()


def framed(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join([*head, *extra]) + "\r\n\r\n").encode() + body


@dataclass
class RawServer:
    """Reads one request at a time per connection; ``answer(body, server)`` returns the bytes to
    write and whether to close the connection afterwards."""

    answer: Answer
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed_by_client: int = 0
    url: str = ""
    on_connection: int = 0  # requests read so far on the connection being answered

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                served += 1
                self.on_connection = served
                data, close = await self.answer(body, self)
                writer.write(data)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_by_client += 1
        finally:
            self.open_now -= 1
            writer.close()


async def serve(answer: Answer) -> AsyncIterator[RawServer]:
    raw = RawServer(answer)
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    raw.url = f"http://127.0.0.1:{port}/v1"
    async with server:
        yield raw
        server.close()


@pytest.fixture
async def keep_alive() -> AsyncIterator[RawServer]:
    async def answer(body: bytes, server: RawServer) -> tuple[bytes, bool]:
        return framed(completion(f"answer {len(server.requests)}")), False

    async for raw in serve(answer):
        yield raw


def client(max_connections: int = 4, read_s: float = 5.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=LeanTransport(max_connections),
        timeout=httpx.Timeout(read_s, connect=2.0),
        trust_env=False,
    )


async def test_connections_are_kept_alive_and_reused(keep_alive: RawServer) -> None:
    async with client() as c:
        texts = []
        for _ in range(5):
            r = await c.post(f"{keep_alive.url}/chat/completions", content=b'{"a": 1}')
            texts.append(r.json()["choices"][0]["message"]["content"])
    assert texts == [f"answer {i}" for i in range(1, 6)]
    assert keep_alive.connections == 1
    first = keep_alive.requests[0]
    assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"\r\nContent-Length: 8\r\n" in first and first.endswith(b'{"a": 1}')


async def test_chunked_gzip_and_close_delimited_answers_are_read_whole() -> None:
    body = completion("x" * 5000)

    async def answer(request: bytes, server: RawServer) -> tuple[bytes, bool]:
        n = len(server.requests)
        if n == 1:  # chunked, in three chunks with an extension and a trailer
            parts = [body[:10], body[10:4000], body[4000:]]
            chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts)
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            return head + chunks + b"0\r\nX-Trailer: 1\r\n\r\n", False
        if n == 2:  # gzip
            packed = gzip.compress(body)
            return framed(packed, "Content-Encoding: gzip"), False
        # no length: the body ends with the connection
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body, True

    async for raw in serve(answer):
        async with client() as c:
            for _ in range(4):
                r = await c.post(f"{raw.url}/chat/completions", content=b"{}")
                assert r.json()["choices"][0]["message"]["content"] == "x" * 5000
        # the close-delimited answers ended their connections: two more were opened
        assert raw.connections == 2


@pytest.mark.parametrize("pause_s", [0.05, 0.0])
async def test_a_connection_the_server_dropped_while_idle_is_replaced_without_a_retry(
    llm_settings: Settings, pause_s: float
) -> None:
    """The server closes a kept-alive connection (an idle timeout on its side): seen before the
    next request (``pause_s`` > 0) or only once that request is on the wire, when the server
    drops it unanswered. Either way the call goes out again on a fresh connection, at once,
    as the same attempt."""

    async def answer(request: bytes, server: RawServer) -> tuple[bytes, bool]:
        if server.on_connection > 1:
            return b"", True  # closed as the request arrived: nothing answered
        # answers, then closes without saying so
        return framed(completion(f"answer {server.connections}")), pause_s > 0

    events: list[LLMEvent] = []
    async for raw in serve(answer):
        ref = ModelRef(provider=Provider.openai, model="m", base_url=raw.url)
        backends = Backends(llm_settings, on_event=events.append)
        request = ChatRequest(model=ref, messages=[ChatMessage("user", "hi")])
        texts = []
        for _ in range(3):
            await asyncio.sleep(pause_s)  # makes the seen-before path likelier; both paths pass
            result = await backends.chat(request)
            texts.append(result.text)
            assert result.attempts == 1
        await backends.aclose()
    assert texts == ["answer 1", "answer 2", "answer 3"]
    assert events == [] and raw.connections == 3


async def test_a_server_that_never_answers_times_out_and_its_connection_is_not_reused() -> None:
    async def answer(request: bytes, server: RawServer) -> tuple[bytes, bool]:
        if len(server.requests) == 1:
            await asyncio.sleep(30)
        return framed(completion("late but fine")), False

    async for raw in serve(answer):
        async with client(read_s=0.3) as c:
            with pytest.raises(httpx.ReadTimeout):
                await c.post(f"{raw.url}/chat/completions", content=b"{}")
            r = await c.post(f"{raw.url}/chat/completions", content=b"{}")
            assert r.json()["choices"][0]["message"]["content"] == "late but fine"
        assert raw.connections == 2


async def test_a_cancelled_request_closes_its_connection() -> None:
    arrived = asyncio.Event()

    async def slow(request: bytes, server: RawServer) -> tuple[bytes, bool]:
        if len(server.requests) == 1:
            arrived.set()
            await asyncio.sleep(30)
        return framed(completion("second")), False

    async for raw in serve(slow):
        async with client() as c:
            task = asyncio.create_task(c.post(f"{raw.url}/chat/completions", content=b"{}"))
            await asyncio.wait_for(arrived.wait(), 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            transport = c._transport
            assert isinstance(transport, LeanTransport)
            assert all(not pool.idle for pool in transport._pools.values())
            # the next call goes out on a new connection, not on the half-used one
            r = await c.post(f"{raw.url}/chat/completions", content=b"{}")
            assert r.json()["choices"][0]["message"]["content"] == "second"
        assert raw.connections == 2


async def test_no_more_connections_than_the_limit() -> None:
    async def answer(request: bytes, server: RawServer) -> tuple[bytes, bool]:
        await asyncio.sleep(0.05)
        return framed(completion("ok")), False

    async for raw in serve(answer):
        async with client(max_connections=3) as c:
            await asyncio.gather(
                *(c.post(f"{raw.url}/chat/completions", content=b"{}") for _ in range(12))
            )
        assert raw.most_open <= 3 and len(raw.requests) == 12


async def test_an_unreachable_server_is_a_connect_error() -> None:
    async with client() as c:
        with pytest.raises(httpx.ConnectError):
            await c.post("http://127.0.0.1:9/v1/chat/completions", content=b"{}")


def test_endpoints_behind_a_proxy_get_httpx_own_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
                 "https_proxy", "all_proxy", "no_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    assert not proxied("https://api.openai.com/v1")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert proxied("https://api.openai.com/v1")
    assert not proxied("http://127.0.0.1:8000/v1")  # http, and listed in NO_PROXY
    timeout = httpx.Timeout(5.0)
    via_proxy = http_client("https://api.openai.com/v1", max_connections=2, headers={},
                            timeout=timeout)  # fmt: skip
    direct = http_client("http://127.0.0.1:8000/v1", max_connections=2, headers={},
                         timeout=timeout)  # fmt: skip
    assert not isinstance(via_proxy._transport, LeanTransport)
    assert isinstance(direct._transport, LeanTransport)


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for ``localhost`` and its key (cryptography comes with keyring's
    SecretStorage on Linux)."""
    crypto = pytest.importorskip("cryptography", reason="cryptography makes the test certificate")
    del crypto
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_https_is_verified_and_a_refused_certificate_is_named(
    tmp_path: Path, llm_settings: Settings
) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def answer(request: bytes, server: RawServer) -> tuple[bytes, bool]:
        return framed(completion("over TLS")), False

    raw = RawServer(answer)
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    url = f"https://localhost:{port}/v1"
    async with server:
        trusting = httpx.AsyncClient(
            transport=LeanTransport(2, ssl.create_default_context(cafile=str(cert)))
        )
        async with trusting:
            for _ in range(2):
                r = await trusting.post(f"{url}/chat/completions", content=b"{}")
                assert r.json()["choices"][0]["message"]["content"] == "over TLS"
        assert raw.connections == 1  # kept alive over TLS too
        # the default context does not trust a self-signed certificate: a TLS error, not
        # "cannot reach", and not retried
        backends = Backends(llm_settings, max_attempts=3, backoff_s=0.01)
        ref = ModelRef(provider=Provider.openai, model="m", base_url=url)
        with pytest.raises(LLMError, match="the TLS connection to https://localhost") as info:
            await backends.chat(ChatRequest(model=ref, messages=[ChatMessage("user", "hi")]))
        assert info.value.retryable is False
        await backends.aclose()
        server.close()
