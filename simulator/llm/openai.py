"""OpenAI and OpenAI-compatible servers (vLLM, llama.cpp's server, LM Studio) via ``AsyncOpenAI``.

Sent on every request: ``temperature``, ``top_p``, ``max_tokens``, ``seed`` (those not None), plus
``response_format`` for structured actions; ``top_k`` and ``num_ctx`` are never sent (they are not
OpenAI parameters), so ``sent_params`` never lists them. When a server answers 400 naming one of
them, the call is repeated once without it (or, for ``max_tokens``, with ``max_completion_tokens``
when the server asks for that), the result lists it in ``dropped_params``, and later calls to the
same model leave it out from the start. The SDK's own retries are off: ``Backends`` retries (see
retry.py).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from simulator.domain import ModelRef, TokenUsage
from simulator.llm.base import ChatRequest, ChatResult, EventSink
from simulator.llm.clients import ClientCache, redact, status_error
from simulator.llm.retry import CallError, parse_retry_after
from simulator.logging_setup import register_secret
from simulator.settings import Settings

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Local servers need no key, but the SDK insists on one: this placeholder is sent instead.
NO_KEY = "no-key"
# The system_fingerprint of Ollama's OpenAI-compatible endpoint.
OLLAMA_FINGERPRINT = "fp_ollama"


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


class OpenAIBackend:
    #: ``usage.prompt_tokens`` counts the whole prompt, cached part included: the system-prompt
    #: check can judge it (see system_check.py).
    counts_whole_prompt = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: ClientCache[openai.AsyncOpenAI] = ClientCache(lambda c: c.close())
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

    def client(self, ref: ModelRef) -> openai.AsyncOpenAI:
        base_url, key = self.base_url(ref), self.api_key(ref)
        return self._clients.get(
            (base_url, key),
            lambda: openai.AsyncOpenAI(
                api_key=key or NO_KEY,
                base_url=base_url,
                max_retries=0,  # ours, not the SDK's: see retry.py
                timeout=self.settings.llm_timeout_s,
            ),
        )

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

    # ------------------------------------------------------------------ calls

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

    async def chat(self, request: ChatRequest) -> ChatResult:
        ref = request.model
        adapt = self._adapted.setdefault((self.base_url(ref), ref.model), _Adaptation())
        wanted = self.params(request)
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        timeout = float(ref.options.get("timeout_s", self.settings.llm_timeout_s)) + 5
        while True:
            sent = self._send_params(request, adapt)
            start = time.perf_counter()
            try:
                response = await self.client(ref).chat.completions.create(
                    model=ref.model,
                    messages=messages,  # type: ignore[arg-type]
                    timeout=timeout,
                    **sent,
                )
            except openai.APIStatusError as exc:
                detail = self._detail(exc, ref)
                name = self._refused(exc, detail, sent)
                if name is not None and self._send_params(request, adapt) != sent:
                    continue  # a call sent at the same time already learnt this: follow it
                if name is None or not adapt.adapt(name, detail):
                    raise self._error(exc, ref) from None
                continue
            except openai.APIError as exc:
                raise self._error(exc, ref) from None
            latency = (time.perf_counter() - start) * 1000
            return self._result(response, latency, sent, sorted(adapt.dropped & wanted.keys()))

    @staticmethod
    def _result(
        response: ChatCompletion, latency_ms: float, sent: dict[str, Any], dropped: list[str]
    ) -> ChatResult:
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content or "") if choice is not None else ""
        usage = response.usage
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        # OpenAI's prompt_tokens counts the cached part too; a server that reports cached
        # tokens beside a count without them gets them added: a generous total can only hide
        # a dropped system message, never invent one (system_check.py)
        details = getattr(usage, "prompt_tokens_details", None)
        cached = int(getattr(details, "cached_tokens", 0) or 0)
        # Ollama's /v1 endpoint passes on its prompt_eval_count, which leaves out a prefix served
        # from its cache in some versions without saying so: not a count of the whole prompt
        whole = getattr(response, "system_fingerprint", None) != OLLAMA_FINGERPRINT
        return ChatResult(
            text=text,
            usage=TokenUsage(
                prompt_tokens=prompt_tokens,
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            ),
            prompt_tokens_total=prompt_tokens + cached if prompt_tokens and whole else None,
            latency_ms=latency_ms,
            finish_reason=choice.finish_reason if choice is not None else None,
            raw=response.model_dump(mode="json", exclude_none=True),
            sent_params=dict(sent),
            dropped_params=dropped,
        )

    @staticmethod
    def _refused(exc: openai.APIStatusError, detail: str, sent: dict[str, Any]) -> str | None:
        """The sent parameter an error refuses, if it names one: a 400 or 422, or a 5xx that is
        really a request validation error (llama-cpp-python answers 500 for those)."""
        status = exc.status_code
        if status not in (400, 422) and not (status >= 500 and "validation error" in detail):
            return None
        body = exc.body if isinstance(exc.body, dict) else {}
        named = body.get("param")
        if named in sent:
            return str(named)
        return next((k for k in sent if re.search(rf"\b{re.escape(k)}\b", detail)), None)

    def _detail(self, exc: openai.APIError, ref: ModelRef) -> str:
        body = exc.body if isinstance(exc.body, dict) else {}
        detail = str(body.get("message") or exc.message or exc.__class__.__name__)
        return redact(detail, self.api_key(ref))

    def _error(self, exc: openai.APIError, ref: ModelRef) -> CallError:
        where = self.base_url(ref)
        if isinstance(exc, openai.APITimeoutError):
            return CallError(
                f"no answer from {where} in time (the HTTP request timed out)",
                retryable=True,
                reason="timeout",
            )
        if isinstance(exc, openai.APIConnectionError):
            return CallError(
                f"cannot reach the OpenAI-compatible server at {where}: check that it is running "
                "and that OPENAI_BASE_URL (or the model's base_url) points at it",
                retryable=True,
                reason="connection",
                title="Model server unreachable",
            )
        if isinstance(exc, openai.APIStatusError):
            return status_error(
                exc.status_code,
                self._detail(exc, ref),
                where=where,
                model=ref.model,
                retry_after=parse_retry_after(exc.response.headers),
                auth_hint=self._auth_hint(ref),
                not_found_hint=(
                    "check the model name against the server's models, and that the base_url "
                    "is the API root (usually ending in /v1)"
                ),
            )
        return CallError(f"{where}: {self._detail(exc, ref)}", retryable=False, reason="error")

    async def list_models(self, model: ModelRef) -> list[str]:
        try:
            page = await self.client(model).models.list()
        except openai.APIError as exc:
            raise self._error(exc, model) from None
        return sorted(m.id for m in page.data)

    async def ensure_available(self, model: ModelRef, on_event: EventSink | None = None) -> None:
        """Checks that the server answers and accepts the key. A model missing from the listing
        is not an error here: some compatible servers answer for any name, and a real miss is
        reported by the first call as 'model not found'."""
        await self.list_models(model)

    async def aclose(self) -> None:
        await self._clients.aclose()
