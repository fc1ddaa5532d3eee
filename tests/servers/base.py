"""A small real HTTP server in a background thread, for tests: it records every request (path,
headers, JSON body), how many requests overlapped at most, and plays scripted faults.

Faults are consumed in order per path: ``server.script("/v1/chat/completions", Fault(429,
retry_after=1), Fault(500))``; once a path's script is empty the server answers normally.
``Fault(hang=True)`` never answers (until the server stops).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class Fault:
    status: int = 500
    body: dict[str, Any] | None = None
    retry_after: float | str | None = None
    hang: bool = False
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float


class Reply(Exception):
    """Raised by a handler to answer with a status and JSON body (not an error of the server)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class FakeServer:
    """Subclasses implement ``handle(method, path, body, headers) -> (status, body)`` or stream by
    returning a list of dicts with ``stream=True`` (NDJSON)."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        # the same per path: model calls apart from model listings (a worker's preflight)
        self.path_in_flight: dict[str, int] = defaultdict(int)
        self.max_path_in_flight: dict[str, int] = defaultdict(int)
        self.delay_s = 0.0  # every normal answer waits this long (to make overlap observable)
        self.port = 0  # 0: any free port
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control

    def script(self, path: str, *faults: Fault) -> None:
        with self._lock:
            self._faults[path].extend(faults)

    def seen(self, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        return f"http://{host}:{port}"

    def start(self) -> Self:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                server._dispatch(self)

            do_GET = do_POST = do_DELETE = _serve

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ serving

    def handle(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
        raise Reply(404, {"error": f"no route {path}"})

    def fault_body(self, fault: Fault) -> Any:
        return fault.body or {"error": f"scripted fault {fault.status}"}

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        if self._stop.is_set():  # stopped: a kept-alive connection is cut, as by a dead server
            h.close_connection = True
            return
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        path = h.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._lock:
            # when it arrived: a lower bound on the client's waits (Retry-After), never an upper
            self.requests.append(Seen(h.command, path, headers, body, time.monotonic()))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.path_in_flight[path] += 1
            peak = max(self.max_path_in_flight[path], self.path_in_flight[path])
            self.max_path_in_flight[path] = peak
            fault = self._faults[path].popleft() if self._faults[path] else None
        try:
            if fault is not None:
                if fault.hang:
                    self._stop.wait(60)
                    return
                time.sleep(fault.delay_s)  # a slow server, as scripted
                extra = dict(fault.headers)
                if fault.retry_after is not None:
                    extra["Retry-After"] = str(fault.retry_after)
                self._send(h, fault.status, self.fault_body(fault), extra)
                return
            if self.delay_s:
                time.sleep(self.delay_s)  # a slow server, as configured
            try:
                result = self.handle(h.command, path, body, headers)
            except Reply as reply:
                self._send(h, reply.status, reply.body, reply.headers)
                return
            if isinstance(result, Stream):
                self._stream(h, result.parts)
            else:
                self._send(h, 200, result, {})
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with self._lock:
                self.in_flight -= 1
                self.path_in_flight[path] -= 1

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    @staticmethod
    def _stream(h: BaseHTTPRequestHandler, parts: list[Any]) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/x-ndjson")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for part in parts:
            line = (json.dumps(part) + "\n").encode()
            h.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            h.wfile.flush()
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()


@dataclass
class Stream:
    """A streamed (NDJSON, chunked) answer."""

    parts: list[Any]
