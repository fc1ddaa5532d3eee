"""The batch service: a form's fields (BatchSpec's names, numbers as typed) checked against the
experiment, every problem under its field; the same plan for the TUI's setup and
``simulator run``."""

from __future__ import annotations

from simulator.domain import ExperimentKind, ModelRef, Provider, SpeakerSelection
from simulator.services.batches import (
    GRID,
    choose_models,
    max_agents_key,
    plan_batch,
    plan_spec,
)
from simulator.tui.screens.batch_setup import cost_label
from tests.plugins.tui_runs import runs_experiment


def test_each_problem_is_reported_under_its_field() -> None:
    exp = runs_experiment()
    plan = plan_batch(
        exp,
        {
            "total_messages": "3",
            "days": "5",
            "max_agents": {"Guard": "0", "Prisoner": "two"},
            "repeats": "",
            "seed": "x",
        },
    )
    assert not plan.ok and plan.spec is None
    assert plan.problems["days"].startswith("at most the total messages (3)")
    assert plan.problems[max_agents_key("Guard")] == "must be a whole number from 1 to 100, not 0"
    assert plan.problems[max_agents_key("Prisoner")] == (
        "must be a whole number from 1 to 100, not 'two'"
    )
    assert plan.problems["repeats"] == "a whole number from 1 to 1,000 is needed"
    assert "seed" in plan.problems

    typo = exp.model_copy(update={"starting_message": "Hello <GARD_NOUN>."})
    plan = plan_batch(typo, {})
    assert not plan.ok and "Did you mean <GUARD_NOUN>?" in plan.problems[GRID]

    plan = plan_batch(exp, {"max_agents": {"Guard": "100", "Prisoner": "100"}, "repeats": "2"})
    assert "20,000 conversations" in plan.problems[GRID]
    assert "at most 10,000 in one batch" in plan.problems[GRID]
    assert plan.cells == []  # refused by multiplication: nothing was expanded

    ok = plan_batch(
        exp, {"total_messages": "4", "days": "2", "max_agents": {"Guard": "2", "Prisoner": "2"}}
    )
    assert ok.ok and ok.estimate is not None
    assert [c.counts_label for c in ok.cells] == ["1v1", "1v2", "2v1", "2v2"]
    assert ok.estimate.conversations == 4
    # 4 agent turns + 2 summaries per conversation
    assert ok.estimate.llm_calls == 4 * (4 + 2)
    assert ok.grid == "1 model set x 1 factor combination x 4 agent counts x 1 day count x 1 repeat"


def test_models_per_role_summarizer_manager_and_game_rounds() -> None:
    fast = ModelRef(provider=Provider.dryrun, model="fast")
    slow = ModelRef(provider=Provider.dryrun, model="slow")
    exp = runs_experiment(models=[fast, slow])
    models = choose_models(exp, 1, {"Guard": 0, "Prisoner": None}, summarizer=0, manager=None)
    plan = plan_batch(exp, {"model_sets": [models], "speaker_selection": SpeakerSelection.auto})
    assert plan.ok and plan.spec is not None
    (ms,) = plan.spec.model_sets
    assert ms.default == slow and ms.per_role == {"Guard": fast}
    assert ms.summarizer == fast and ms.manager is None and ms.manager_model == slow
    assert plan.spec.speaker_selection == [SpeakerSelection.auto]  # one method: a list of one
    assert plan.only_dryrun

    # The cost: from a price table when every model has a price, else said to be unknown.
    paid = runs_experiment(models=[ModelRef(provider=Provider.openai, model="gpt-x")])
    fields = {"total_messages": "4"}
    prices = {"gpt-x": {"input_per_1k": 1.0, "output_per_1k": 2.0}}
    priced = plan_batch(paid, fields, prices)
    assert priced.estimate is not None and priced.estimate.cost_usd is not None
    assert priced.estimate.cost_usd > 0 and not priced.only_dryrun
    assert cost_label(priced, prices) == f"about ${priced.estimate.cost_usd:,.2f}"
    assert cost_label(plan_batch(paid, fields), {}) == "unknown (no PRICE_TABLE)"
    assert cost_label(plan_batch(paid, fields, {"other": prices["gpt-x"]}), {"x": {}}) == (
        "unknown (a model has no price)"
    )

    game = exp.model_copy(update={"kind": ExperimentKind.commons})
    plan = plan_batch(game, {"total_messages": "", "rounds": "3"})  # a game has no messages
    assert plan.ok and plan.spec is not None and plan.spec.rounds == 3
    assert plan.spec.total_messages == 1 and plan.spec.days == 1
    assert plan_batch(game, {"rounds": "0"}).problems["rounds"] == (
        "must be a whole number from 1 to 10,000, not 0"
    )


def test_a_spec_file_and_a_form_plan_the_same_batch() -> None:
    """``simulator run`` plans its spec with the same service: the same cells, estimate and
    grid words for the same request."""
    exp = runs_experiment()
    form = plan_batch(exp, {"total_messages": "6", "days": "2", "repeats": "3"})
    assert form.spec is not None
    again = plan_spec(exp, form.spec)
    assert again.ok and again.cells == form.cells
    assert again.estimate == form.estimate and again.grid == form.grid


def test_several_speaker_methods_are_a_grid_dimension_and_none_is_a_problem() -> None:
    exp = runs_experiment()
    methods = [SpeakerSelection.round_robin, SpeakerSelection.random]
    plan = plan_batch(exp, {"total_messages": "4", "speaker_selection": methods})
    assert plan.ok and plan.spec is not None
    assert plan.spec.speaker_selection == methods
    assert [c.speaker_selection for c in plan.cells] == methods  # one cell per method
    assert plan.estimate is not None and plan.estimate.conversations == 2

    plan = plan_batch(exp, {"speaker_selection": []})
    assert not plan.ok and plan.spec is None
    assert plan.problems["speaker_selection"] == "choose at least one method"

    twice = [SpeakerSelection.random, SpeakerSelection.random]
    plan = plan_batch(exp, {"speaker_selection": twice})
    assert not plan.ok and "random is listed twice" in plan.problems[GRID]
