"""What ran is what is stored: every day's requests carry that day's prompts.

Placeholders whose value changes per day (``<DAY>``) are rendered for the day of the request, for
the agents and for the summarizer (who is told the day it summarises); the rendered prompts of
every day are stored on the conversation before the first call, and are the ones sent. Stored
conversations from before per-day prompts load and resume exactly as they ran.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from simulator.db.mongo import _to_doc
from simulator.domain import (
    DialogueOptions,
    Experiment,
    Memory,
    MessageKind,
    Role,
    Section,
    SectionKind,
    Status,
)
from simulator.domain.errors import LLMError, SimulatorError
from simulator.engine.conversation import (
    build_conversation,
    prepare_conversation,
    run_conversation,
)
from simulator.llm.base import ChatRequest
from tests.plugins.engine import RecordingPolicy, build_cell, default_answer

REPO = Path(__file__).resolve().parent.parent


def daily_experiment(memory: Memory = Memory.summaries) -> Experiment:
    """Two roles whose prompts say which day it is; the summarizer is told the day too."""
    return Experiment(
        name="Days (test)",
        starting_message="Day <DAY> of <DAYS> begins.",
        roles=[
            Role(
                name="Guard",
                sections=[
                    Section(
                        content="You are <NAME>, a guard. It is day <DAY> of <DAYS>.",
                        kind=SectionKind.private,
                    )
                ],
            ),
            Role(
                name="Prisoner",
                sections=[
                    Section(
                        content="You are <NAME>, a prisoner. Today is day <DAY>.",
                        kind=SectionKind.private,
                    )
                ],
            ),
        ],
        summarizer_sections=[
            Section(content="Summarize day <DAY> of <DAYS>.", kind=SectionKind.summarizer)
        ],
        dialogue=DialogueOptions(memory=memory),
    )


async def run(store: Any, backends: Any, experiment: Experiment, cell: Any) -> Any:
    await store.experiments.create(experiment)
    conv = await prepare_conversation(store, experiment, cell)
    return await run_conversation(store, backends, conv.id)


def system_of(request: ChatRequest) -> str:
    assert request.messages[0].role == "system"
    return request.messages[0].content


def test_prompts_are_rendered_and_stored_for_every_day() -> None:
    exp = daily_experiment()
    conv = build_conversation(exp, build_cell(12, 3, guards=2, prisoners=1))
    guard = conv.agents[1]
    assert guard.name == "Guard 2"
    assert guard.system_prompts == [
        f"You are Guard 2, a guard. It is day {day} of 3." for day in (1, 2, 3)
    ]
    assert guard.system_prompt == guard.system_prompts[0]  # day 1, as before
    assert conv.summarizer_prompts == [f"Summarize day {day} of 3." for day in (1, 2, 3)]
    assert conv.summarizer_prompt == conv.summarizer_prompts[0]
    assert [conv.summarizer_prompt_for(day) for day in (1, 2, 3)] == conv.summarizer_prompts
    with pytest.raises(SimulatorError, match="no prompt for day 4"):
        guard.system_prompt_for(4)


@pytest.mark.parametrize("memory", [Memory.summaries, Memory.full_history])
async def test_each_request_carries_the_prompts_of_its_day(
    store: Any, backends: Any, recording_policy: Any, memory: Memory
) -> None:
    policy: RecordingPolicy = recording_policy()
    cell = build_cell(12, 3, guards=2, prisoners=1, model=policy.model)
    conv = await run(store, backends, daily_experiment(memory), cell)
    assert conv.status is Status.done, conv.error
    agents = {a.name: a for a in conv.agents}
    turns = [r for r in policy.requests if r.meta.purpose == "utterance"]
    assert {r.meta.day for r in turns} == {1, 2, 3}
    for request in turns:
        day, agent = request.meta.day, agents[request.meta.agent]
        assert system_of(request) == agent.system_prompt_for(day)  # the stored prompt was sent
        assert re.search(rf"\bday {day}\b", system_of(request))
        # one system message, always first: the day's prompt replaced the previous one
        assert [m.role for m in request.messages].count("system") == 1
    summaries = [r for r in policy.requests if r.meta.purpose == "summary"]
    assert [r.meta.day for r in summaries] == [1, 2, 3]
    for request in summaries:
        day = request.meta.day
        assert system_of(request) == f"Summarize day {day} of 3."
        assert request.messages[1].content.startswith(f"Transcript of day {day}:")


async def test_full_history_keeps_earlier_days_under_the_new_days_prompt(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    policy: RecordingPolicy = recording_policy()
    cell = build_cell(4, 2, model=policy.model)
    conv = await run(store, backends, daily_experiment(Memory.full_history), cell)
    assert conv.status is Status.done, conv.error
    guard_day1, guard_day2 = (
        policy.for_meta(agent="Guard 1", day=d, purpose="utterance")[0] for d in (1, 2)
    )
    assert system_of(guard_day2) == "You are Guard 1, a guard. It is day 2 of 2."
    # everything after the system message of day 1's request is still there on day 2
    assert guard_day2.messages[1 : len(guard_day1.messages)] == guard_day1.messages[1:]
    assert "Day 1 of 2 begins." in guard_day2.messages[1].content


async def test_a_resumed_day_sends_what_it_sent_before_the_interruption(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    failed_once: list[bool] = []

    def answer(request: ChatRequest) -> str:
        m = request.meta
        if m.day == 2 and m.turn == 3 and not failed_once:
            failed_once.append(True)
            raise LLMError("the server went away", retryable=False)
        return default_answer(request)

    policy: RecordingPolicy = recording_policy(answer)
    exp = daily_experiment()
    cell = build_cell(12, 3, model=policy.model)
    conv = await run(store, backends, exp, cell)
    assert conv.status is Status.failed
    before = {r.meta.agent: system_of(r) for r in policy.requests if r.meta.day == 2}
    policy.requests.clear()
    conv = await run_conversation(store, backends, conv.id)
    assert conv.status is Status.done, conv.error
    day2 = [r for r in policy.requests if r.meta.day == 2 and r.meta.purpose == "utterance"]
    assert day2 and all(system_of(r) == before[r.meta.agent] for r in day2)
    assert all("day 2 of 3" in system_of(r) or "day 2." in system_of(r) for r in day2)


async def test_a_conversation_stored_without_per_day_prompts_runs_as_it_always_did(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    """A conversation prepared before per-day prompts existed has one ``system_prompt`` per agent
    and one ``summarizer_prompt`` (day 1's): it loads, and every day of it, resumed or not,
    sends those, exactly what its first days sent."""
    policy: RecordingPolicy = recording_policy()
    exp = daily_experiment()
    await store.experiments.create(exp)
    conv = build_conversation(exp, build_cell(6, 3, model=policy.model))
    doc = _to_doc(conv)
    for agent in doc["agents"]:
        del agent["system_prompts"]
    del doc["summarizer_prompts"], doc["warnings"]
    await store.conversations.coll.insert_one(doc)
    old = await store.conversations.get(conv.id)
    assert old is not None and old.agents[0].system_prompts == [] and old.summarizer_prompts == []
    done = await run_conversation(store, backends, conv.id)
    assert done.status is Status.done, done.error
    agents = {a.name: a for a in old.agents}
    for request in policy.requests:
        if request.meta.purpose == "utterance":
            assert system_of(request) == agents[request.meta.agent].system_prompt
        else:
            assert system_of(request) == old.summarizer_prompt == "Summarize day 1 of 3."


@pytest.mark.parametrize("days", [1, 3])
def test_the_prison_study_tells_each_day_its_number(days: int) -> None:
    from simulator.engine.spec import load_example

    exp = load_example("prison_study")
    cell = build_cell(6 * days, days).model_copy(
        update={"factors": {"goal": "Escape", "persona": "No persona"}}
    )
    conv = build_conversation(exp, cell)
    for day in range(1, days + 1):
        assert f"what happened on day {day} between two agents" in " ".join(
            conv.summarizer_prompt_for(day).split()
        )
        for agent in conv.agents:
            assert "<" not in agent.system_prompt_for(day)
    assert len(conv.summarizer_prompts) == days


async def test_the_inline_example_of_the_spec_docs_summarizes_each_day_by_its_number(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    import yaml

    from simulator.engine.spec import parse_spec

    text = (REPO / "docs" / "spec.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "Two-role" in b)
    definition = parse_spec(yaml.safe_load(block)).experiment.definition
    assert definition is not None
    policy: RecordingPolicy = recording_policy()
    cell = build_cell(6, 3, model=policy.model).model_copy(update={"factors": {"goal": "escape"}})
    conv = await run(store, backends, definition, cell)
    assert conv.status is Status.done, conv.error
    summaries = [r for r in policy.requests if r.meta.purpose == "summary"]
    assert [system_of(r) for r in summaries] == [f"Summarize day {d}." for d in (1, 2, 3)]
    kickoffs = [
        m.content for m in await store.messages.list(conv.id) if m.kind is MessageKind.kickoff
    ]
    assert [k.splitlines()[0] for k in kickoffs] == [f"Day {d} of 3 begins." for d in (1, 2, 3)]
