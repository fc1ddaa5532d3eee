"""Ollama via ``ollama.AsyncClient`` (host: the model's base_url, else ``OLLAMA_HOST``).

Chat sends ``options`` with temperature, top_p, top_k, num_ctx, num_predict (our max_tokens) and
seed, exactly as configured (None: left out, Ollama's default applies), ``format`` (the JSON
schema) for structured actions, and ``keep_alive`` when the model's options set it (how long the
server keeps the model, and so its prompt cache, loaded after a call: ``"30m"``, ``3600``, ``-1``
for ever; unset, the server's ``OLLAMA_KEEP_ALIVE`` applies). ``sent_params`` holds the options
under Ollama's names, and ``format`` and ``keep_alive`` when they were sent. ``model_digest``
reads the model's digest from the server's listing (the response cache keys on it).
``list_models`` only lists; ``ensure_available`` pulls a missing model and reports progress as
``LLMEvent(kind="pull_progress", completed=..., total=...)``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import ollama

from simulator.domain import ModelRef, TokenUsage
from simulator.llm.base import ChatRequest, ChatResult, EventSink, LLMEvent
from simulator.llm.clients import ClientCache, redact, status_error
from simulator.llm.retry import CallError, emit
from simulator.settings import Settings

DEFAULT_HOST = "http://127.0.0.1:11434"


def normalise_host(host: str) -> str:
    """``localhost`` / ``host:port`` / ``http://host`` -> a full URL (Ollama's own rules)."""
    host = host.strip().rstrip("/")
    if "://" not in host:
        host = f"http://{host}"
    scheme, rest = host.split("://", 1)
    hostport = rest.split("/", 1)[0]
    if ":" not in hostport.rsplit("]", 1)[-1]:
        port = 443 if scheme == "https" else 11434
        path = rest[len(hostport) :]
        host = f"{scheme}://{hostport}:{port}{path}"
    return host


class OllamaBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: ClientCache[ollama.AsyncClient] = ClientCache(_close)
        self._digests: dict[tuple[str, str], str | None] = {}  # (host, model) -> digest

    def host(self, ref: ModelRef) -> str:
        return normalise_host(
            ref.base_url
            or self.settings.ollama_host
            or os.environ.get("OLLAMA_HOST")
            or DEFAULT_HOST
        )

    def client(self, ref: ModelRef) -> ollama.AsyncClient:
        host = self.host(ref)
        return self._clients.get(
            host,
            # a backstop only: Backends applies the per-call timeout; pulls may take minutes
            lambda: ollama.AsyncClient(
                host=host, timeout=httpx.Timeout(max(self.settings.llm_timeout_s, 300), connect=10)
            ),
        )

    @staticmethod
    def options(ref: ModelRef) -> dict[str, Any]:
        p = ref.params
        pairs = (
            ("temperature", p.temperature),
            ("top_p", p.top_p),
            ("top_k", p.top_k),
            ("num_ctx", p.num_ctx),
            ("num_predict", p.max_tokens),
            ("seed", p.seed),
        )
        return {name: value for name, value in pairs if value is not None}

    def cache_inputs(self, request: ChatRequest) -> dict[str, Any]:
        """The options as sent, for the response cache's key (the schema is a part of its own)."""
        return self.options(request.model)

    async def model_digest(self, ref: ModelRef) -> str | None:
        """The digest of ``ref``'s model on its server (from ``/api/tags``), read once."""
        key = (self.host(ref), ref.model)
        if key not in self._digests:
            try:
                listing = await self.client(ref).list()
            except Exception as exc:
                raise self._error(exc, ref) from None
            full = ref.model if ":" in ref.model else f"{ref.model}:latest"
            found = [m.digest for m in listing.models if m.model in (ref.model, full)]
            self._digests[key] = found[0] if found and found[0] else None
        return self._digests[key]

    # ------------------------------------------------------------------ calls

    async def chat(self, request: ChatRequest) -> ChatResult:
        ref = request.model
        options = self.options(ref)
        sent: dict[str, Any] = {"options": options}
        if request.json_schema is not None:
            sent["format"] = request.json_schema
        keep_alive = ref.options.get("keep_alive")
        if keep_alive is not None:
            sent["keep_alive"] = keep_alive
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        start = time.perf_counter()
        try:
            response = await self.client(ref).chat(
                model=ref.model, messages=messages, stream=False, **sent
            )
        except Exception as exc:
            raise self._error(exc, ref) from None
        latency = (time.perf_counter() - start) * 1000
        return ChatResult(
            text=response.message.content or "",
            usage=TokenUsage(
                prompt_tokens=int(response.prompt_eval_count or 0),
                completion_tokens=int(response.eval_count or 0),
            ),
            latency_ms=latency,
            finish_reason=response.done_reason,
            raw=response.model_dump(mode="json", exclude_none=True),
            # the options as sent (Ollama's names: num_predict, num_ctx), the JSON schema and
            # keep_alive
            sent_params={**options, **{k: v for k, v in sent.items() if k != "options"}},
            # prompt_eval_count leaves out a prefix served from Ollama's cache in some versions,
            # without saying so: not a count of the whole prompt (system_check.py)
            prompt_tokens_total=None,
        )

    def _error(self, exc: Exception, ref: ModelRef) -> CallError:
        host = self.host(ref)
        if isinstance(exc, ConnectionError | httpx.ConnectError):
            return CallError(
                f"Ollama is not running at {host}: start it with `ollama serve` or set OLLAMA_HOST",
                retryable=True,
                reason="connection",
                title="Ollama unreachable",
            )
        if isinstance(exc, httpx.TimeoutException):
            return CallError(
                f"no answer from Ollama at {host} in time", retryable=True, reason="timeout"
            )
        if isinstance(exc, httpx.TransportError):
            return CallError(
                f"the connection to Ollama at {host} failed: {exc.__class__.__name__}",
                retryable=True,
                reason="connection",
            )
        if isinstance(exc, ollama.ResponseError):
            return status_error(
                exc.status_code,
                redact(str(exc.error)),
                where=f"Ollama at {host}",
                model=ref.model,
                auth_hint="set OLLAMA_API_KEY for a server that needs one",
                not_found_hint=(
                    f"pull it with `ollama pull {ref.model}` (starting a run pulls missing models)"
                ),
            )
        return CallError(
            f"Ollama at {host} failed: {redact(str(exc)) or exc.__class__.__name__}",
            retryable=False,
            reason="error",
        )

    async def list_models(self, model: ModelRef) -> list[str]:
        try:
            listing = await self.client(model).list()
        except Exception as exc:
            raise self._error(exc, model) from None
        return sorted(m.model for m in listing.models if m.model)

    async def ensure_available(self, model: ModelRef, on_event: EventSink | None = None) -> None:
        """Pulls ``model`` when the server does not have it, reporting progress."""
        if has_model(await self.list_models(model), model.model):
            return
        host = self.host(model)
        try:
            stream = await self.client(model).pull(model.model, stream=True)
            async for part in stream:
                await emit(
                    on_event,
                    LLMEvent(
                        kind="pull_progress",
                        endpoint=model.endpoint,
                        model=model.model,
                        reason=part.status or "",
                        completed=part.completed,
                        total=part.total,
                    ),
                )
        except ollama.ResponseError as exc:
            raise CallError(
                f"model '{model.model}' not found: Ollama at {host} could not pull it "
                f"({redact(str(exc.error))}); check the name at https://ollama.com/library",
                retryable=False,
                reason="pull",
                status=exc.status_code,
                title="Model not found",
            ) from None
        except Exception as exc:
            raise self._error(exc, model) from None

    async def aclose(self) -> None:
        await self._clients.aclose()


async def _close(client: ollama.AsyncClient) -> None:
    await client.close()  # untyped in the ollama package (untyped_calls_exclude in pyproject)


def has_model(names: list[str], wanted: str) -> bool:
    """Ollama names ``llama3`` and ``llama3:latest`` the same model."""
    full = wanted if ":" in wanted else f"{wanted}:latest"
    return wanted in names or full in names
