"""Faults at the HTTP level: retries with Retry-After, timeouts, no retry on 4xx that cannot
succeed, and the per-endpoint concurrency limit, against real local HTTP servers."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from simulator.domain import ModelRef
from simulator.domain.errors import LLMError
from simulator.llm.base import CallMeta, ChatMessage, ChatRequest, LLMEvent
from simulator.llm.registry import Backends
from simulator.llm.retry import RetryPolicy, parse_retry_after
from simulator.settings import Settings
from tests.servers import FakeOllamaServer, FakeOpenAIServer, Fault
from tests.servers.ollama_server import CHAT as OLLAMA_CHAT
from tests.servers.openai_server import CHAT


def ask(ref: ModelRef, turn: int = 1) -> ChatRequest:
    return ChatRequest(
        model=ref,
        messages=[ChatMessage("user", f"turn {turn}")],
        meta=CallMeta(agent="Trader 1", role="Trader", day=1, turn=turn),
    )


def openai_ref(server: FakeOpenAIServer) -> ModelRef:
    return ModelRef(provider="openai", model="fake-model", base_url=server.base_url)


async def test_429_with_retry_after_then_500_then_success(
    openai_server: FakeOpenAIServer, llm_settings: Settings
) -> None:
    openai_server.script(CHAT, Fault(429, retry_after=1), Fault(500))
    events: list[LLMEvent] = []
    backends = Backends(llm_settings, on_event=events.append, backoff_s=0.05, max_attempts=4)
    result = await backends.chat(ask(openai_ref(openai_server)))
    assert result.text == "echo: turn 1"
    assert result.attempts == 3
    seen = openai_server.seen(CHAT)
    assert len(seen) == 3
    assert [e.kind for e in events] == ["retry", "retry"]
    assert [e.attempt for e in events] == [1, 2]
    assert events[0].reason.startswith("429:") and events[0].delay_s == 1.0  # Retry-After honoured
    assert events[1].reason.startswith("500:") and 0.025 <= events[1].delay_s <= 0.1
    assert all(e.meta is not None and e.meta.agent == "Trader 1" for e in events)
    # the second request waited for the Retry-After (a lower bound: load only lengthens it)
    assert seen[1].at - seen[0].at >= 1.0
    await backends.aclose()


async def test_a_server_that_never_answers_times_out_after_the_configured_attempts(
    openai_server: FakeOpenAIServer, llm_settings: Settings
) -> None:
    openai_server.script(CHAT, Fault(hang=True), Fault(hang=True), Fault(hang=True))
    events: list[LLMEvent] = []
    backends = Backends(
        llm_settings, on_event=events.append, timeout_s=0.8, max_attempts=3, backoff_s=0.01
    )
    chat = backends.chat(ask(openai_ref(openai_server)))
    with pytest.raises(LLMError) as info:
        # the server never answers: 3 attempts of 0.8 s each, then the error
        await asyncio.wait_for(chat, timeout=24)  # hang guard: 10x the 2.4 s expected
    message = str(info.value)
    assert message.startswith(f"no answer from openai:fake-model @ {openai_server.base_url}")
    assert "within 0.8 s (gave up after 3 attempts)" in message
    assert info.value.retryable is True
    assert len(openai_server.seen(CHAT)) == 3
    assert [e.kind for e in events] == ["retry", "retry", "failed"]
    assert all(e.reason.startswith("timeout") for e in events[:2])
    await backends.aclose()


async def test_per_model_options_override_timeout_and_attempts(
    openai_server: FakeOpenAIServer, llm_settings: Settings
) -> None:
    openai_server.script(CHAT, Fault(hang=True), Fault(hang=True))
    backends = Backends(llm_settings, timeout_s=30, max_attempts=5, backoff_s=0.01)
    ref = openai_ref(openai_server).model_copy(
        update={"options": {"timeout_s": 0.8, "max_attempts": 2}}
    )
    with pytest.raises(LLMError, match="gave up after 2 attempts"):
        await backends.chat(ask(ref))
    assert len(openai_server.seen(CHAT)) == 2
    await backends.aclose()


@pytest.mark.parametrize("status", [401, 403, 400])
async def test_4xx_that_cannot_succeed_fails_at_once(
    openai_server: FakeOpenAIServer, llm_settings: Settings, status: int
) -> None:
    openai_server.script(CHAT, Fault(status))
    events: list[LLMEvent] = []
    backends = Backends(llm_settings, on_event=events.append, max_attempts=4)
    with pytest.raises(LLMError) as info:
        await backends.chat(ask(openai_ref(openai_server)))
    assert len(openai_server.seen(CHAT)) == 1
    assert [e.kind for e in events] == ["failed"]
    assert info.value.retryable is False
    if status in (401, 403):
        assert "the API key was rejected by" in str(info.value)
    else:
        assert f"rejected the request (HTTP {status})" in str(info.value)
    await backends.aclose()


async def test_ollama_503_is_retried(llm_settings: Settings) -> None:
    with FakeOllamaServer() as server:
        server.script(OLLAMA_CHAT, Fault(503, body={"error": "server busy"}))
        events: list[LLMEvent] = []
        backends = Backends(llm_settings, on_event=events.append, backoff_s=0.01)
        ref = ModelRef(provider="ollama", model="llama3.2:1b", base_url=server.url)
        result = await backends.chat(ask(ref))
        assert result.attempts == 2 and result.text == "echo: turn 1"
        assert [e.kind for e in events] == ["retry"] and "server busy" in events[0].reason
        await backends.aclose()


async def _overlap(server: FakeOpenAIServer | FakeOllamaServer, ref: ModelRef, limit: int) -> int:
    server.delay_s = 0.1
    backends = Backends(Settings(_env_file=None), limits={ref.provider.value: limit})  # type: ignore[call-arg]
    results = await asyncio.gather(*(backends.chat(ask(ref, turn)) for turn in range(10)))
    assert [r.text for r in results] == [f"echo: turn {t}" for t in range(10)]
    await backends.aclose()
    return server.max_in_flight


async def test_concurrency_limit_of_two_is_never_exceeded_openai() -> None:
    with FakeOpenAIServer() as server:
        assert await _overlap(server, openai_ref(server), 2) == 2
        assert len(server.seen(CHAT)) == 10
    with FakeOpenAIServer() as server:  # the server does see more at once without that limit
        assert await _overlap(server, openai_ref(server), 8) > 2


async def test_concurrency_limit_of_two_is_never_exceeded_ollama() -> None:
    with FakeOllamaServer() as server:
        ref = ModelRef(provider="ollama", model="llama3.2:1b", base_url=server.url)
        assert await _overlap(server, ref, 2) == 2


async def test_limits_are_per_endpoint(llm_settings: Settings) -> None:
    with FakeOpenAIServer() as a, FakeOpenAIServer() as b:
        a.delay_s = b.delay_s = 0.1
        ref_a, ref_b = openai_ref(a), openai_ref(b)
        backends = Backends(llm_settings, limits={ref_a.endpoint: 1, "openai": 3})
        assert backends.limit_for(ref_a) == 1 and backends.limit_for(ref_b) == 3
        calls = [backends.chat(ask(r, t)) for t in range(6) for r in (ref_a, ref_b)]
        await asyncio.gather(*calls)
        assert a.max_in_flight == 1 and b.max_in_flight == 3
        await backends.aclose()


def test_default_limits_come_from_settings() -> None:
    settings = Settings(_env_file=None, ollama_concurrency=3, openai_concurrency=5)  # type: ignore[call-arg]
    backends = Backends(settings)
    assert backends.limit_for(ModelRef(provider="ollama", model="x")) == 3
    assert backends.limit_for(ModelRef(provider="openai", model="x")) == 5
    assert backends.limit_for(ModelRef(provider="dryrun", model="x")) == 64


def test_retry_after_parsing_and_backoff() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    sent = datetime.now(UTC)
    later = format_datetime(sent + timedelta(seconds=30), usegmt=True)  # whole seconds
    wait = parse_retry_after({"retry-after": later}) or 0
    # what is left of the 30 s when it was parsed, however long that took on a loaded machine
    passed = (datetime.now(UTC) - sent).total_seconds()
    assert 30 - 1 - passed <= wait <= 30
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    policy = RetryPolicy(backoff_s=1.0, max_backoff_s=5.0)
    rng = random.Random(0)
    for attempt, (lo, hi) in enumerate([(0.5, 1), (1, 2), (2, 4), (2.5, 5), (2.5, 5)], start=1):
        assert lo <= policy.delay(attempt, None, rng) <= hi
    assert policy.delay(1, 7.0, rng) == 7.0
    assert policy.delay(1, 10_000, rng) == 300.0


async def test_a_failing_event_listener_does_not_fail_the_call(
    openai_server: FakeOpenAIServer, llm_settings: Settings
) -> None:
    openai_server.script(CHAT, Fault(502))

    async def broken(event: LLMEvent) -> None:
        raise RuntimeError("listener bug")

    backends = Backends(llm_settings, on_event=broken, backoff_s=0.01)
    result = await backends.chat(ask(openai_ref(openai_server)))
    assert result.attempts == 2
    await backends.aclose()


async def test_ollama_that_never_answers_times_out(llm_settings: Settings) -> None:
    with FakeOllamaServer() as server:
        server.script(OLLAMA_CHAT, Fault(hang=True), Fault(hang=True))
        backends = Backends(llm_settings, timeout_s=0.8, max_attempts=2, backoff_s=0.01)
        ref = ModelRef(provider="ollama", model="llama3.2:1b", base_url=server.url)
        with pytest.raises(LLMError, match=r"within 0\.8 s \(gave up after 2 attempts\)"):
            await backends.chat(ask(ref))
        assert len(server.seen(OLLAMA_CHAT)) == 2
        await backends.aclose()


def test_one_backends_object_serves_successive_event_loops() -> None:
    """The CLI and tests may call asyncio.run more than once with the same Backends."""
    with FakeOpenAIServer() as server:
        server.delay_s = 0.05
        backends = Backends(Settings(_env_file=None), limits={"openai": 1})  # type: ignore[call-arg]

        async def burst() -> list[str]:
            results = await asyncio.gather(
                *(backends.chat(ask(openai_ref(server), t)) for t in range(3))
            )
            await backends.aclose()
            return [r.text for r in results]

        assert asyncio.run(burst()) == ["echo: turn 0", "echo: turn 1", "echo: turn 2"]
        assert asyncio.run(burst()) == ["echo: turn 0", "echo: turn 1", "echo: turn 2"]
        assert server.max_in_flight == 1
