"""A fake OpenAI-compatible server: ``/v1/chat/completions`` and ``/v1/models``.

Options: ``api_key`` (requests without ``Authorization: Bearer <key>`` get 401), ``reject_params``
(a 400 naming the parameter when a request carries it, like servers that do not support ``seed``),
``models`` (what /v1/models lists; chat with another model gets 404 when ``strict_models``),
``reply`` (a function body -> text; default echoes the last user message), ``json_object_only``
(like llama-cpp-python's server: ``response_format`` of type ``json_schema`` gets a 500 validation
error; ``{"type": "json_object", "schema": ...}`` is accepted), ``drop_system`` (like a chat
template that leaves system messages out, llama-cpp-python's ``gemma`` format: the prompt token
count leaves them out), ``cached_tokens`` (that many prompt tokens reported as served from a
cache, in ``usage.prompt_tokens_details.cached_tokens``, and left out of ``prompt_tokens``, as a
server counting only what it evaluated would), ``fingerprint`` (the ``system_fingerprint`` of
every answer; Ollama's /v1 endpoint says ``fp_ollama``).

Every request is recorded with its JSON body (``chat_bodies()``); ``answered()`` pairs each reply
text with the body it answered.

Prompt tokens are counted as words (about 6 characters each: fewer than a real tokenizer's, never
below the system-prompt check's floor of one token per 10 characters).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.servers.base import FakeServer, Fault, Reply

CHAT = "/v1/chat/completions"
MODELS = "/v1/models"


def _error(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class FakeOpenAIServer(FakeServer):
    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: tuple[str, ...] = ("fake-model",),
        strict_models: bool = False,
        reject_params: tuple[str, ...] = (),
        reply: Callable[[dict[str, Any]], str] | None = None,
        json_object_only: bool = False,
        drop_system: bool = False,
        cached_tokens: int = 0,
        fingerprint: str | None = None,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = list(models)
        self.strict_models = strict_models
        self.reject_params = set(reject_params)
        self.reply = reply
        self.json_object_only = json_object_only
        self.drop_system = drop_system
        self.cached_tokens = cached_tokens
        self.fingerprint = fingerprint
        self._answered: list[tuple[str, dict[str, Any]]] = []

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def chat_bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.seen(CHAT)]

    def answered(self) -> dict[str, dict[str, Any]]:
        """Reply text -> the body of the request it answered (refused requests are left out)."""
        with self._lock:
            return dict(self._answered)

    def fault_body(self, fault: Fault) -> Any:
        return fault.body or _error(f"scripted fault {fault.status}", "server_error")

    def handle(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            raise Reply(
                401,
                _error(
                    "Incorrect API key provided: "
                    + headers.get("authorization", "").removeprefix("Bearer ")
                    + ". You can find your API key at https://example.invalid.",
                    "invalid_request_error",
                    "invalid_api_key",
                ),
            )
        if path == MODELS and method == "GET":
            return {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "test"}
                    for m in self.models
                ],
            }
        if path == CHAT and method == "POST":
            return self._chat(body)
        raise Reply(404, _error(f"no route {method} {path}", "invalid_request_error"))

    def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        for name in sorted(self.reject_params):
            if name in body:
                raise Reply(
                    400,
                    _error(
                        f"Unsupported parameter: '{name}' is not supported with this model.",
                        "invalid_request_error",
                        "unsupported_parameter",
                        name,
                    ),
                )
        fmt = body.get("response_format")
        if (
            self.json_object_only
            and fmt is not None
            and fmt.get("type") not in ("text", "json_object")
        ):
            raise Reply(
                500,
                _error(
                    "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', "
                    "'response_format', 'type'), 'msg': \"Input should be 'text' or "
                    "'json_object'\"}",
                    "internal_server_error",
                ),
            )
        model = body.get("model")
        if self.strict_models and model not in self.models:
            raise Reply(
                404,
                _error(
                    f"The model `{model}` does not exist or you do not have access to it.",
                    "invalid_request_error",
                    "model_not_found",
                ),
            )
        messages = body.get("messages", [])
        if self.reply is not None:
            text = self.reply(body)
        else:
            last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
            text = f"echo: {last}"
        with self._lock:
            self._answered.append((text, body))
        read = [m for m in messages if not (self.drop_system and m.get("role") == "system")]
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in read)
        usage: dict[str, Any] = {}
        if self.cached_tokens:
            cached = min(self.cached_tokens, prompt_tokens - 1)
            prompt_tokens -= cached
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            **({"system_fingerprint": self.fingerprint} if self.fingerprint else {}),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(text.split()),
                "total_tokens": prompt_tokens + len(text.split()),
                **usage,
            },
        }
