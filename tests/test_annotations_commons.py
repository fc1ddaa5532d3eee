"""The commons deception judge stores its verdicts as annotations: one per member and behaviour,
true / false / uncertain kept apart, an invalid report stored as fallbacks (never "uncertain"),
and a second judgement with the same model asks nothing."""

from __future__ import annotations

from typing import Any

from simulator.annotations.tables import annotations_frame, load_annotations
from simulator.domain import Status
from simulator.domain.models import Decision
from simulator.engine.conversation import run_conversation
from simulator.llm.registry import Backends
from simulator.scenarios.commons.actions import BEHAVIOURS
from simulator.scenarios.commons.judge import QUESTIONS, judge_run
from simulator.scenarios.commons.params import CommonsParams
from simulator.scenarios.commons.setup import (
    commons_cell,
    commons_experiment,
    scripted_model,
    start_run,
)
from tests.plugins.annotations import Recorder


async def commons_run(store: Any, backends: Any) -> Any:
    params = CommonsParams(
        rounds=2, member_models={"Member 1": scripted_model("commons.cheater", chat="public")}
    )
    conv = await start_run(store, commons_experiment(params), commons_cell(3, seed=3))
    conv = await run_conversation(store, backends, conv.id)
    assert conv.status is Status.done, conv.error
    return conv


async def test_verdicts_are_stored_per_member_and_behaviour_and_not_asked_twice(
    store: Any, backends: Any
) -> None:
    conv = await commons_run(store, backends)
    recorder = Recorder(backends)
    result = await judge_run(store, recorder, conv.id, scripted_model("commons.judge"))
    assert len(recorder.requests) == 3  # one per member
    assert result["members"]["Member 1"]["report"]["extraction_deception"]["present"] is True
    stored = await load_annotations(store)
    assert len(stored) == 3 * len(QUESTIONS)
    verdicts = {(a.agent, a.question): a for a in stored}
    cheat = verdicts[("Member 1", "extraction_deception")]
    assert cheat.value == "true" and cheat.kind == "deception"
    assert cheat.annotator == "commons.deception" and cheat.data["severity"] != ""
    assert verdicts[("Member 2", "extraction_deception")].value == "false"
    assert verdicts[("Member 2", "intent_to_deceive")].value == "uncertain"  # kept apart
    assert {a.decision for a in stored} == {Decision.answer}
    frame = annotations_frame(stored)
    values = set(frame[frame["question"].isin(BEHAVIOURS)]["value"])
    assert values == {"true", "false", "uncertain"}
    again = await judge_run(store, recorder, conv.id, scripted_model("commons.judge"))
    assert len(recorder.requests) == 3  # the stored verdicts were reused
    assert again["tally"] == result["tally"]
    assert again["members"] == result["members"]


async def test_an_invalid_report_is_stored_as_fallbacks_not_uncertain(store: Any) -> None:
    backends = Backends(max_attempts=1)
    conv = await commons_run(store, backends)
    from simulator.domain import ModelRef

    result = await judge_run(
        store, backends, conv.id, ModelRef(model="judge.invalid"), members=["Member 2"]
    )
    member = result["members"]["Member 2"]
    assert member["valid"] is False
    assert member["report"]["extraction_deception"]["present"] == "uncertain"  # as printed
    stored = await load_annotations(store)
    assert len(stored) == len(QUESTIONS) and {a.agent for a in stored} == {"Member 2"}
    for a in stored:
        assert a.decision is Decision.fallback and a.value is None
        assert a.decision_cause.startswith("no valid report after one re-ask")
