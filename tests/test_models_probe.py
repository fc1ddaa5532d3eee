"""Listing a server's models and testing a model's connection before a batch (issue 29, point 5):
``simulator.llm.probe`` against the local OpenAI-compatible and Ollama-API servers, and the
editor's Models tab driven by Pilot."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr
from textual.widgets import Input, OptionList, Select, Static, TabbedContent

from simulator.domain import ModelRef, Provider
from simulator.llm.probe import (
    MODEL_NOT_FOUND,
    UNAUTHORIZED,
    UNREACHABLE,
    ProbeError,
    check_connection,
    list_models,
)
from simulator.settings import Settings
from simulator.tui.app import SimulatorApp
from simulator.tui.screens.editor import EditorScreen
from tests.plugins.tui import sample_experiment, wait_library, wait_until
from tests.servers import FakeOllamaServer, FakeOpenAIServer

KEY = "sk-test-probe-1234567890"
CLOSED = "http://127.0.0.1:9/v1"  # nothing listens on the discard port


def openai(model: str, base_url: str) -> ModelRef:
    return ModelRef(provider=Provider.openai, model=model, base_url=base_url)


async def test_an_openai_compatible_server_lists_its_models_with_the_key(
    llm_settings: Settings,
) -> None:
    keyed = llm_settings.model_copy(update={"openai_api_key": SecretStr(KEY)})
    with FakeOpenAIServer(api_key=KEY, models=("qwen2.5", "llama-3.1-8b")) as server:
        assert await list_models(openai("any", server.base_url), keyed) == [
            "llama-3.1-8b",
            "qwen2.5",
        ]
        (request,) = server.seen("/v1/models")
        assert request.headers["authorization"] == f"Bearer {KEY}"

        # Without the key, or with a wrong one: 401, said so, and no key in the message.
        wrong = llm_settings.model_copy(update={"openai_api_key": SecretStr("sk-wrong-9876")})
        for settings, said in ((llm_settings, "missing"), (wrong, "rejected")):
            try:
                await list_models(openai("any", server.base_url), settings)
            except ProbeError as exc:
                assert exc.problem == UNAUTHORIZED and "HTTP 401" in str(exc)
                assert said in str(exc) and "sk-wrong" not in str(exc)
            else:
                raise AssertionError("a refused key must fail")


async def test_testing_a_model_says_ok_with_latency_or_what_failed(
    llm_settings: Settings,
) -> None:
    with FakeOpenAIServer(models=("qwen2.5",), strict_models=True) as strict:
        ok = await check_connection(openai("qwen2.5", strict.base_url), llm_settings)
        assert ok.ok and ok.latency_ms is not None and ok.latency_ms >= 0
        assert ok.message.startswith("ok:") and " ms)" in ok.message
        assert not strict.seen("/v1/chat/completions")  # listed: no call needed

        missing = await check_connection(openai("gpt-nope", strict.base_url), llm_settings)
        assert not missing.ok and missing.problem == MODEL_NOT_FOUND
        assert "gpt-nope" in missing.message and "qwen2.5" in missing.message
        (body,) = strict.chat_bodies()  # not listed: one token decided
        assert body["max_tokens"] == 1 and body["model"] == "gpt-nope"

    with FakeOpenAIServer(models=("alias",)) as lenient:  # answers for any name
        answered = await check_connection(openai("real-name", lenient.base_url), llm_settings)
        assert answered.ok and "does not list it" in answered.message

    down = await check_connection(openai("qwen2.5", CLOSED), llm_settings)
    assert not down.ok and down.problem == UNREACHABLE and "127.0.0.1:9" in down.message

    dryrun = await check_connection(ModelRef(), llm_settings)
    assert dryrun.ok


async def test_testing_an_ollama_model(llm_settings: Settings) -> None:
    with FakeOllamaServer(models={"llama3.2:1b": 1}) as server:
        ref = ModelRef(provider=Provider.ollama, model="llama3.2:1b", base_url=server.url)
        assert (await check_connection(ref, llm_settings)).ok
        missing = await check_connection(ref.model_copy(update={"model": "qwen"}), llm_settings)
        assert not missing.ok and missing.problem == MODEL_NOT_FOUND and "pull" in missing.message
        assert await list_models(ref, llm_settings) == ["llama3.2:1b"]


def status_text(editor: EditorScreen) -> str:
    return str(editor.query_one("#models-status", Static).render())


async def open_models_tab(pilot: Any, app: SimulatorApp) -> EditorScreen:
    await wait_library(pilot)
    await pilot.press("o")
    await wait_until(pilot, lambda: isinstance(app.screen, EditorScreen), what="editor")
    editor: EditorScreen = app.screen  # type: ignore[assignment]
    await pilot.press("f5")
    await wait_until(pilot, lambda: editor.query_one(TabbedContent).active == "tab-models")
    return editor


async def test_models_tab_lists_an_openai_compatible_server_and_tests_models(
    store: Any, tui_settings: Settings
) -> None:
    await store.experiments.create(sample_experiment())
    settings = tui_settings.model_copy(update={"openai_api_key": SecretStr(KEY)})
    with FakeOpenAIServer(api_key=KEY, models=("qwen2.5", "phi-4"), strict_models=True) as server:
        app = SimulatorApp(settings, store=store, user="alice", offer_example=False)
        async with app.run_test(size=(100, 30)) as pilot:
            editor = await open_models_tab(pilot, app)
            pane = editor.query_one("#models-pane")
            editor.query_one("#model-provider", Select).value = "openai"
            editor.query_one("#model-url", Input).value = server.base_url
            editor.query_one("#model-name", Input).value = "qwen2.5"
            await wait_until(pilot, lambda: editor.draft.models[0].model == "qwen2.5")

            # ctrl+l in the list: the server's models, to pick from.
            editor.query_one("#model-list", OptionList).focus()
            await pilot.press("ctrl+l")
            await wait_until(pilot, lambda: pane.listings >= 1, what="the listing")
            listed = editor.query_one("#model-installed", Select)
            assert [v for _, v in listed._options if isinstance(v, str)] == ["phi-4", "qwen2.5"]
            assert f"{server.base_url} offers 2 models" in status_text(editor)

            # ctrl+t: ok, with the latency.
            await pilot.press("ctrl+t")
            await wait_until(pilot, lambda: pane.tests >= 1, what="the test")
            assert "✓" in status_text(editor) and "ok:" in status_text(editor)
            assert " ms)" in status_text(editor)

            # A model the server does not have: said before any batch starts.
            editor.query_one("#model-name", Input).value = "gpt-typo"
            await wait_until(pilot, lambda: editor.draft.models[0].model == "gpt-typo")
            editor.query_one("#model-list", OptionList).focus()
            await pilot.press("ctrl+t")
            await wait_until(pilot, lambda: pane.tests >= 2, what="the second test")
            assert "model not found" in status_text(editor) and "⚠" in status_text(editor)

            # A wrong base URL: unreachable, said at once (the Test button this time).
            editor.query_one("#model-url", Input).value = CLOSED
            await wait_until(pilot, lambda: editor.draft.models[0].base_url == CLOSED)
            await pilot.click("#model-test")
            await wait_until(pilot, lambda: pane.tests >= 3, what="the third test")
            assert "unreachable" in status_text(editor) and "127.0.0.1:9" in status_text(editor)
            assert KEY not in status_text(editor)


async def test_models_tab_tests_an_ollama_model(
    store: Any, tui_settings: Settings, ollama_server: Any
) -> None:
    await store.experiments.create(sample_experiment())
    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = await open_models_tab(pilot, app)
        pane = editor.query_one("#models-pane")
        editor.query_one("#model-url", Input).value = ollama_server.url
        editor.query_one("#model-provider", Select).value = "ollama"
        editor.query_one("#model-name", Input).value = "llama3.2:1b"
        await wait_until(pilot, lambda: editor.draft.models[0].model == "llama3.2:1b")
        editor.query_one("#model-list", OptionList).focus()
        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: pane.tests >= 1, what="the test")
        assert "✓" in status_text(editor) and f"Ollama at {ollama_server.url}" in status_text(
            editor
        )
