"""Model pools: one model served by several endpoints. A batch on a pool of three local servers,
one of them stopped mid-batch, completes on the other two; each server counts the calls it had
at once, never more than its own limit; each message says which endpoint answered (never a
key)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from simulator.db.store import ConversationFilter
from simulator.domain import (
    BatchSpec,
    Experiment,
    ModelRef,
    ModelSet,
    PoolEndpoint,
    Provider,
    Status,
)
from simulator.engine.batch import BatchRunner
from simulator.llm.base import ChatMessage, ChatRequest
from simulator.llm.pools import Pool
from simulator.llm.registry import Backends
from tests.plugins.waiting import wait_until
from tests.servers.base import Fault
from tests.servers.openai_server import CHAT, FakeOpenAIServer
from tests.test_batch import _assert_complete_and_exact

LIMIT = 2  # each server's own concurrency limit
KEY = "sk-pool-test-0123456789abcdef"


async def test_a_pool_loses_a_server_mid_batch_and_finishes_on_the_others_within_each_limit(
    store: Any, prison_experiment: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POOL_TEST_KEY", KEY)
    servers = [FakeOpenAIServer(api_key=KEY if i == 2 else None).start() for i in range(3)]
    backends = Backends(backoff_s=0.01, max_backoff_s=0.05)
    try:
        for server in servers:
            server.delay_s = 0.02  # calls overlap: the limits are tested
        endpoints = [
            PoolEndpoint(base_url=s.base_url, concurrency=LIMIT, name=f"gpu{i}")
            for i, s in enumerate(servers)
        ]
        endpoints[2] = endpoints[2].model_copy(update={"api_key_env": "POOL_TEST_KEY"})
        pool = ModelRef(provider=Provider.openai, model="fake-model", endpoints=endpoints)
        exp = await store.experiments.create(prison_experiment)
        spec = BatchSpec(
            experiment_id=exp.id,
            model_sets=[ModelSet(default=pool)],
            max_agents={"Guard": 2, "Prisoner": 1},
            total_messages=6,
            days=2,
            every_day_count=True,
            concurrency=12,  # more than the pool's 6 at once: the endpoints' limits hold
        )
        runner = BatchRunner(store, backends, poll_s=0.05)
        batch = await runner.start(exp, spec)
        running = asyncio.create_task(runner.run(batch.id))
        doomed = servers[1]
        await wait_until(lambda: len(doomed.chat_bodies()) >= 6, what="gpu1 to answer 6 calls")
        doomed.stop()  # mid-batch: it never answers again
        answered_before = len(doomed.chat_bodies())
        ended = await running
        assert ended.status is Status.done, ended.error
        await _assert_complete_and_exact(store, batch.id)

        for i, server in enumerate(servers):
            calls_at_once = server.max_path_in_flight[CHAT]  # model listings apart
            assert 0 < calls_at_once <= LIMIT, (i, calls_at_once)
        assert len(doomed.chat_bodies()) == answered_before  # nothing reached it after
        convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
        messages = await store.messages.list_many([c.id for c in convs])
        answered = Counter(m.endpoint for m in messages if m.calls)
        assert set(answered) <= {"gpu0", "gpu1", "gpu2"} and answered["gpu0"] > 0
        assert answered["gpu2"] > 0  # the one with its own key
        assert None not in answered  # every model message says which endpoint answered
        assert answered["gpu1"] <= answered_before
        raw = str(await store.db["messages"].find({}).to_list(None))
        raw += str(await store.db["conversations"].find({}).to_list(None))
        assert KEY not in raw and "POOL_TEST_KEY" in raw  # the variable's name, never the key
        status = {e["endpoint"]: e for e in backends.pool_status(pool)}
        assert status["gpu1"]["healthy"] is False and status["gpu0"]["healthy"] is True
    finally:
        for server in servers:
            server.stop()
        await backends.aclose()


async def test_a_pool_goes_to_the_least_loaded_endpoint_and_takes_a_failed_one_back_later() -> None:
    with FakeOpenAIServer() as up, FakeOpenAIServer() as flaky:
        pool_ref = ModelRef(
            provider=Provider.openai,
            model="fake-model",
            endpoints=[
                PoolEndpoint(base_url=flaky.base_url, concurrency=4, name="flaky"),
                PoolEndpoint(base_url=up.base_url, concurrency=4, name="up"),
            ],
        )
        backends = Backends(backoff_s=0.01)
        try:
            flaky.script("/v1/chat/completions", Fault(503))
            request = ChatRequest(pool_ref, [ChatMessage("user", "Hello there.")])
            first = await backends.chat(request)
            assert first.endpoint == "up" and first.attempts == 2
            assert "flaky" in first.retries[0]["reason"]
            pool: Pool = backends.pool_for(pool_ref)
            assert [m.failures for m in pool.members] == [1, 0]
            # while it is out, calls go to the other endpoint
            assert (await backends.chat(request)).endpoint == "up"
            # after its cooldown it is probed, answers, and is back
            pool.members[0].down_until = 0.0
            back = await backends.chat(request)
            assert back.endpoint == "flaky" and pool.members[0].failures == 0
        finally:
            await backends.aclose()


@pytest.mark.parametrize(
    ("endpoints", "message"),
    [
        (
            '[{base_url: "http://a:1/v1", api_key_env: "sk-live-1234"}]',
            "batch.models.0.default.endpoints.0.api_key_env: api_key_env must be the name of "
            "an environment variable",
        ),
        (
            '[{base_url: "http://a:1/v1", concurrency: 0}]',
            "batch.models.0.default.endpoints.0.concurrency",
        ),
        ('[{base_url: "http://a:1/v1"}, {base_url: "http://a:1/v1"}]', "is listed twice"),
        ('[{base_url: "gpu1 port 8000"}]', "endpoints.0.base_url 'gpu1 port 8000'"),
    ],
)
def test_a_bad_pool_in_a_spec_is_one_message_naming_the_field(
    endpoints: str, message: str, tmp_path: Any
) -> None:
    from simulator.domain.errors import SpecError
    from simulator.engine.spec import load_spec

    spec = tmp_path / "pool.yaml"
    spec.write_text(
        "experiment: {example: prison_study}\n"
        "batch:\n"
        f"  models: [{{default: {{provider: openai, model: m, endpoints: {endpoints}}}}}]\n"
        "  total_messages: 4\n"
    )
    with pytest.raises(SpecError) as refused:
        load_spec(spec)
    assert message in str(refused.value)
    assert "sk-live-1234" not in str(refused.value)  # a key pasted there is never echoed


async def test_the_models_tab_shows_a_pools_endpoints_and_an_edit_keeps_them(
    store: Any, tui_settings: Any
) -> None:
    from textual.widgets import Input, Static, TabbedContent

    from simulator.tui.app import SimulatorApp
    from simulator.tui.screens.editor import EditorScreen
    from tests.plugins.tui import sample_experiment, settle, wait_library
    from tests.plugins.tui import wait_until as wait_ui

    pool = ModelRef(
        provider=Provider.openai,
        model="llama-8b",
        endpoints=[
            PoolEndpoint(base_url="http://gpu1:8000/v1", concurrency=8, name="gpu1"),
            PoolEndpoint(base_url="http://gpu2:8000/v1", api_key_env="GPU2_KEY"),
        ],
    )
    await store.experiments.create(sample_experiment().model_copy(update={"models": [pool]}))
    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(110, 34)) as pilot:
        await wait_library(pilot)
        await pilot.press("o")
        await wait_ui(pilot, lambda: isinstance(app.screen, EditorScreen))
        editor: EditorScreen = app.screen  # type: ignore[assignment]
        await pilot.press("f5")
        await wait_ui(pilot, lambda: editor.query_one(TabbedContent).active == "tab-models")
        status = str(editor.query_one("#models-status", Static).render())
        assert "A pool of 2 endpoints" in status
        assert "gpu1: http://gpu1:8000/v1 (8 at once)" in status
        assert "http://gpu2:8000/v1 (the provider's limit, key from GPU2_KEY)" in status
        editor.query_one("#param-temperature", Input).value = "0.2"
        await settle(pilot)
        edited = editor.draft.models[0]
        assert edited.params.temperature == 0.2 and edited.endpoints == pool.endpoints


def test_a_model_that_is_not_a_pool_dumps_and_seeds_exactly_as_before_pools() -> None:
    """Cell seeds and cache keys hash the model's dump: a model without endpoints must not
    gain a key (every existing spec would get new seeds)."""
    from simulator.domain import GridCell
    from simulator.engine.grid import seed_path

    plain = ModelRef(provider=Provider.openai, model="m", base_url="http://a:1/v1")
    assert "endpoints" not in plain.model_dump() and "endpoints" not in plain.model_dump_json()
    cell = GridCell(counts={"A": 1}, days=1, total_messages=2, models=ModelSet(default=plain))
    assert "endpoints" not in seed_path(cell)
    pool = ModelRef(provider=Provider.openai, model="m", endpoints=[PoolEndpoint(base_url=None)])
    assert pool.model_dump()["endpoints"] == [
        {"base_url": None, "api_key_env": None, "concurrency": None, "name": None}
    ]
    assert ModelRef.model_validate(pool.model_dump()) == pool
