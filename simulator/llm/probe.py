"""Is a model's server there, and does it have the model? Asked before a batch, from the editor.

``list_models`` asks a server which models it offers: Ollama (``GET /api/tags``) or an
OpenAI-compatible server (``GET {base_url}/models``, with the API key when one is set).
``check_connection`` checks one model end to end and says what is wrong in words a researcher can
act on: the server is unreachable, it refused the API key (401), or it does not have the model.

* Ollama: the model is listed (``/api/tags``) or known to ``/api/show``.
* OpenAI-compatible: the model is listed by ``/models``; a server that does not list it is asked
  for one token (``max_tokens: 1``) with that model, as some servers answer for names they do
  not list.
* dryrun: always fine (it runs offline).

This speaks HTTP itself (httpx), apart from the chat backends: a probe is one short request
with its own timeout and no retries, and it must not depend on how the backends make calls.
Keys are never part of what it returns.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from simulator.domain import ModelRef, Provider
from simulator.domain.errors import SimulatorError
from simulator.llm.clients import redact
from simulator.logging_setup import register_secret
from simulator.settings import Settings

TIMEOUT_S = 10.0
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
OLLAMA_DEFAULT_HOST = "http://127.0.0.1:11434"
OLLAMA_HINT = "start it with 'ollama serve', or set OLLAMA_HOST (or the model's base URL)"

#: What a failed probe found (``ProbeResult.problem``).
UNREACHABLE = "unreachable"
UNAUTHORIZED = "unauthorized"
MODEL_NOT_FOUND = "model not found"
BAD_ANSWER = "bad answer"


class ProbeError(SimulatorError):
    """The server could not be asked, or refused; ``problem`` says which (see above)."""

    title = "Connection problem"

    def __init__(self, message: str, problem: str) -> None:
        super().__init__(message)
        self.problem = problem


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of ``check_connection``: ok with the latency of the request that proved it, or
    what failed (``problem``) and a sentence saying so (``message``)."""

    ok: bool
    message: str
    latency_ms: float | None = None
    problem: str | None = None
    models: list[str] = field(default_factory=list)  # what the server listed, when it did


# --------------------------------------------------------------------------- where, with what key


def openai_base_url(ref: ModelRef, settings: Settings) -> str:
    """The model's base URL, else ``OPENAI_BASE_URL``, else OpenAI's own (no trailing slash)."""
    return (ref.base_url or settings.openai_base_url or OPENAI_DEFAULT_BASE_URL).rstrip("/")


def openai_api_key(ref: ModelRef, settings: Settings) -> str | None:
    """The key the model's calls use: ``options["api_key_env"]`` (an environment variable's
    name), ``options["api_key"]``, then ``OPENAI_API_KEY``; registered with the log scrubber."""
    key: str | None = None
    env_name = ref.options.get("api_key_env")
    if env_name:
        key = os.environ.get(str(env_name)) or None
    if key is None and ref.options.get("api_key"):
        key = str(ref.options["api_key"])
    if key is None and settings.openai_api_key is not None:
        key = settings.openai_api_key.get_secret_value() or None
    register_secret(key)
    return key


def ollama_host(ref: ModelRef, settings: Settings) -> str:
    """The model's base URL, else ``OLLAMA_HOST``, else the local default; with a scheme and
    a port (Ollama's 11434 when none is given)."""
    host = (
        ref.base_url or settings.ollama_host or os.environ.get("OLLAMA_HOST") or OLLAMA_DEFAULT_HOST
    )
    host = host.strip().rstrip("/")
    if "://" not in host:
        host = f"http://{host}"
    scheme, rest = host.split("://", 1)
    hostport = rest.split("/", 1)[0]
    if ":" not in hostport.rsplit("]", 1)[-1]:
        port = 443 if scheme == "https" else 11434
        host = f"{scheme}://{hostport}:{port}{rest[len(hostport) :]}"
    return host


def has_ollama_model(names: list[str], wanted: str) -> bool:
    """Ollama names ``llama3`` and ``llama3:latest`` the same model."""
    full = wanted if ":" in wanted else f"{wanted}:latest"
    return wanted in names or full in names


# --------------------------------------------------------------------------- requests


async def _request(
    method: str,
    url: str,
    *,
    where: str,
    key: str | None = None,
    json: Any = None,
    timeout_s: float = TIMEOUT_S,
    hint: str = "check that the server runs and the base URL is right",
) -> tuple[httpx.Response, float]:
    """One request; the response (any status) and its latency in ms. ProbeError(unreachable)
    when nothing answered in time."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    start = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.request(method, url, headers=headers, json=json)
    except httpx.TimeoutException:
        raise ProbeError(
            f"unreachable: {where} did not answer within {timeout_s:g} s", UNREACHABLE
        ) from None
    except (httpx.HTTPError, OSError, ValueError) as exc:
        # ValueError: a URL httpx cannot use
        detail = redact(str(exc), key) or type(exc).__name__
        raise ProbeError(
            f"unreachable: cannot connect to {where} ({detail}); {hint}",
            UNREACHABLE,
        ) from None
    return response, (time.monotonic() - start) * 1000


def _detail(response: httpx.Response, key: str | None) -> str:
    """The server's own error text (OpenAI's ``error.message``, Ollama's ``error``), short."""
    try:
        body = response.json()
    except ValueError:
        body = None
    text = ""
    if isinstance(body, dict):
        error = body.get("error")
        text = str(error.get("message", "")) if isinstance(error, dict) else str(error or "")
    text = text or response.text or response.reason_phrase
    return redact(text.strip().splitlines()[0] if text.strip() else "", key)[:200]


def _refused(response: httpx.Response, where: str, key: str | None, env_name: str) -> ProbeError:
    status = response.status_code
    if status in (401, 403):
        what = "was rejected" if key else "is missing"
        return ProbeError(
            f"HTTP {status}: the API key {what} by {where}; set {env_name} (environment or "
            "the model's api_key_env option) to a valid key for this server",
            UNAUTHORIZED,
        )
    return ProbeError(
        f"HTTP {status} from {where}: {_detail(response, key)}",
        BAD_ANSWER,
    )


def _json(response: httpx.Response, where: str, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ProbeError(
            f"{where} answered {what} with something that is not JSON: is it the right server?",
            BAD_ANSWER,
        ) from None


async def _openai_list(
    ref: ModelRef, settings: Settings, timeout_s: float
) -> tuple[list[str], float]:
    base, key = openai_base_url(ref, settings), openai_api_key(ref, settings)
    env_name = str(ref.options.get("api_key_env") or "OPENAI_API_KEY")
    response, latency = await _request(
        "GET", f"{base}/models", where=base, key=key, timeout_s=timeout_s
    )
    if response.status_code == 404:
        raise ProbeError(
            f"HTTP 404: {base} has no /models: the base URL should be the server's API root, "
            "usually ending in /v1",
            BAD_ANSWER,
        )
    if response.status_code != 200:
        raise _refused(response, base, key, env_name)
    body = _json(response, base, "/models")
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ProbeError(f"{base}/models did not list models (no 'data' list)", BAD_ANSWER)
    names = sorted(str(m["id"]) for m in data if isinstance(m, dict) and m.get("id"))
    return names, latency


async def _ollama_list(
    ref: ModelRef, settings: Settings, timeout_s: float
) -> tuple[list[str], float]:
    host = ollama_host(ref, settings)
    where = f"Ollama at {host}"
    response, latency = await _request(
        "GET", f"{host}/api/tags", where=where, timeout_s=timeout_s, hint=OLLAMA_HINT
    )
    if response.status_code != 200:
        detail = _detail(response, None)
        raise ProbeError(f"HTTP {response.status_code} from {where}: {detail}", BAD_ANSWER)
    body = _json(response, where, "/api/tags")
    models = body.get("models") if isinstance(body, dict) else None
    if not isinstance(models, list):
        raise ProbeError(f"{where} did not list models (no 'models' list)", BAD_ANSWER)
    names = sorted(
        str(m.get("model") or m.get("name"))
        for m in models
        if isinstance(m, dict) and (m.get("model") or m.get("name"))
    )
    return names, latency


async def list_models(
    ref: ModelRef, settings: Settings, *, timeout_s: float = TIMEOUT_S
) -> list[str]:
    """The models ``ref``'s server offers (sorted); ProbeError when it cannot tell. dryrun
    offers itself."""
    if ref.provider is Provider.dryrun:
        return ["dryrun"]
    if ref.provider is Provider.ollama:
        return (await _ollama_list(ref, settings, timeout_s))[0]
    return (await _openai_list(ref, settings, timeout_s))[0]


# --------------------------------------------------------------------------- testing one model


async def check_connection(
    ref: ModelRef, settings: Settings, *, timeout_s: float = TIMEOUT_S
) -> ProbeResult:
    """Check that ``ref`` can be called (see the module docstring); never raises for what a
    server does, only says it."""
    if ref.provider is Provider.dryrun:
        return ProbeResult(True, "ok: dryrun answers offline (scripted text, not a model)", 0.0)
    if not ref.model.strip():
        return ProbeResult(False, "no model name: type one first", None, MODEL_NOT_FOUND)
    try:
        if ref.provider is Provider.ollama:
            return await _test_ollama(ref, settings, timeout_s)
        return await _test_openai(ref, settings, timeout_s)
    except ProbeError as exc:
        return ProbeResult(False, str(exc), None, exc.problem)


async def _test_ollama(ref: ModelRef, settings: Settings, timeout_s: float) -> ProbeResult:
    names, latency = await _ollama_list(ref, settings, timeout_s)
    host = ollama_host(ref, settings)
    if has_ollama_model(names, ref.model):
        return ProbeResult(True, _ok(ref.model, f"Ollama at {host}", latency), latency, None, names)
    response, latency = await _request(
        "POST",
        f"{host}/api/show",
        where=f"Ollama at {host}",
        json={"model": ref.model},
        timeout_s=timeout_s,
    )
    if response.status_code == 200:
        return ProbeResult(True, _ok(ref.model, f"Ollama at {host}", latency), latency, None, names)
    return ProbeResult(
        False,
        f"model not found: Ollama at {host} does not have '{ref.model}' (it has "
        f"{len(names)}); pull it (ctrl+o in the models list) or pick an installed one",
        None,
        MODEL_NOT_FOUND,
        names,
    )


async def _test_openai(ref: ModelRef, settings: Settings, timeout_s: float) -> ProbeResult:
    names, latency = await _openai_list(ref, settings, timeout_s)
    base = openai_base_url(ref, settings)
    if ref.model in names:
        return ProbeResult(True, _ok(ref.model, base, latency), latency, None, names)
    # Not listed: some servers answer for any name (or list aliases only). One token decides.
    key = openai_api_key(ref, settings)
    response, latency = await _request(
        "POST",
        f"{base}/chat/completions",
        where=base,
        key=key,
        json={
            "model": ref.model,
            "messages": [{"role": "user", "content": "Say OK."}],
            "max_tokens": 1,
        },
        timeout_s=timeout_s,
    )
    if response.status_code == 200:
        return ProbeResult(
            True,
            _ok(ref.model, base, latency) + " (it answers, though /models does not list it)",
            latency,
            None,
            names,
        )
    if response.status_code in (400, 404):
        listed = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
        return ProbeResult(
            False,
            f"model not found: {base} does not offer '{ref.model}' "
            f"(HTTP {response.status_code}: {_detail(response, key)})"
            + (f"; it lists {listed}" if names else ""),
            None,
            MODEL_NOT_FOUND,
            names,
        )
    env_name = str(ref.options.get("api_key_env") or "OPENAI_API_KEY")
    exc = _refused(response, base, key, env_name)
    return ProbeResult(False, str(exc), None, exc.problem, names)


def _ok(model: str, where: str, latency_ms: float) -> str:
    return f"ok: {where} has '{model}' ({latency_ms:.0f} ms)"


__all__ = [
    "BAD_ANSWER",
    "MODEL_NOT_FOUND",
    "UNAUTHORIZED",
    "UNREACHABLE",
    "ProbeError",
    "ProbeResult",
    "check_connection",
    "has_ollama_model",
    "list_models",
    "ollama_host",
    "openai_api_key",
    "openai_base_url",
]
