"""The Ollama backend against a local server implementing Ollama's HTTP API: options on the wire,
listing without pulling, pulling with progress, and errors a user can act on."""

from __future__ import annotations

import pytest

from simulator.domain import ModelRef, SamplingParams
from simulator.domain.errors import LLMError
from simulator.llm.base import CallMeta, ChatMessage, ChatRequest, LLMEvent
from simulator.llm.ollama import has_model, normalise_host
from simulator.llm.registry import Backends
from simulator.settings import Settings
from tests.servers import FakeOllamaServer
from tests.servers.ollama_server import CHAT, PULL, TAGS

PARAMS = SamplingParams(
    temperature=0.42, top_p=0.77, top_k=23, num_ctx=3072, max_tokens=99, seed=31337
)


def ask(ref: ModelRef, schema: dict | None = None) -> ChatRequest:
    return ChatRequest(
        model=ref,
        messages=[ChatMessage("system", "You are a guard."), ChatMessage("user", "Report please")],
        meta=CallMeta(agent="Guard 1", role="Guard", day=2, turn=1),
        json_schema=schema,
    )


def ref_for(server: FakeOllamaServer, model: str = "llama3.2:1b", **kw: object) -> ModelRef:
    return ModelRef(provider="ollama", model=model, base_url=server.url, params=PARAMS, **kw)


async def test_chat_sends_every_option_with_the_exact_value(
    ollama_server: FakeOllamaServer, llm_settings: Settings
) -> None:
    backends = Backends(llm_settings)
    result = await backends.chat(ask(ref_for(ollama_server)))
    [body] = ollama_server.chat_bodies()
    assert body["model"] == "llama3.2:1b"
    assert body["stream"] is False
    assert body["options"] == {
        "temperature": 0.42,
        "top_p": 0.77,
        "top_k": 23,
        "num_ctx": 3072,
        "num_predict": 99,
        "seed": 31337,
    }
    assert body["messages"] == [
        {"role": "system", "content": "You are a guard."},
        {"role": "user", "content": "Report please"},
    ]
    assert result.text == "echo: Report please"
    assert result.usage.prompt_tokens == 6 and result.usage.completion_tokens == 3
    assert result.finish_reason == "stop"
    assert result.sent_params == body["options"]
    assert result.raw["message"]["content"] == "echo: Report please"
    await backends.aclose()


async def test_unset_options_are_left_out(
    ollama_server: FakeOllamaServer, llm_settings: Settings
) -> None:
    params = SamplingParams(
        temperature=1.0, top_p=None, top_k=None, num_ctx=None, max_tokens=None, seed=0
    )
    ref = ModelRef(
        provider="ollama", model="llama3.2:1b", base_url=ollama_server.url, params=params
    )
    backends = Backends(llm_settings)
    await backends.chat(ask(ref))
    assert ollama_server.chat_bodies()[0]["options"] == {"temperature": 1.0, "seed": 0}
    await backends.aclose()


async def test_structured_actions_send_the_schema_as_format(
    ollama_server: FakeOllamaServer, llm_settings: Settings
) -> None:
    schema = {"type": "object", "properties": {"vote": {"enum": ["yes", "no"]}}}
    backends = Backends(llm_settings)
    result = await backends.chat(ask(ref_for(ollama_server), schema=schema))
    assert ollama_server.chat_bodies()[0]["format"] == schema
    assert result.sent_params["format"] == schema  # exactly as sent
    await backends.aclose()


async def test_listing_never_pulls(ollama_server: FakeOllamaServer, llm_settings: Settings) -> None:
    backends = Backends(llm_settings)
    assert await backends.list_models(ref_for(ollama_server, model="other")) == ["llama3.2:1b"]
    assert ollama_server.seen(PULL) == []
    await backends.aclose()


async def test_ensure_available_pulls_only_missing_models_with_progress(
    llm_settings: Settings,
) -> None:
    with FakeOllamaServer(models={"qwen2.5:0.5b": 400}, registry={"gemma3:270m": 8000}) as server:
        events: list[LLMEvent] = []
        backends = Backends(llm_settings)
        present = ref_for(server, model="qwen2.5:0.5b")
        await backends.ensure_available([present], on_event=events.append)
        assert server.seen(PULL) == [] and events == []

        missing = ref_for(server, model="gemma3:270m")
        await backends.ensure_available([present, missing], on_event=events.append)
        [pull] = server.seen(PULL)
        assert pull.body["model"] == "gemma3:270m" and pull.body["stream"] is True
        progress = [(e.completed, e.total) for e in events if e.total]
        assert progress == [(0, 8000), (2000, 8000), (4000, 8000), (6000, 8000), (8000, 8000)]
        assert all(e.kind == "pull_progress" and e.model == "gemma3:270m" for e in events)
        assert events[-1].reason == "success"
        assert "gemma3:270m" in await backends.list_models(missing)
        # now present: a second ensure does not pull again
        await backends.ensure_available([missing])
        assert len(server.seen(PULL)) == 1
        await backends.aclose()


async def test_pulling_an_unknown_model_is_a_clear_error(llm_settings: Settings) -> None:
    with FakeOllamaServer(registry={}) as server:
        backends = Backends(llm_settings)
        with pytest.raises(LLMError, match="model 'no-such-model' not found: Ollama at") as info:
            await backends.ensure_available([ref_for(server, model="no-such-model")])
        assert "file does not exist" in str(info.value)
        await backends.aclose()


async def test_chat_with_a_missing_model_says_how_to_get_it(
    ollama_server: FakeOllamaServer, llm_settings: Settings
) -> None:
    backends = Backends(llm_settings, max_attempts=3)
    with pytest.raises(LLMError) as info:
        await backends.chat(ask(ref_for(ollama_server, model="mistral")))
    assert "model 'mistral' not found on the server Ollama at" in str(info.value)
    assert "ollama pull mistral" in str(info.value)
    assert len(ollama_server.chat_bodies()) == 1  # not retried
    await backends.aclose()


async def test_ollama_not_running_says_how_to_start_it(llm_settings: Settings) -> None:
    backends = Backends(llm_settings, max_attempts=2, backoff_s=0.01)
    ref = ModelRef(provider="ollama", model="llama3", base_url="http://127.0.0.1:9")
    with pytest.raises(LLMError) as info:
        await backends.chat(ask(ref))
    assert str(info.value).startswith(
        "Ollama is not running at http://127.0.0.1:9: start it with `ollama serve` "
        "or set OLLAMA_HOST"
    )
    with pytest.raises(LLMError, match=r"Ollama is not running at http://127\.0\.0\.1:9"):
        await backends.list_models(ref)
    await backends.aclose()


async def test_host_comes_from_settings_when_the_model_names_none(
    ollama_server: FakeOllamaServer,
) -> None:
    settings = Settings(_env_file=None, ollama_host=ollama_server.url)  # type: ignore[call-arg]
    backends = Backends(settings)
    ref = ModelRef(provider="ollama", model="llama3.2:1b", params=PARAMS)
    assert (await backends.chat(ask(ref))).text == "echo: Report please"
    assert len(ollama_server.seen(CHAT)) == 1 and ollama_server.seen(TAGS) == []
    await backends.aclose()


def test_host_normalisation_and_latest_tag() -> None:
    assert normalise_host("localhost") == "http://localhost:11434"
    assert normalise_host("gpu.lab:8080/") == "http://gpu.lab:8080"
    assert normalise_host("https://ollama.example.org") == "https://ollama.example.org:443"
    assert has_model(["llama3:latest"], "llama3")
    assert not has_model(["llama3:8b"], "llama3")
