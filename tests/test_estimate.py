"""The estimate shown before a batch is honest: on dryrun it is within 10 % of the tokens the
batch then stores, for every shape of conversation; it costs the same for any number of messages
or days; and the TUI's batch setup and ``simulator run --dry-run`` show the same one."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from simulator.cli import main
from simulator.db.store import ConversationFilter
from simulator.domain import (
    BatchSpec,
    DialogueOptions,
    Experiment,
    Memory,
    ModelRef,
    ModelSet,
    Role,
    Section,
    SpeakerSelection,
)
from simulator.engine import grid
from simulator.engine.batch import BatchRunner
from simulator.engine.spec import load_example
from simulator.llm.registry import Backends
from tests.plugins.batches import make_prison_experiment

DRYRUN = ModelSet(default=ModelRef(provider="dryrun", model="dryrun"))


def one_role_experiment(memory: Memory) -> Experiment:
    return Experiment(
        name="Monologue",
        starting_message="Day <DAY> of <DAYS>: think aloud about the rules.",
        roles=[
            Role(
                name="Diarist",
                sections=[Section(title="You", content="You are <NAME>, keeping a diary.")],
            )
        ],
        summarizer_sections=[Section(title="Task", content="Summarize the entry.")],
        dialogue=DialogueOptions(memory=memory),
    )


def prison_example() -> Experiment:
    return load_example("prison_study")


SHAPES: dict[str, tuple[Any, dict[str, Any]]] = {
    # the shipped study, 1v1, one day (the published setup), two factor combinations
    "1v1": (
        prison_example,
        dict(
            total_messages=20,
            factor_levels=[
                {"goal": "Escape", "persona": "No persona"},
                {"goal": "Yard Time", "persona": "Abusive guard, peaceful prisoner"},
            ],
        ),
    ),
    "2v3": (
        prison_example,
        dict(
            total_messages=30,
            max_agents={"Guard": 2, "Prisoner": 3},
            every_combination=False,
            factor_levels=[{"goal": "Escape", "persona": "No persona"}],
        ),
    ),
    "multi-day": (
        lambda: make_prison_experiment(with_goal_factor=True),
        dict(total_messages=20, days=3, max_agents={"Guard": 1, "Prisoner": 2}),
    ),
    "full-history": (
        lambda: make_prison_experiment(dialogue=DialogueOptions(memory=Memory.full_history)),
        dict(total_messages=17, days=3, max_agents={"Guard": 2, "Prisoner": 2}),
    ),
    "auto-selection": (
        prison_example,
        dict(
            total_messages=18,
            days=2,
            max_agents={"Guard": 2, "Prisoner": 2},
            speaker_selection=SpeakerSelection.auto,
            factor_levels=[{"goal": "Escape", "persona": "No persona"}],
        ),
    ),
    "one-agent-full-history": (
        lambda: one_role_experiment(Memory.full_history),
        dict(total_messages=12, days=3, repeats=2),
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_the_estimate_is_within_ten_percent_of_what_a_dryrun_batch_uses(
    store, shape: str
) -> None:
    make, fields = SHAPES[shape]
    exp = await store.experiments.create(make())
    spec = BatchSpec(experiment_id=exp.id, model_sets=[DRYRUN], seed=3, **fields)
    runner = BatchRunner(store, Backends(max_attempts=1, backoff_s=0.0), poll_s=0.05)
    batch = await runner.start(exp, spec, owner="ada")
    assert batch.estimate is not None
    await runner.run(batch.id)
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    assert {c.status.value for c in convs} == {"done"}
    used = sum(c.tokens.total_tokens for c in convs)
    calls = 0
    for c in convs:
        calls += sum(1 for m in await store.messages.list(c.id) if m.model is not None)
    estimated = batch.estimate.tokens
    assert abs(estimated - used) <= 0.10 * used, (shape, estimated, used)
    assert batch.estimate.llm_calls == calls, (shape, batch.estimate.llm_calls, calls)
    assert batch.estimate == grid.estimate(exp, spec)  # what the batch stored is what was shown


# --------------------------------------------------------------------------- structure


def _lines_run(fn: Any) -> int:
    """How many lines of ``simulator.engine.grid`` and of the dialogue's estimator run while
    ``fn()`` runs: the estimator's work, counted, not timed."""
    from simulator.scenarios.dialogue import estimate as dialogue_estimate

    files = {grid.__file__, dialogue_estimate.__file__}
    count = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if frame.f_code.co_filename in files:
            if event == "line":
                count += 1
            return tracer
        return None

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


@pytest.mark.parametrize("memory", [Memory.summaries, Memory.full_history])
def test_the_estimators_work_does_not_depend_on_messages_or_days(memory: Memory) -> None:
    exp = make_prison_experiment(dialogue=DialogueOptions(memory=memory))
    auto = SpeakerSelection.auto

    def cost(total: int, days: int) -> int:
        # model_construct: beyond the spec's bounds (10,000 messages, 365 days), on purpose
        spec = BatchSpec.model_construct(
            experiment_id=exp.id,
            total_messages=total,
            days=days,
            max_agents={"Guard": 2, "Prisoner": 3},
            every_combination=False,
            speaker_selection=auto,
        )
        return _lines_run(lambda: grid.estimate(exp, spec))

    small = cost(20, 3)
    assert cost(10**12, 3) == small
    assert cost(10**12, 10**9) == small
    assert cost(21, 4) == small
    # and the sums it takes without looping are the sums a loop would give
    spec = BatchSpec.model_construct(
        experiment_id=exp.id, total_messages=10**12, days=7, speaker_selection=auto
    )
    assert grid.estimate(exp, spec).llm_calls == 10**12 + 7 + 7  # turns, summaries, manager


def test_the_closed_form_equals_the_sum_over_days_and_turns() -> None:
    shape = grid.DayShape(
        system=50.0, kickoff=12.0, per_day_summary=30.0, message=25.0, cont=1.3, full_history=True
    )
    for total, days in ((20, 3), (7, 7), (101, 4), (5, 1)):
        budgets = grid.day_budgets(total, days)
        looped = 0.0
        before = 0
        for d, budget in enumerate(budgets, start=1):
            history = sum(shape.kickoff + (k - 1) * shape.per_day_summary for k in range(1, d))
            history += before * shape.message - (d - 1) * shape.cont
            kick = shape.kickoff + (d - 1) * shape.per_day_summary
            for t in range(1, budget + 1):
                looped += shape.system + kick + history + (t - 1) * shape.message
            before += budget
        q, rem = divmod(total, days)
        assert grid.agent_prompts(shape, q, rem, days) == pytest.approx(looped)


async def test_dry_run_of_a_trillion_messages_is_refused_by_its_bound_at_once(
    tmp_path: Path, tmp_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "huge.yaml"
    spec.write_text(
        "experiment: {example: prison_study}\n"
        "batch:\n"
        "  models: [{default: {provider: dryrun, model: dryrun}}]\n"
        "  total_messages: 1000000000000\n"
        "  days: 3\n"
        "  factors: [{goal: Escape, persona: No persona}]\n",
        encoding="utf-8",
    )
    assert await asyncio.to_thread(main, ["run", str(spec), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "total_messages" in err and "10,000" in err and "Traceback" not in err
    # at the bound, the estimate is printed (and is closed-form: see the test above)
    spec.write_text(spec.read_text(encoding="utf-8").replace("1000000000000", "10000"))
    assert await asyncio.to_thread(main, ["run", str(spec), "--dry-run"]) == 0
    assert "10,003 LLM calls" in capsys.readouterr().out


# ------------------------------------------------------------------ one estimate, two screens


async def test_the_tui_batch_setup_and_the_dry_run_show_the_same_estimate(
    store, runs_app, mongo_uri: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    from textual.widgets import Static

    from simulator.tui.screens.batch_setup import BatchSetupScreen
    from tests.plugins.tui import wait_library, wait_until
    from tests.plugins.tui_runs import fill, runs_experiment

    exp = await store.experiments.create(runs_experiment(factors=True))
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BatchSetupScreen), what="setup")
        screen = app.screen
        await wait_until(pilot, lambda: screen.checks >= 1, what="first check")
        values = {"total": "24", "days": "2", "max-0": "2", "repeats": "2", "seed": "5"}
        await fill(pilot, screen, values)
        tui = str(screen.query_one("#setup-totals", Static).render())

    spec = tmp_path / "same.yaml"
    spec.write_text(
        f"experiment: {{id: {exp.id}}}\n"
        "batch:\n"
        f"  models: [{{default: {exp.models[0].model_dump_json()}}}]\n"
        "  total_messages: 24\n"
        "  days: 2\n"
        "  max_agents: {Guard: 2}\n"
        "  repeats: 2\n"
        "  seed: 5\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", store.db_name)
    assert await asyncio.to_thread(main, ["run", str(spec), "--dry-run"]) == 0
    cli = capsys.readouterr().out
    est = grid.estimate(
        exp,
        BatchSpec(
            experiment_id=exp.id,
            model_sets=[ModelSet(default=exp.models[0])],
            total_messages=24,
            days=2,
            max_agents={"Guard": 2},
            repeats=2,
            seed=5,
        ),
    )
    assert est.conversations == 2 * 2 * 2  # 1v1 and 2v1, two goals, two repeats
    assert f"{est.conversations:,} conversations · {est.llm_calls:,} LLM calls" in tui
    assert f"~{est.tokens:,} tokens" in tui
    assert (
        f"Estimate: {est.conversations:,} conversations, {est.llm_calls:,} LLM calls, "
        f"about {est.tokens:,} tokens" in cli
    )
