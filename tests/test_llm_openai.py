"""The OpenAI backend against a local OpenAI-compatible HTTP server: what goes on the wire."""

from __future__ import annotations

import pytest

from simulator.domain import ModelRef, SamplingParams
from simulator.domain.errors import LLMError
from simulator.llm.base import CallMeta, ChatMessage, ChatRequest, LLMEvent
from simulator.llm.registry import Backends
from simulator.settings import Settings
from tests.servers import FakeOpenAIServer
from tests.servers.openai_server import CHAT, MODELS

PARAMS = SamplingParams(
    temperature=0.35, top_p=0.81, top_k=17, num_ctx=2048, max_tokens=77, seed=4242
)


def ask(ref: ModelRef, text: str = "Hello there", schema: dict | None = None) -> ChatRequest:
    return ChatRequest(
        model=ref,
        messages=[ChatMessage("system", "You are a fisher."), ChatMessage("user", text)],
        meta=CallMeta(agent="Fisher 1", role="Fisher", day=1, turn=2),
        json_schema=schema,
    )


def ref_for(server: FakeOpenAIServer, **kw: object) -> ModelRef:
    return ModelRef(
        provider="openai", model="fake-model", base_url=server.base_url, params=PARAMS, **kw
    )


async def test_sends_the_exact_sampling_parameters(
    openai_server: FakeOpenAIServer, llm_settings: Settings
) -> None:
    backends = Backends(llm_settings)
    result = await backends.chat(ask(ref_for(openai_server)))
    assert result.text == "echo: Hello there"
    assert result.usage.prompt_tokens == 6 and result.usage.completion_tokens == 3
    assert result.finish_reason == "stop" and result.attempts == 1
    assert result.raw["choices"][0]["message"]["content"] == "echo: Hello there"
    [body] = openai_server.chat_bodies()
    assert body["model"] == "fake-model"
    assert body["temperature"] == 0.35
    assert body["top_p"] == 0.81
    assert body["max_tokens"] == 77
    assert body["seed"] == 4242
    assert body["messages"] == [
        {"role": "system", "content": "You are a fisher."},
        {"role": "user", "content": "Hello there"},
    ]
    assert "top_k" not in body and "num_ctx" not in body  # not OpenAI parameters
    assert result.sent_params == {
        "temperature": 0.35,
        "top_p": 0.81,
        "max_tokens": 77,
        "seed": 4242,
    }
    assert result.dropped_params == []
    await backends.aclose()


async def test_unset_parameters_are_not_sent(
    openai_server: FakeOpenAIServer, llm_settings: Settings
) -> None:
    params = SamplingParams(temperature=0.0, top_p=None, max_tokens=None, seed=None)
    ref = ModelRef(provider="openai", model="m", base_url=openai_server.base_url, params=params)
    backends = Backends(llm_settings)
    result = await backends.chat(ask(ref))
    [body] = openai_server.chat_bodies()
    assert body["temperature"] == 0.0
    assert not {"top_p", "max_tokens", "seed"} & body.keys()
    assert result.sent_params == {"temperature": 0.0}
    await backends.aclose()


async def test_a_refused_parameter_is_dropped_and_recorded(llm_settings: Settings) -> None:
    with FakeOpenAIServer(reject_params=("seed",)) as server:
        backends = Backends(llm_settings)
        first = await backends.chat(ask(ref_for(server)))
        assert first.dropped_params == ["seed"]
        assert "seed" not in first.sent_params and first.sent_params["temperature"] == 0.35
        bodies = server.chat_bodies()
        assert len(bodies) == 2 and bodies[0]["seed"] == 4242 and "seed" not in bodies[1]
        # the next call to the same model leaves it out from the start, and still says so
        second = await backends.chat(ask(ref_for(server)))
        assert second.dropped_params == ["seed"]
        assert len(server.chat_bodies()) == 3
        await backends.aclose()


async def test_calls_refused_at_the_same_time_all_go_through_without_the_parameter(
    llm_settings: Settings,
) -> None:
    """Several first calls are refused together: the first refusal teaches the backend, and the
    others, sent before it learnt, are sent again without the parameter instead of failing."""
    import asyncio

    with FakeOpenAIServer(reject_params=("seed",)) as server:
        server.delay_s = 0.2  # the calls overlap on the server
        backends = Backends(llm_settings)
        results = await asyncio.gather(*(backends.chat(ask(ref_for(server))) for _ in range(3)))
        await backends.aclose()
        bodies = server.chat_bodies()
    assert all(r.dropped_params == ["seed"] and "seed" not in r.sent_params for r in results)
    assert server.max_in_flight >= 2
    assert len(bodies) == 6 and sum("seed" in b for b in bodies) == 3


async def test_max_tokens_is_renamed_when_the_server_asks_for_max_completion_tokens(
    llm_settings: Settings,
) -> None:
    from tests.servers import Fault

    with FakeOpenAIServer() as server:
        server.script(
            CHAT,
            Fault(
                400,
                body={
                    "error": {
                        "message": "Unsupported parameter: 'max_tokens' is not supported with "
                        "this model. Use 'max_completion_tokens' instead.",
                        "type": "invalid_request_error",
                        "param": "max_tokens",
                        "code": "unsupported_parameter",
                    }
                },
            ),
        )
        backends = Backends(llm_settings)
        result = await backends.chat(ask(ref_for(server)))
        second = server.chat_bodies()[1]
        assert second["max_completion_tokens"] == 77 and "max_tokens" not in second
        assert result.sent_params["max_completion_tokens"] == 77
        assert result.dropped_params == []
        await backends.aclose()


async def test_structured_actions_send_a_json_schema(
    openai_server: FakeOpenAIServer, llm_settings: Settings
) -> None:
    schema = {"type": "object", "properties": {"catch": {"type": "integer"}}}
    backends = Backends(llm_settings)
    await backends.chat(ask(ref_for(openai_server), schema=schema))
    [body] = openai_server.chat_bodies()
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == schema
    await backends.aclose()


async def test_api_key_is_sent_and_a_wrong_one_fails_at_once_without_leaking(
    llm_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    good, bad = "sk-test-GOODKEY-1234567890", "sk-test-WRONGKEY-0987654321"
    events: list[LLMEvent] = []
    with FakeOpenAIServer(api_key=good) as server:
        ok = Backends(Settings(_env_file=None, openai_api_key=good))  # type: ignore[call-arg]
        assert (await ok.chat(ask(ref_for(server)))).text.startswith("echo:")
        assert server.seen(CHAT)[0].headers["authorization"] == f"Bearer {good}"
        await ok.aclose()

        backends = Backends(
            Settings(_env_file=None, openai_api_key=bad),  # type: ignore[call-arg]
            on_event=events.append,
            max_attempts=5,
        )
        with pytest.raises(LLMError) as info:
            await backends.chat(ask(ref_for(server)))
        assert len(server.seen(CHAT)) == 2  # one good call above, exactly one rejected here
        message = str(info.value)
        assert "the API key was rejected by" in message and "OPENAI_API_KEY" in message
        assert bad not in message and "WRONGKEY" not in message
        assert info.value.retryable is False
        assert [e.kind for e in events] == ["failed"]
        assert "WRONGKEY" not in events[0].reason
        assert "failed" in caplog.text and "WRONGKEY" not in caplog.text
        await backends.aclose()


async def test_api_key_from_a_named_environment_variable(
    llm_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_LAB_KEY", "sk-lab-abcdef123456")
    with FakeOpenAIServer(api_key="sk-lab-abcdef123456") as server:
        backends = Backends(llm_settings)
        ref = ref_for(server, options={"api_key_env": "MY_LAB_KEY"})
        assert (await backends.chat(ask(ref))).text == "echo: Hello there"
        await backends.aclose()


async def test_unknown_model_is_not_retried(llm_settings: Settings) -> None:
    with FakeOpenAIServer(strict_models=True) as server:
        backends = Backends(llm_settings, max_attempts=4)
        ref = ModelRef(provider="openai", model="gpt-nope", base_url=server.base_url)
        with pytest.raises(LLMError, match="model 'gpt-nope' not found on the server"):
            await backends.chat(ask(ref))
        assert len(server.seen(CHAT)) == 1
        await backends.aclose()


async def test_list_models_lists_and_ensure_available_checks_the_server(
    llm_settings: Settings,
) -> None:
    with FakeOpenAIServer(models=("b-model", "a-model")) as server:
        backends = Backends(llm_settings)
        ref = ModelRef(provider="openai", model="a-model", base_url=server.base_url)
        assert await backends.list_models(ref) == ["a-model", "b-model"]
        await backends.ensure_available([ref, ref])
        assert len(server.seen(MODELS)) == 2  # once for the listing, once for the two refs
        assert server.seen(CHAT) == []
        await backends.aclose()


async def test_unreachable_server_names_the_url(llm_settings: Settings) -> None:
    backends = Backends(llm_settings, max_attempts=2, backoff_s=0.01)
    ref = ModelRef(provider="openai", model="m", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(LLMError) as info:
        await backends.chat(ask(ref))
    message = str(info.value)
    assert "cannot reach the OpenAI-compatible server at http://127.0.0.1:9/v1" in message
    assert "gave up after 2 attempts" in message
    await backends.aclose()


async def test_structured_actions_fall_back_to_json_object_for_llama_cpp_style_servers(
    llm_settings: Settings,
) -> None:
    schema = {"type": "object", "properties": {"vote": {"enum": ["yes", "no"]}}}
    events: list[LLMEvent] = []
    with FakeOpenAIServer(json_object_only=True) as server:
        backends = Backends(llm_settings, on_event=events.append)
        result = await backends.chat(ask(ref_for(server), schema=schema))
        first, second = server.chat_bodies()
        assert first["response_format"]["type"] == "json_schema"
        assert second["response_format"] == {"type": "json_object", "schema": schema}
        assert result.sent_params["response_format"]["type"] == "json_object"
        assert result.attempts == 1 and events == []  # an adaptation, not a retry
        await backends.chat(ask(ref_for(server), schema=schema))
        assert server.chat_bodies()[2]["response_format"]["type"] == "json_object"
        await backends.aclose()


async def test_a_parameter_refused_twice_is_not_retried_forever(llm_settings: Settings) -> None:
    from tests.servers import Fault

    refusal = {"error": {"message": "Unsupported parameter: 'seed'", "param": "seed"}}
    with FakeOpenAIServer() as server:
        server.script(CHAT, *[Fault(400, body=refusal) for _ in range(3)])
        backends = Backends(llm_settings)
        with pytest.raises(LLMError, match=r"rejected the request \(HTTP 400\)"):
            await backends.chat(ask(ref_for(server)))
        assert len(server.chat_bodies()) == 2
        await backends.aclose()
