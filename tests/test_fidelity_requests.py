"""What ran is what is stored, checked against the request bodies an OpenAI-compatible server
received: prompts per agent and day, the summarizer's day, the parameters as sent (and refused),
and the check that a server read the system message.

Every test runs real components: the embedded MongoDB, ``Backends`` and the fake
OpenAI-compatible HTTP server of tests/servers/, which records each request's JSON body.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pymongo
import pytest

from simulator.analysis.loading import messages_frame
from simulator.db.mongo import _to_doc
from simulator.domain import (
    BatchSpec,
    Conversation,
    Experiment,
    Message,
    MessageKind,
    ModelRef,
    ModelSet,
    Provider,
    Role,
    SamplingParams,
    Section,
    SectionKind,
    Status,
)
from simulator.engine.batch import BatchRunner
from simulator.engine.conversation import prepare_conversation, run_conversation
from simulator.engine.events import ConversationWarning, EventBus
from simulator.llm.base import CallMeta, ChatMessage, ChatRequest
from simulator.llm.registry import Backends
from simulator.settings import Settings
from tests.plugins.engine import build_cell
from tests.servers import FakeOllamaServer, FakeOpenAIServer

#: A role long enough for the system-prompt check to judge (it needs 200 characters).
ROLE_TEXT = (
    "You are <NAME>, one of <GUARD_NUM> <GUARD_NOUN> in a simulated prison built for a study. "
    "It is day <DAY> of <DAYS>. You keep order in the block, you talk with the <PRISONER_NOUN> "
    "in the first person, and you never write the lines of anybody else."
)
PRISONER_TEXT = (
    "You are <NAME>, a prisoner in a simulated prison built for a study. It is day <DAY> of "
    "<DAYS>. You want one more hour in the yard, and you talk with the <GUARD_NOUN> in the first "
    "person, never writing the lines of anybody else."
)


def study() -> Experiment:
    return Experiment(
        name="Fidelity study (test)",
        starting_message="Day <DAY> of <DAYS> begins.",
        roles=[
            Role(name="Guard", sections=[Section(content=ROLE_TEXT, kind=SectionKind.private)]),
            Role(
                name="Prisoner",
                sections=[Section(content=PRISONER_TEXT, kind=SectionKind.private)],
            ),
        ],
        summarizer_sections=[
            Section(
                content="You summarise what happened on day <DAY> of <DAYS> in the prison.",
                kind=SectionKind.summarizer,
            )
        ],
    )


def numbered_replies() -> Callable[[dict[str, Any]], str]:
    """Each answer is unique, so a stored message points at the one request it answered."""
    counter = itertools.count(1)

    def reply(body: dict[str, Any]) -> str:
        n = next(counter)
        last = body["messages"][-1]["content"]
        return f"Summary number {n}." if "Write the summary" in last else f"Answer number {n}."

    return reply


def openai(server: FakeOpenAIServer, model: str, **params: Any) -> ModelRef:
    return ModelRef(
        provider=Provider.openai,
        model=model,
        base_url=server.base_url,
        params=SamplingParams(**params),
    )


# ------------------------------------------------------------------------------ acceptance


async def test_every_request_of_a_multi_day_multi_role_batch_is_what_is_stored(
    store: Any, llm_settings: Settings
) -> None:
    """3 days, two roles (2 guards, 1 prisoner), a model per role and one for the summarizer,
    one of them on a server that refuses ``seed``. For every request the server received and
    answered: the system prompt is the stored one of that agent for that day (and says that
    day), the parameters in the body are the ones stored on the message, and the summarizer is
    told the day it summarises."""
    reply = numbered_replies()  # one count over both servers: every answer text is unique
    main = FakeOpenAIServer(models=("guard-model", "summary-model"), reply=reply)
    strict = FakeOpenAIServer(models=("prisoner-model",), reply=reply)
    strict.reject_params = {"seed"}
    with main, strict:
        guard = openai(main, "guard-model", temperature=0.3, top_p=0.8, max_tokens=64, seed=11)
        prisoner = openai(strict, "prisoner-model", temperature=1.1, top_p=None, seed=5, top_k=7)
        summary = openai(main, "summary-model", temperature=0.0, max_tokens=None, seed=None)
        exp = study()
        await store.experiments.create(exp)
        spec = BatchSpec(
            experiment_id=exp.id,
            model_sets=[
                ModelSet(
                    default=guard,
                    per_role={"Guard": guard, "Prisoner": prisoner},
                    summarizer=summary,
                )
            ],
            total_messages=9,
            days=3,
            max_agents={"Guard": 2, "Prisoner": 1},
            every_combination=False,
            repeats=2,
            concurrency=2,
        )
        backends = Backends(llm_settings)
        runner = BatchRunner(store, backends, EventBus())
        try:
            batch = await runner.start(exp, spec)
            batch = await runner.run(batch.id)
        finally:
            await backends.aclose()
        answered = {**main.answered(), **strict.answered()}
        refused = [b for b in strict.chat_bodies() if "seed" in b]
    assert batch.status is Status.done, batch.error
    conversations = await store.conversations.list()
    assert len(conversations) == 2
    checked = 0
    for conv in conversations:
        agents = {a.name: a for a in conv.agents}
        messages = await store.messages.list(conv.id)
        for m in messages:
            if m.kind not in (MessageKind.utterance, MessageKind.summary):
                continue
            body = answered[m.raw or ""]
            system, *rest = body["messages"]
            assert system["role"] == "system"
            assert m.model is not None, m
            assert body["model"] == m.model.model, (body["model"], m.model.model, m.raw)
            if m.kind is MessageKind.summary:
                assert system["content"] == conv.summarizer_prompt_for(m.day)
                assert f"day {m.day} of 3" in system["content"]
                assert rest[0]["content"].startswith(f"Transcript of day {m.day}:")
            else:
                assert system["content"] == agents[m.speaker].system_prompt_for(m.day)
                assert f"You are {m.speaker}," in system["content"]
                assert f"It is day {m.day} of 3." in system["content"]
            sent = {k: v for k, v in body.items() if k not in ("model", "messages")}
            assert m.sent_params == sent
            checked += 1
    assert checked == 2 * (9 + 3)
    # the prisoner's server refused seed (once per conversation at most: the two first calls may
    # be on their way together); the calls went without it, and say so
    assert 1 <= len(refused) <= 2
    prisoner_turns = [
        m
        for conv in conversations
        for m in await store.messages.list(conv.id)
        if m.role == "Prisoner"
    ]
    assert prisoner_turns and all(m.dropped_params == ["seed"] for m in prisoner_turns)
    assert all("seed" not in (m.sent_params or {"seed": 0}) for m in prisoner_turns)
    # top_k is configured for the prisoner but never sent to an OpenAI-compatible server
    assert all("top_k" not in (m.sent_params or {"top_k": 0}) for m in prisoner_turns)

    # the export shows what was sent: NA where nothing was sent, what was refused beside it
    df = messages_frame(
        [m for conv in conversations for m in await store.messages.list(conv.id)], conversations
    )
    guards = df[df["role"] == "Guard"]
    assert set(guards["temperature"]) == {0.3} and set(guards["max_tokens"]) == {64}
    assert set(guards["model_seed"]) == {11}
    assert guards["top_k"].isna().all() and guards["num_ctx"].isna().all()
    prisoners = df[df["role"] == "Prisoner"]
    assert prisoners["model_seed"].isna().all() and prisoners["top_k"].isna().all()
    assert prisoners["top_p"].isna().all()  # configured None: not sent
    assert set(prisoners["max_tokens"]) == {512}  # the default, sent
    summaries = df[df["kind"] == "summary"]
    assert set(summaries["temperature"]) == {0.0} and summaries["max_tokens"].isna().all()
    assert set(df.loc[df["role"] == "Prisoner", "dropped_params"]) == {"seed"}


# ------------------------------------------------------------------------------ parameters


async def test_dryrun_messages_say_nothing_was_sent(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    exp = study()
    await store.experiments.create(exp)
    conv = await prepare_conversation(store, exp, build_cell(2, 1))
    conv = await run_conversation(store, backends, conv.id)
    messages = await store.messages.list(conv.id)
    kickoff, *answers = messages
    assert kickoff.sent_params is None  # no model wrote it
    assert answers and all(m.sent_params == {} and m.dropped_params == [] for m in answers)
    df = messages_frame(messages, [conv])
    for column in ("temperature", "top_p", "top_k", "num_ctx", "max_tokens", "model_seed"):
        assert df[column].isna().all(), column


async def test_ollama_messages_store_the_options_under_ollamas_names(
    store: Any, llm_settings: Settings
) -> None:
    with FakeOllamaServer() as server:
        ref = ModelRef(
            provider=Provider.ollama,
            model="llama3.2:1b",
            base_url=server.url,
            params=SamplingParams(temperature=0.5, top_k=9, num_ctx=4096, max_tokens=99, seed=3),
        )
        exp = study()
        await store.experiments.create(exp)
        conv = await prepare_conversation(store, exp, build_cell(2, 1, model=ref))
        backends = Backends(llm_settings)
        try:
            conv = await run_conversation(store, backends, conv.id)
            assert backends._dropped == {}  # never judged, so no call waits for a verdict
        finally:
            await backends.aclose()
        options = [b["options"] for b in server.chat_bodies()]
    assert conv.status is Status.done, conv.error
    answers = [m for m in await store.messages.list(conv.id) if m.sent_params is not None]
    assert [m.sent_params for m in answers] == options
    df = messages_frame(answers, [conv])
    assert set(df["max_tokens"]) == {99} and set(df["top_k"]) == {9}
    assert set(df["num_ctx"]) == {4096} and set(df["model_seed"]) == {3}
    # Ollama's count may leave out a cached prefix without saying so: never judged
    assert conv.warnings == []


async def test_messages_stored_before_sent_params_still_load_and_export(store: Any) -> None:
    exp = study()
    ref = ModelRef(provider=Provider.openai, model="gpt-x", params=SamplingParams(seed=5, top_k=40))
    conv = Conversation(experiment_id=exp.id, cell=build_cell(2, 1, model=ref))
    await store.conversations.create(conv)
    old = Message(
        conversation_id=conv.id, seq=0, speaker="Guard 1", role="Guard", model=ref,
        flags=["dropped:seed"],
    )  # fmt: skip
    doc = _to_doc(old, old.id)
    del doc["sent_params"], doc["dropped_params"]
    await store.messages.coll.insert_one(doc)
    [loaded] = await store.messages.list(conv.id)
    assert loaded.sent_params is None and loaded.dropped_params == []
    row = messages_frame([loaded], [conv]).iloc[0]
    # rebuilt from what the OpenAI backend sends: never top_k, and not the refused seed
    assert row["temperature"] == pytest.approx(0.7) and row["max_tokens"] == 512
    assert pd.isna(row["top_k"]) and pd.isna(row["num_ctx"]) and pd.isna(row["model_seed"])
    assert row["dropped_params"] == "seed"


# ------------------------------------------------------------------------------ system prompt


async def run_one(
    store: Any, server: FakeOpenAIServer, settings: Settings, bus: EventBus | None = None
) -> Conversation:
    exp = study()
    await store.experiments.create(exp)
    model = ModelRef(provider=Provider.openai, model="fake-model", base_url=server.base_url)
    conv = await prepare_conversation(store, exp, build_cell(4, 2, model=model))
    backends = Backends(settings)
    try:
        return await run_conversation(store, backends, conv.id, bus=bus)
    finally:
        await backends.aclose()


async def test_a_server_that_drops_the_system_message_is_flagged(
    store: Any, llm_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[ConversationWarning] = []
    bus = EventBus()
    bus.subscribe(lambda e: events.append(e) if isinstance(e, ConversationWarning) else None)
    with caplog.at_level(logging.WARNING), FakeOpenAIServer(drop_system=True) as server:
        conv = await run_one(store, server, llm_settings, bus)
    assert conv.status is Status.done, conv.error
    assert conv.warnings == ["system_prompt_dropped:fake-model"]
    stored = await store.conversations.get(conv.id)
    assert stored is not None and stored.warnings == ["system_prompt_dropped:fake-model"]
    assert [e.warning for e in events] == ["system_prompt_dropped:fake-model"]  # once
    assert "drop the system message" in events[0].text
    assert "does not read the system message" in caplog.text


@pytest.mark.parametrize(
    "server",
    [{}, {"cached_tokens": 10_000}, {"drop_system": True, "fingerprint": "fp_ollama"}],
    ids=["plain", "cached", "ollama-v1"],
)
async def test_a_server_that_reads_it_is_not_flagged(
    store: Any, llm_settings: Settings, server: dict[str, Any]
) -> None:
    """Cached: the server reports almost every prompt token as served from its cache and counts
    only the rest in prompt_tokens; the cached tokens count as read (never a false alarm).
    Ollama's /v1 endpoint: its count may leave out a cached prefix without saying so, so a short
    count there is never judged (here it really drops the system message, unseen)."""
    with FakeOpenAIServer(**server) as fake:
        conv = await run_one(store, fake, llm_settings)
        bodies = fake.chat_bodies()
    assert conv.status is Status.done, conv.error
    assert conv.warnings == []
    assert len(bodies) == 6


async def test_the_check_judges_each_model_once_per_run_and_waits_for_nobody_else(
    llm_settings: Settings,
) -> None:
    """The first judgeable call of a model decides; calls sent meanwhile return with the verdict;
    ``new_run`` forgets it; short system messages are not judged."""
    import asyncio

    with FakeOpenAIServer(drop_system=True) as server:
        ref = ModelRef(provider=Provider.openai, model="fake-model", base_url=server.base_url)
        backends = Backends(llm_settings)

        def ask(system: str) -> ChatRequest:
            return ChatRequest(
                model=ref,
                messages=[ChatMessage("system", system), ChatMessage("user", "Hello there.")],
                meta=CallMeta(agent="A", role="A"),
            )

        try:
            await backends.chat(ask("Short role."))
            assert backends.warnings_for(ref) == []  # 11 characters: not judged
            long_role = "You are a guard in a prison built for a study. " * 6
            server.delay_s = 0.2
            results = await asyncio.gather(*(backends.chat(ask(long_role)) for _ in range(3)))
            assert len(results) == 3
            assert backends.warnings_for(ref) == ["system_prompt_dropped:fake-model"]
            other = ref.model_copy(update={"model": "other-model"})
            assert backends.warnings_for(other) == []
            backends.new_run()
            assert backends.warnings_for(ref) == []
        finally:
            await backends.aclose()


# ------------------------------------------------------------------------------ the CLI


@pytest.fixture
def cli_db(mongo_uri: str, tmp_data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    name = f"t_fid_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", name)
    monkeypatch.delenv("PRICE_TABLE", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    client: pymongo.MongoClient = pymongo.MongoClient(mongo_uri)
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()


def test_simulator_run_says_when_a_server_drops_the_system_message(
    cli_db: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from simulator.cli import main

    role = "You are <NAME>, a guard in a simulated prison built for a study. " * 4
    with FakeOpenAIServer(drop_system=True) as server:
        spec = tmp_path / "spec.yaml"
        spec.write_text(
            "experiment:\n"
            "  name: Dropped roles\n"
            "  roles:\n"
            f"    - {{name: Guard, sections: [{{kind: private, content: '{role}'}}]}}\n"
            "batch:\n"
            f"  models: [{{provider: openai, model: fake-model, base_url: '{server.base_url}'}}]\n"
            "  total_messages: 2\n"
            "  repeats: 2\n",
            encoding="utf-8",
        )
        assert main(["run", str(spec), "--yes"]) == 0
    out = capsys.readouterr().out
    assert out.count("warning  #") == 1  # one line when it is first seen...
    assert "seems to drop the system message" in out
    # ... and the total at the end
    assert "Warning: system_prompt_dropped:fake-model on 2 conversation(s)" in out
    flagged = [c["warnings"] for c in cli_db.conversations.find()]
    assert flagged == [["system_prompt_dropped:fake-model"]] * 2
