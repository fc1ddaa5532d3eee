"""A fake Ollama server implementing the parts of its documented API we use: ``GET /api/tags``,
``POST /api/pull`` (streaming NDJSON progress), ``POST /api/chat`` (non-streaming) and
``POST /api/show``.

``models``: what is installed (name -> size). ``registry``: what a pull can fetch (name -> size);
None means every name can be pulled. A pulled model is installed afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.servers.base import FakeServer, Reply, Stream

TAGS = "/api/tags"
PULL = "/api/pull"
CHAT = "/api/chat"
SHOW = "/api/show"


def _full(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


class FakeOllamaServer(FakeServer):
    def __init__(
        self,
        *,
        models: dict[str, int] | None = None,
        registry: dict[str, int] | None = None,
        reply: Callable[[dict[str, Any]], str] | None = None,
        pull_steps: int = 4,
    ) -> None:
        super().__init__()
        self.models = {_full(k): v for k, v in (models or {"llama3.2:1b": 1_300_000_000}).items()}
        self.registry = None if registry is None else {_full(k): v for k, v in registry.items()}
        self.reply = reply
        self.pull_steps = pull_steps

    def chat_bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.seen(CHAT)]

    def handle(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
        now = datetime.now(UTC).isoformat()
        if path == TAGS and method == "GET":
            return {
                "models": [
                    {
                        "name": name,
                        "model": name,
                        "modified_at": now,
                        "size": size,
                        "digest": f"{abs(hash(name)):064x}"[:64],
                        "details": {"format": "gguf", "family": "llama"},
                    }
                    for name, size in sorted(self.models.items())
                ]
            }
        if path == PULL and method == "POST":
            return self._pull(body)
        if path == SHOW and method == "POST":
            name = _full(body.get("model") or body.get("name") or "")
            if name not in self.models:
                raise Reply(404, {"error": f"model '{body.get('model')}' not found"})
            return {"modelfile": "", "parameters": "", "template": "", "details": {}}
        if path == CHAT and method == "POST":
            return self._chat(body, now)
        raise Reply(404, {"error": f"no route {method} {path}"})

    def _pull(self, body: dict[str, Any]) -> Stream:
        name = _full(body.get("model") or body.get("name") or "")
        if self.registry is not None and name not in self.registry:
            return Stream(
                [
                    {"status": "pulling manifest"},
                    {"error": "pull model manifest: file does not exist"},
                ]
            )
        total = (self.registry or {}).get(name, 1000)
        digest = "sha256:" + "ab" * 32
        parts: list[dict[str, Any]] = [{"status": "pulling manifest"}]
        for i in range(self.pull_steps + 1):
            completed = total * i // self.pull_steps
            parts.append(
                {
                    "status": f"pulling {digest[7:19]}",
                    "digest": digest,
                    "total": total,
                    "completed": completed,
                }
            )
        parts += [
            {"status": "verifying sha256 digest"},
            {"status": "writing manifest"},
            {"status": "success"},
        ]
        self.models[name] = total
        return Stream(parts)

    def _chat(self, body: dict[str, Any], now: str) -> dict[str, Any]:
        model = body.get("model", "")
        if _full(model) not in self.models:
            raise Reply(404, {"error": f'model "{model}" not found, try pulling it first'})
        messages = body.get("messages", [])
        if self.reply is not None:
            text = self.reply(body)
        else:
            last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
            text = f"echo: {last}"
        return {
            "model": model,
            "created_at": now,
            "message": {"role": "assistant", "content": text},
            "done": True,
            "done_reason": "stop",
            "total_duration": 1_000_000,
            "prompt_eval_count": sum(len(str(m.get("content", "")).split()) for m in messages),
            "eval_count": len(text.split()),
        }
