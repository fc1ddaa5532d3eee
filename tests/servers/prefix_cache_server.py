"""A fake OpenAI-compatible server with a prompt cache, as vLLM's and llama.cpp's work: a request
whose messages begin with messages it has already read is charged only for the rest, and says
how many prompt tokens came from its cache in ``usage.prompt_tokens_details.cached_tokens``
(counted inside ``prompt_tokens``, as OpenAI and vLLM count them). The cache is kept per
``prompt_cache_key`` when a request carries one (OpenAI routes by it), else shared.

Tokens are words, as in ``FakeOpenAIServer``; a prefix is reused whole messages at a time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from tests.servers.openai_server import FakeOpenAIServer


def _digest(messages: list[Any]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


class PrefixCacheServer(FakeOpenAIServer):
    def __init__(self, *, reply: Callable[[dict[str, Any]], str] | None = None) -> None:
        super().__init__(reply=reply)
        self._cached: set[tuple[str, str]] = set()  # (prompt_cache_key, digest of a prefix)

    def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = super()._chat(body)
        messages = body.get("messages", [])
        route = str(body.get("prompt_cache_key", ""))
        words = [len(str(m.get("content", "")).split()) for m in messages]
        cached = 0
        with self._lock:
            for n in range(len(messages), 0, -1):  # the longest prefix read before
                if (route, _digest(messages[:n])) in self._cached:
                    cached = sum(words[:n])
                    break
            for n in range(1, len(messages) + 1):
                self._cached.add((route, _digest(messages[:n])))
        usage = answer["usage"]
        usage["prompt_tokens"] = sum(words)
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
        return answer
