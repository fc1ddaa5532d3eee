"""The response cache's key (llm/cache.py) and the per-conversation positions of identical
requests (llm/metered.py), against the real embedded store."""

from __future__ import annotations

from typing import Any

from simulator.domain import (
    CachedResponse,
    CacheMode,
    CacheRecord,
    Message,
    ModelRef,
    Provider,
    SamplingParams,
)
from simulator.llm.base import CallMeta, ChatMessage, ChatRequest, ChatResult
from simulator.llm.cache import cache_key, key_fields, request_digest
from simulator.llm.metered import BatchCalls
from simulator.llm.registry import Backends
from simulator.settings import Settings


def request(ref: ModelRef, text: str = "Hello", **meta: Any) -> ChatRequest:
    return ChatRequest(
        model=ref,
        messages=[ChatMessage("system", "You are a guard."), ChatMessage("user", text)],
        meta=CallMeta(agent="Guard 1", role="Guard", day=1, turn=1, **meta),
    )


def key(req: ChatRequest, *, seed: int = 1, replicate: tuple[int, int] = (0, 0)) -> str:
    backends = Backends(Settings(_env_file=None))  # type: ignore[call-arg]
    fields = key_fields(req, params=backends.cache_inputs(req), seed=seed, model_digest=None)
    return cache_key(fields, replicate)


def test_what_the_key_holds_and_what_it_leaves_out() -> None:
    params = SamplingParams(temperature=0.5, top_p=0.9, top_k=40, max_tokens=64, seed=None)
    a = ModelRef(provider=Provider.openai, model="m", base_url="http://a:8000/v1", params=params)
    b = a.model_copy(update={"base_url": "http://b:8000/v1"})
    base = key(request(a))
    # the endpoint is provenance, not key: replicas of a model share answers
    assert key(request(b)) == base
    # what OpenAI-compatible servers are not sent does not split answers either
    assert key(
        request(a.model_copy(update={"params": params.model_copy(update={"top_k": 7})}))
    ) == (base)
    # every sampling parameter sent, the messages, the seed, the replicate, the model, the
    # provider, a schema: each gives another key
    changed = [
        key(
            request(a.model_copy(update={"params": params.model_copy(update={"temperature": 0.6})}))
        ),
        key(request(a, "Hello!")),
        key(request(a), seed=2),
        key(request(a), replicate=(1, 0)),
        key(request(a), replicate=(0, 1)),
        key(request(a.model_copy(update={"model": "n"}))),
        key(request(a.model_copy(update={"provider": Provider.ollama, "base_url": None}))),
        key(ChatRequest(model=a, messages=request(a).messages, json_schema={"type": "object"})),
    ]
    assert base not in changed and len(set(changed)) == len(changed)
    # a routing hint and the call's meta do not shape a real model's answer
    assert key(request(a, purpose="summary")) == base
    hinted = ChatRequest(model=a, messages=request(a).messages, prompt_cache_key="conv-1")
    assert key(hinted) == base
    # the dryrun backend's replies depend on the call's meta: its key does too
    dry = ModelRef()
    assert key(request(dry)) != key(request(dry, purpose="summary"))
    # the key is the SHA-256 of canonical JSON: stable across processes and versions
    fields = key_fields(request(a), params={"temperature": 0.5}, seed=1, model_digest="sha256:x")
    assert len(cache_key(fields, (0, 0))) == 64
    assert request_digest(fields) == request_digest(dict(reversed(list(fields.items()))))


class Recording:
    """A chat backend that answers ``answer <n>`` and counts calls (the call path only)."""

    def __init__(self) -> None:
        self.calls = 0

    async def chat(self, req: ChatRequest) -> ChatResult:
        from simulator.domain import TokenUsage

        self.calls += 1
        return ChatResult(
            text=f"answer {self.calls}",
            usage=TokenUsage(prompt_tokens=10, completion_tokens=2),
            latency_ms=1.0,
            finish_reason="stop",
            raw={},
        )

    def cache_inputs(self, req: ChatRequest) -> dict[str, Any]:
        return {"temperature": req.model.params.temperature}


async def test_identical_requests_get_positions_that_survive_a_resume(store: Any) -> None:
    """A conversation asking the same request three times gets three answers; resumed after the
    first, it reuses that one and then asks for the second position, as the whole run did."""
    ref = ModelRef(provider=Provider.openai, model="m", base_url="http://x:1/v1")
    req = request(ref)
    backend = Recording()
    calls = BatchCalls(backend, batch_id="b", mode=CacheMode.reuse, responses=store.responses)
    whole = calls.for_conversation("c1", repeat=0, seed=5)
    first = [await whole.chat(req) for _ in range(3)]
    assert [r.text for r in first] == ["answer 1", "answer 2", "answer 3"]
    assert [r.cache.replicate for r in first if r.cache] == [(0, 0), (0, 1), (0, 2)]
    assert backend.calls == 3

    # the same conversation resumed after its first call was stored: its message records the
    # request, so the next identical request takes position 1 (served: "answer 2")
    assert first[0].cache is not None
    stored = Message(
        conversation_id="c1",
        seq=1,
        speaker="Guard 1",
        role="Guard",
        model=ref,
        cache=CacheRecord(hit=False, key=first[0].cache.key, requests=[first[0].cache.request]),
    )

    async def load() -> list[Message]:
        return [stored]

    resumed = calls.for_conversation("c1", repeat=0, seed=5, stored=load)
    again = [await resumed.chat(req) for _ in range(2)]
    assert [r.text for r in again] == ["answer 2", "answer 3"]
    assert all(r.cache is not None and r.cache.hit for r in again)
    assert backend.calls == 3
    # another repeat of the cell never gets this conversation's answers
    other = calls.for_conversation("c2", repeat=1, seed=5)
    assert (await other.chat(req)).text == "answer 4"
    assert calls.ledger.calls == 4 and calls.ledger.cache_hits == 2
    entry = await store.responses.get(first[0].cache.key)
    assert isinstance(entry, CachedResponse) and entry.text == "answer 1"
    assert entry.replicate == [0, 0] and entry.conversation_id == "c1" and entry.seed == 5
    assert entry.endpoint == ref.endpoint and entry.params == {"temperature": 0.7}
