"""A fake OpenAI-compatible server that also speaks the moderation API: ``/v1/moderations``
beside ``/v1/chat/completions`` and ``/v1/models`` (tests/servers/openai_server.py).

Moderation: ``POST /v1/moderations`` with ``{"model", "input": text or [texts]}`` answers one
result per input with every category of OpenAI's omni model: a small score drawn from the text,
raised for a few words (``kill``, ``hurt`` for violence; ``idiot``, ``stupid`` for harassment),
``flagged`` when a score passes 0.5. ``max_inputs`` refuses larger batches with a 400, like a
server with a limit. Chat: structured requests (``response_format`` with a JSON schema) get a
JSON answer valid for the schema, drawn from the request's text (a judge that always answers);
others echo the last user message.

Standalone (for the walkthrough in docs/annotations.md): ``python -m tests.servers.local``.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from typing import Any

from tests.servers.base import Reply
from tests.servers.openai_server import FakeOpenAIServer, _error

MODERATIONS = "/v1/moderations"
CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
TRIGGERS = {"kill": "violence", "hurt": "violence", "idiot": "harassment", "stupid": "harassment"}


def moderation_result(text: str) -> dict[str, Any]:
    """The fake's deterministic moderation of one text."""
    scores: dict[str, float] = {}
    for category in CATEGORIES:
        digest = hashlib.sha256(f"{category}\x1f{text}".encode()).digest()
        scores[category] = round(int.from_bytes(digest[:4], "big") / 2**32 * 0.05, 6)
    words = {w.strip(".,!?;:\"'").casefold() for w in text.split()}
    for word, category in TRIGGERS.items():
        if word in words:
            scores[category] = 0.91
    categories = {c: s > 0.5 for c, s in scores.items()}
    return {
        "flagged": any(categories.values()),
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": {c: ["text"] for c in CATEGORIES},
    }


def structured_reply(body: dict[str, Any]) -> str:
    """A JSON answer valid for the request's schema, drawn from its text (else an echo)."""
    from simulator.llm.dryrun import sample_schema

    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema")
    messages = body.get("messages", [])
    if not schema:
        last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        return f"echo: {last}"
    text = "\x1f".join(str(m.get("content", "")) for m in messages[:2])
    rng = random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))
    return json.dumps(sample_schema(schema, rng))


class FakeModerationServer(FakeOpenAIServer):
    def __init__(
        self,
        *,
        max_inputs: int | None = None,
        models: tuple[str, ...] = ("fake-judge",),
        port: int = 0,
        **kw: Any,
    ) -> None:
        kw.setdefault("reply", structured_reply)
        super().__init__(models=models, **kw)
        self.max_inputs = max_inputs
        self.port = port

    def moderation_bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.seen(MODERATIONS)]

    def handle(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
        if path != MODERATIONS:
            return super().handle(method, path, body, headers)
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            raise Reply(401, _error("Incorrect API key provided.", "invalid_request_error"))
        if method != "POST" or not isinstance(body, dict) or "input" not in body:
            raise Reply(400, _error("'input' is required", "invalid_request_error", None, "input"))
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if self.max_inputs is not None and len(inputs) > self.max_inputs:
            raise Reply(
                400,
                _error(
                    f"Too many inputs: at most {self.max_inputs} per request.",
                    "invalid_request_error",
                    None,
                    "input",
                ),
            )
        return {
            "id": f"modr-{len(self.requests)}",
            "model": f"{body.get('model', 'omni-moderation-latest')}-fake",
            "created": int(time.time()),
            "results": [moderation_result(str(text)) for text in inputs],
        }
