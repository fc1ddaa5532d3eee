"""A lean HTTP/1.1 transport for ``httpx.AsyncClient``: keep-alive connections over asyncio streams.

Why: httpx's default transport (httpcore over anyio) spends more than a millisecond of CPU per
request in its connection pool and stream wrappers, which alone is past the budget of a model
call in a busy batch (``benchmarks/openai_cpu.py``). Model servers speak plain JSON over HTTP/1.1,
so this transport does only that: it writes the request httpx built (its headers, the key, the
body as given) on a pooled connection and reads the status, the headers and a body framed by
``Content-Length``, ``chunked`` encoding or the end of the connection. httpx stays the client:
it builds requests, decodes ``gzip`` answers and raises its own exceptions, which this transport
raises too (``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``, ``WriteTimeout``,
``PoolTimeout``, ``RemoteProtocolError``, ``ReadError``).

:func:`http_client` picks it for every endpoint that is not behind a proxy from the environment
(``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``), and httpx's own transport otherwise.

One transport serves one event loop (as does every ``httpx.AsyncClient``); connections are kept
per (scheme, host, port), at most ``max_connections`` at once. A connection whose request was
cancelled or failed half-way is closed, never reused. A reused connection that the server closed
while idle (it answers with nothing) is replaced once by a fresh one, without a retry of the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.request
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

MAX_HEADER_BYTES = 64 * 1024
_Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class _Pool:
    gate: asyncio.Semaphore
    idle: deque[_Streams] = field(default_factory=deque)


class _Closed(Exception):
    """A reused connection answered nothing: the server had closed it while it was idle."""


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive over asyncio streams (see the module docstring)."""

    def __init__(self, max_connections: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self.max_connections = max(1, max_connections)
        self._ssl = ssl_context
        self._pools: dict[tuple[bytes, str, int], _Pool] = {}
        self._closed = False

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        url = request.url
        scheme = url.raw_scheme
        port = url.port or (443 if scheme == b"https" else 80)
        key = (scheme, url.host, port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(asyncio.Semaphore(self.max_connections))
        timeouts: Mapping[str, float | None] = request.extensions.get("timeout", {})
        content = await request.aread()
        head = _head(request, len(content))
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await pool.gate.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection in time", request=request) from None
        try:
            while True:
                streams, reused = self._idle(pool), True
                if streams is None:
                    streams, reused = await self._connect(request, key, timeouts), False
                try:
                    status, reason, headers, body, keep = await self._exchange(
                        request, streams, head + content, timeouts, reused
                    )
                except _Closed:
                    _close(streams)
                    continue  # the server had closed that idle connection: take another one
                except BaseException:
                    _close(streams)
                    raise
                if keep and not self._closed:
                    pool.idle.append(streams)
                else:
                    _close(streams)
                break
        finally:
            pool.gate.release()
        return httpx.Response(
            status,
            headers=headers,
            stream=httpx.ByteStream(body),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason.encode("latin-1")},
            request=request,
        )

    @staticmethod
    def _idle(pool: _Pool) -> _Streams | None:
        while pool.idle:
            reader, writer = pool.idle.pop()
            if reader.at_eof() or writer.is_closing():
                _close((reader, writer))
                continue
            return reader, writer
        return None

    async def _connect(
        self,
        request: httpx.Request,
        key: tuple[bytes, str, int],
        timeouts: Mapping[str, float | None],
    ) -> _Streams:
        scheme, host, port = key
        tls = self._ssl_context() if scheme == b"https" else None
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                return await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"no connection to {host}:{port} in time", request=request
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}", request=request) from None

    async def _exchange(
        self,
        request: httpx.Request,
        streams: _Streams,
        data: bytes,
        timeouts: Mapping[str, float | None],
        reused: bool,
    ) -> tuple[int, str, list[tuple[bytes, bytes]], bytes, bool]:
        reader, writer = streams
        try:
            writer.write(data)
            async with asyncio.timeout(timeouts.get("write")):
                await writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout(
                "the request could not be sent in time", request=request
            ) from None
        except OSError as exc:
            if reused:
                raise _Closed from None
            raise httpx.WriteError(f"{type(exc).__name__}: {exc}", request=request) from None
        try:
            async with asyncio.timeout(timeouts.get("read")):
                return await _read_response(reader, request, reused)
        except TimeoutError:
            raise httpx.ReadTimeout("no answer in time", request=request) from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from None
        except ValueError as exc:  # a line longer than the stream's limit
            raise httpx.RemoteProtocolError(str(exc), request=request) from None

    async def aclose(self) -> None:
        self._closed = True
        writers = []
        for pool in self._pools.values():
            while pool.idle:
                _, writer = pool.idle.pop()
                writer.close()
                writers.append(writer)
        for writer in writers:
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _head(request: httpx.Request, length: int) -> bytes:
    """The request line and headers, as httpx built them (Content-Length set to the body's)."""
    url = request.url
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), url.raw_path)]
    seen_length = False
    for name, value in request.headers.raw:
        lowered = name.lower()
        if lowered == b"content-length":
            seen_length = True
            value = b"%d" % length
        elif lowered == b"transfer-encoding":
            continue  # the body is sent whole, with its length
        lines.append(name + b": " + value)
    if not seen_length and (length or request.method in ("POST", "PUT", "PATCH")):
        lines.append(b"Content-Length: %d" % length)
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _read_response(
    reader: asyncio.StreamReader, request: httpx.Request, reused: bool
) -> tuple[int, str, list[tuple[bytes, bytes]], bytes, bool]:
    """Status, reason, headers, body and whether the connection may be reused."""
    first = True
    while True:  # informational answers (100 Continue) come before the real one
        try:
            line = await reader.readline()
        except ConnectionError:
            if reused and first:  # reset before any byte of an answer: closed while idle
                raise _Closed from None
            raise
        if not line and first and reused:
            raise _Closed
        first = False
        if not line:
            raise httpx.RemoteProtocolError(
                "the server closed the connection without answering", request=request
            )
        try:
            version, status_text, *rest = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
            status = int(status_text)
        except ValueError:
            raise httpx.RemoteProtocolError(
                f"not an HTTP answer: {line[:80]!r}", request=request
            ) from None
        headers = await _read_headers(reader, request)
        if status >= 200 or status == 101:
            break
    reason = rest[0] if rest else ""
    length: int | None = None
    chunked = False
    close = version == "HTTP/1.0"
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise httpx.RemoteProtocolError("a bad Content-Length", request=request) from None
        elif lowered == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif lowered == b"connection":
            tokens = value.lower()
            if b"close" in tokens:
                close = True
            elif b"keep-alive" in tokens:
                close = False
    if request.method == "HEAD" or status in (204, 304):
        body = b""
    elif chunked:
        body = await _read_chunked(reader, request)
    elif length is not None:
        body = await reader.readexactly(length)
    else:  # framed by the end of the connection
        body = await reader.read()
        close = True
    return status, reason, headers, body, not close


async def _read_headers(
    reader: asyncio.StreamReader, request: httpx.Request
) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    size = 0
    while True:
        line = await reader.readline()
        size += len(line)
        if size > MAX_HEADER_BYTES:
            raise httpx.RemoteProtocolError("the answer's headers are too long", request=request)
        if line in (b"\r\n", b"\n"):
            return headers
        if not line:
            raise httpx.RemoteProtocolError(
                "the server closed the connection in the headers", request=request
            )
        name, sep, value = line.partition(b":")
        if not sep:
            raise httpx.RemoteProtocolError(f"a bad header line {line[:80]!r}", request=request)
        headers.append((name.strip(), value.strip()))


async def _read_chunked(reader: asyncio.StreamReader, request: httpx.Request) -> bytes:
    parts: list[bytes] = []
    while True:
        line = await reader.readline()
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise httpx.RemoteProtocolError(
                f"a bad chunk size {line[:40]!r}", request=request
            ) from None
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers: not used
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)  # the CRLF after each chunk


def _close(streams: _Streams) -> None:
    with contextlib.suppress(Exception):
        streams[1].close()


def proxied(url: str) -> bool:
    """Whether the environment routes ``url`` through a proxy (``HTTPS_PROXY`` and friends,
    minus ``NO_PROXY``): then httpx's own transport, which speaks to proxies, carries it."""
    scheme, _, rest = url.partition("://")
    proxies = urllib.request.getproxies()
    if not (proxies.get(scheme.lower()) or proxies.get("all")):
        return False
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return not urllib.request.proxy_bypass(host.split(":", 1)[0] if "]" not in host else host)


def http_client(
    base_url: str,
    *,
    max_connections: int,
    headers: Mapping[str, str],
    timeout: httpx.Timeout,
) -> httpx.AsyncClient:
    """The shared client of one endpoint: :class:`LeanTransport` unless a proxy applies."""
    limit = max(1, max_connections)
    if proxied(base_url):
        return httpx.AsyncClient(
            headers=dict(headers),
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            timeout=timeout,
        )
    return httpx.AsyncClient(
        headers=dict(headers), timeout=timeout, transport=LeanTransport(limit), trust_env=False
    )


__all__ = ["LeanTransport", "http_client", "proxied"]
