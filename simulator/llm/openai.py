"""OpenAI and OpenAI-compatible servers (vLLM, llama.cpp's server, LM Studio): a prepared JSON
body posted over one shared ``httpx.AsyncClient`` per endpoint (and event loop).

Sent on every request: ``temperature``, ``top_p``, ``max_tokens``, ``seed`` (those not None), plus
``response_format`` for structured actions, and ``prompt_cache_key`` when the request carries one
(a batch gives each conversation its own) and the server is OpenAI's own (or the model's option
``prompt_cache_key: true`` says to send it anyway; ``false``, never); ``top_k`` and ``num_ctx``
are never sent (they are not OpenAI parameters), so ``sent_params`` never lists them. When a
server answers 400 naming one of them, the call is repeated once without it (or, for
``max_tokens``, with ``max_completion_tokens`` when the server asks for that), the result lists
it in ``dropped_params``, and later calls to the same model leave it out from the start. The
prompt tokens a server served from its prompt cache (``prompt_tokens_details.cached_tokens`` of
OpenAI's and vLLM's usage, ``timings.cache_n`` of llama.cpp's server) are
``usage.cached_tokens``. ``Backends`` retries (see retry.py); nothing here does.

Why not the ``openai`` SDK: it validates and transforms the whole message list on every call
(about 5 ms of CPU per call, half of it in that transform), which made one core the ceiling of a
batch near 165 calls/s. Here a request is one dict built once (:meth:`OpenAIBackend.request_body`,
the one place that says what goes on the wire) and encoded once; ``benchmarks/openai_cpu.py``
measures the CPU per call.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from simulator.domain import ModelRef, TokenUsage
from simulator.llm.base import ChatRequest, ChatResult, EventSink
from simulator.llm.clients import ClientCache, redact, status_error
from simulator.llm.http import http_client
from simulator.llm.prices import openai_hosted
from simulator.llm.retry import CallError, parse_retry_after
from simulator.logging_setup import register_secret
from simulator.settings import Settings

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# The system_fingerprint of Ollama's OpenAI-compatible endpoint.
OLLAMA_FINGERPRINT = "fp_ollama"
#: Connection set-up is quick or not at all: a server that does not accept within this long is
#: reported as unreachable (and retried) rather than waited for until the call's own timeout.
CONNECT_TIMEOUT_S = 10.0
#: Parts of the body that are not parameters: ``sent_params`` is the body without them.
NOT_PARAMS = frozenset({"model", "messages"})

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass
class _Adaptation:
    """What one server refused for one model, learnt from its errors."""

    dropped: set[str] = field(default_factory=set)
    renamed: dict[str, str] = field(default_factory=dict)  # our name -> the server's
    json_object: bool = False  # response_format as json_object + schema instead of json_schema

    def adapt(self, name: str, detail: str) -> bool:
        """Change what is sent after ``name`` was refused; False when nothing is left to try."""
        if name == "max_tokens" and "max_completion_tokens" in detail:
            self.renamed["max_tokens"] = "max_completion_tokens"
        elif name == "max_completion_tokens":
            self.dropped.add("max_tokens")
        elif name == "response_format" and not self.json_object:
            self.json_object = True
        elif name in self.dropped:
            return False
        else:
            self.dropped.add(name)
        return True


@dataclass(frozen=True)
class _Refusal:
    """An HTTP error answer, read once: status, the server's words, the parameter it names."""

    status: int
    detail: str
    param: str | None
    retry_after: float | None


class OpenAIBackend:
    #: ``usage.prompt_tokens`` counts the whole prompt, cached part included: the system-prompt
    #: check can judge it (see system_check.py).
    counts_whole_prompt = True

    def __init__(
        self, settings: Settings, limit_for: Callable[[ModelRef], int] | None = None
    ) -> None:
        self.settings = settings
        # connections per client: the endpoint's concurrency limit (Backends passes its own)
        self._limit_for = limit_for or (lambda ref: settings.openai_concurrency)
        self._clients: ClientCache[httpx.AsyncClient] = ClientCache(lambda c: c.aclose())
        # (base_url, model) -> what that server refused before, so later calls avoid it at once
        self._adapted: dict[tuple[str, str], _Adaptation] = {}

    # ------------------------------------------------------------------ configuration

    def base_url(self, ref: ModelRef) -> str:
        return (ref.base_url or self.settings.openai_base_url or DEFAULT_BASE_URL).rstrip("/")

    def api_key(self, ref: ModelRef) -> str | None:
        """``options["api_key_env"]`` (the name of an environment variable), ``options["api_key"]``,
        then ``OPENAI_API_KEY``. Registered with the log scrubber as soon as it is read."""
        key: str | None = None
        env_name = ref.options.get("api_key_env")
        if env_name:
            key = os.environ.get(str(env_name)) or None
        if key is None and ref.options.get("api_key"):
            key = str(ref.options["api_key"])
        if key is None and self.settings.openai_api_key is not None:
            key = self.settings.openai_api_key.get_secret_value() or None
        register_secret(key)
        return key

    def _auth_hint(self, ref: ModelRef) -> str:
        env_name = ref.options.get("api_key_env") or "OPENAI_API_KEY"
        return f"set {env_name} (environment or .env) to a valid key for this server"

    def timeout_s(self, ref: ModelRef) -> float:
        """The HTTP client's own deadline: a backstop behind ``Backends``' per-attempt timeout."""
        return float(ref.options.get("timeout_s", self.settings.llm_timeout_s)) + 5

    def client(self, ref: ModelRef) -> httpx.AsyncClient:
        """The endpoint's shared client: its connection pool holds as many connections as the
        endpoint may have calls at once, and it carries the key (never logged: httpx logs no
        headers, and the key is registered with the log scrubber)."""
        base_url, key = self.base_url(ref), self.api_key(ref)

        def make() -> httpx.AsyncClient:
            headers = {"Accept": "application/json", "Content-Type": "application/json"}
            if key:
                headers["Authorization"] = f"Bearer {key}"
            return http_client(
                base_url,
                max_connections=int(self._limit_for(ref)),
                headers=headers,
                timeout=httpx.Timeout(self.settings.llm_timeout_s + 5, connect=CONNECT_TIMEOUT_S),
            )

        return self._clients.get((base_url, key), make)

    def params(self, request: ChatRequest) -> dict[str, Any]:
        """The sampling parameters to send (before anything the server refused is removed)."""
        p = request.model.params
        sent: dict[str, Any] = {
            name: value
            for name, value in (
                ("temperature", p.temperature),
                ("top_p", p.top_p),
                ("max_tokens", p.max_tokens),
                ("seed", p.seed),
            )
            if value is not None
        }
        if request.json_schema is not None:
            sent["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": request.json_schema},
            }
        return sent

    def cache_inputs(self, request: ChatRequest) -> dict[str, Any]:
        """The sampling parameters as this backend sends them, for the response cache's key
        (before a server's refusal removes one; the schema is a part of the key of its own)."""
        return {k: v for k, v in self.params(request).items() if k != "response_format"}

    @staticmethod
    def sends_prompt_cache_key(ref: ModelRef) -> bool:
        """OpenAI's own API takes ``prompt_cache_key``; another server only when the model's
        option ``prompt_cache_key`` is true (some refuse unknown fields)."""
        wanted = ref.options.get("prompt_cache_key")
        return openai_hosted(ref) if wanted is None else bool(wanted)

    def _adaptation(self, ref: ModelRef) -> _Adaptation:
        return self._adapted.setdefault((self.base_url(ref), ref.model), _Adaptation())

    def _send_params(self, request: ChatRequest, adapt: _Adaptation) -> dict[str, Any]:
        """The parameters for this server and model, after what it refused before."""
        sent: dict[str, Any] = {}
        for name, value in self.params(request).items():
            if name in adapt.dropped:
                continue
            if name == "response_format" and adapt.json_object:
                # llama-cpp-python's server: {"type": "json_object", "schema": ...}
                value = {"type": "json_object", "schema": request.json_schema}
            sent[adapt.renamed.get(name, name)] = value
        return sent

    def request_body(
        self, request: ChatRequest, adapt: _Adaptation | None = None
    ) -> dict[str, Any]:
        """The chat completion request's JSON body, exactly as it is sent: the model, the
        messages in order, then the parameters (after what this server refused before).
        ``sent_params`` is this body without ``model`` and ``messages``."""
        adapt = adapt or self._adaptation(request.model)
        body: dict[str, Any] = {
            "model": request.model.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        body.update(self._send_params(request, adapt))
        if (
            request.prompt_cache_key
            and "prompt_cache_key" not in adapt.dropped
            and self.sends_prompt_cache_key(request.model)
        ):
            body["prompt_cache_key"] = request.prompt_cache_key
        return body

    # ------------------------------------------------------------------ calls

    async def chat(self, request: ChatRequest) -> ChatResult:
        ref = request.model
        adapt = self._adaptation(ref)
        wanted = set(self.params(request))
        if request.prompt_cache_key and self.sends_prompt_cache_key(ref):
            wanted.add("prompt_cache_key")
        client = self.client(ref)
        url = f"{self.base_url(ref)}/chat/completions"
        timeout = self.timeout_s(ref)
        while True:
            body = self.request_body(request, adapt)
            sent = _params(body)
            start = time.perf_counter()
            response = await self._post(client, url, _JSON.encode(body).encode(), timeout, ref)
            if response.status_code >= 400:
                refusal = self._refusal(response, ref)
                name = self._refused(refusal, sent)
                if name is not None and _params(self.request_body(request, adapt)) != sent:
                    continue  # a call sent at the same time already learnt this: follow it
                if name is None or not adapt.adapt(name, refusal.detail):
                    raise self._status_error(refusal, ref)
                continue
            latency = (time.perf_counter() - start) * 1000
            data = self._json(response, ref)
            return self._result(data, latency, sent, sorted(adapt.dropped & wanted))

    async def _post(
        self, client: httpx.AsyncClient, url: str, content: bytes, deadline_s: float, ref: ModelRef
    ) -> httpx.Response:
        try:
            return await client.post(url, content=content, timeout=deadline_s)
        except httpx.TimeoutException:
            raise self._timeout(ref) from None
        except httpx.TransportError as exc:
            raise self._unreachable(ref, exc) from None

    def _json(self, response: httpx.Response, ref: ModelRef) -> dict[str, Any]:
        try:
            data = json.loads(response.content)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise CallError(
                f"{self.base_url(ref)} answered HTTP {response.status_code} with something that "
                "is not a JSON object; is the base_url the API root (usually ending in /v1)?",
                retryable=True,
                reason="bad answer",
            )
        return data

    @staticmethod
    def _result(
        data: dict[str, Any], latency_ms: float, sent: dict[str, Any], dropped: list[str]
    ) -> ChatResult:
        choices = data.get("choices") or [{}]
        choice = choices[0] if isinstance(choices[0], dict) else {}
        message = choice.get("message")
        text = (message.get("content") or "") if isinstance(message, dict) else ""
        usage = data.get("usage") or {}
        prompt_tokens = _int(usage.get("prompt_tokens"))
        # OpenAI's prompt_tokens counts the cached part too; a server that reports cached
        # tokens beside a count without them gets them added: a generous total can only hide
        # a dropped system message, never invent one (system_check.py)
        details = usage.get("prompt_tokens_details") or {}
        cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
        timings = data.get("timings")  # llama.cpp's server: cache_n prompt tokens reused
        reused = cached or (_int(timings.get("cache_n")) if isinstance(timings, dict) else 0)
        # Ollama's /v1 endpoint passes on its prompt_eval_count, which leaves out a prefix served
        # from its cache in some versions without saying so: not a count of the whole prompt
        whole = data.get("system_fingerprint") != OLLAMA_FINGERPRINT
        return ChatResult(
            text=str(text),
            usage=TokenUsage(
                prompt_tokens=prompt_tokens,
                completion_tokens=_int(usage.get("completion_tokens")),
                cached_tokens=reused,
            ),
            prompt_tokens_total=prompt_tokens + cached if prompt_tokens and whole else None,
            latency_ms=latency_ms,
            finish_reason=choice.get("finish_reason"),
            raw=data,
            sent_params=sent,
            dropped_params=dropped,
        )

    # ------------------------------------------------------------------ errors

    def _refusal(self, response: httpx.Response, ref: ModelRef) -> _Refusal:
        """An error answer's status, message and named parameter. The message is the server's
        ``error.message`` (OpenAI's shape), ``message`` or ``detail``, else the body's text."""
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        error = body.get("error", body) if isinstance(body, dict) else body
        detail: Any = None
        param: Any = None
        if isinstance(error, dict):
            detail = error.get("message") or error.get("detail")
            param = error.get("param")
        elif isinstance(error, str):
            detail = error
        if not detail:
            text = response.text.strip()[:500]
            detail = f"Error code: {response.status_code}" + (f" - {text}" if text else "")
        return _Refusal(
            status=response.status_code,
            detail=redact(str(detail), self.api_key(ref)),
            param=param if isinstance(param, str) else None,
            retry_after=parse_retry_after(response.headers),
        )

    @staticmethod
    def _refused(refusal: _Refusal, sent: dict[str, Any]) -> str | None:
        """The sent parameter an error refuses, if it names one: a 400 or 422, or a 5xx that is
        really a request validation error (llama-cpp-python answers 500 for those)."""
        status, detail = refusal.status, refusal.detail
        if status not in (400, 422) and not (status >= 500 and "validation error" in detail):
            return None
        if refusal.param in sent:
            return refusal.param
        return next((k for k in sent if re.search(rf"\b{re.escape(k)}\b", detail)), None)

    def _status_error(self, refusal: _Refusal, ref: ModelRef) -> CallError:
        return status_error(
            refusal.status,
            refusal.detail,
            where=self.base_url(ref),
            model=ref.model,
            retry_after=refusal.retry_after,
            auth_hint=self._auth_hint(ref),
            not_found_hint=(
                "check the model name against the server's models, and that the base_url "
                "is the API root (usually ending in /v1)"
            ),
        )

    def _timeout(self, ref: ModelRef) -> CallError:
        return CallError(
            f"no answer from {self.base_url(ref)} in time (the HTTP request timed out)",
            retryable=True,
            reason="timeout",
        )

    def _unreachable(self, ref: ModelRef, exc: httpx.TransportError) -> CallError:
        where = self.base_url(ref)
        if isinstance(exc, httpx.ConnectError) and "SSL" in str(exc):
            return CallError(
                f"the TLS connection to {where} failed ({redact(str(exc))}): check the URL "
                "(https:// for a server with TLS, http:// for one without) and the server's "
                "certificate",
                retryable=False,
                reason="tls",
                title="TLS problem",
            )
        if isinstance(exc, httpx.ConnectError):
            return CallError(
                f"cannot reach the OpenAI-compatible server at {where}: check that it is running "
                "and that OPENAI_BASE_URL (or the model's base_url) points at it",
                retryable=True,
                reason="connection",
                title="Model server unreachable",
            )
        return CallError(
            f"the connection to the OpenAI-compatible server at {where} failed "
            f"({exc.__class__.__name__}: {redact(str(exc), self.api_key(ref)) or 'no detail'})",
            retryable=True,
            reason="connection",
        )

    # ------------------------------------------------------------------ models

    async def list_models(self, model: ModelRef) -> list[str]:
        response = await self._get(model, f"{self.base_url(model)}/models")
        if response.status_code >= 400:
            raise self._status_error(self._refusal(response, model), model)
        data = self._json(response, model).get("data") or []
        return sorted(str(m["id"]) for m in data if isinstance(m, dict) and "id" in m)

    async def _get(self, ref: ModelRef, url: str) -> httpx.Response:
        try:
            return await self.client(ref).get(url, timeout=self.timeout_s(ref))
        except httpx.TimeoutException:
            raise self._timeout(ref) from None
        except httpx.TransportError as exc:
            raise self._unreachable(ref, exc) from None

    async def ensure_available(self, model: ModelRef, on_event: EventSink | None = None) -> None:
        """Checks that the server answers and accepts the key. A model missing from the listing
        is not an error here: some compatible servers answer for any name, and a real miss is
        reported by the first call as 'model not found'."""
        await self.list_models(model)

    async def aclose(self) -> None:
        await self._clients.aclose()


def _params(body: dict[str, Any]) -> dict[str, Any]:
    """``sent_params``: the body without the model and the messages."""
    return {k: v for k, v in body.items() if k not in NOT_PARAMS}


def _int(value: Any) -> int:  # what a JSON body holds there: int, str, null or else
    """A token count from a server's JSON (absent, null or odd: 0)."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
