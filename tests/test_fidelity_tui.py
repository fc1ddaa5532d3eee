"""A batch run in the app against a server that drops the system message: one toast, a line in
the run monitor, and the warning in the browser's details (the real app, the embedded server and
the fake OpenAI-compatible server)."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

from simulator.domain import (
    BatchSpec,
    ModelRef,
    ModelSet,
    Provider,
    Section,
    SectionKind,
    Status,
)
from simulator.tui.runs import runs_of
from simulator.tui.screens.browser import conversation_details
from simulator.tui.screens.monitor import RunMonitorScreen
from tests.plugins.tui import wait_library, wait_until
from tests.plugins.tui_runs import runs_experiment, wait_batch
from tests.servers import FakeOpenAIServer

LONG_RULES = (
    "The setting is a structured, closely controlled prison created for a study. Speak in the "
    "first person, as yourself only, in one or two sentences, and never write the lines of "
    "another participant. Stay in your role for the whole shift, whatever happens."
)


async def test_the_app_warns_once_and_the_monitor_keeps_showing_it(
    store: Any, runs_app: Any
) -> None:
    with FakeOpenAIServer(drop_system=True) as server:
        model = ModelRef(provider=Provider.openai, model="fake-model", base_url=server.base_url)
        exp = runs_experiment(models=[model])
        exp = exp.model_copy(
            update={"shared_sections": [Section(content=LONG_RULES, kind=SectionKind.shared)]}
        )
        exp = await store.experiments.create(exp)
        spec = BatchSpec(
            experiment_id=exp.id,
            model_sets=[ModelSet(default=model)],
            max_agents={"Guard": 1, "Prisoner": 2},
            total_messages=4,
        )
        app = runs_app()
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_library(pilot)
            registry = runs_of(app)
            batch = await registry.create(exp, spec)
            registry.run(batch.id)
            await app.push_screen(RunMonitorScreen(batch.id))
            monitor = app.screen
            run = await wait_batch(pilot, batch.id, (Status.done,))
            toasts = [n for n in app._notifications if n.title == "Warning"]
            assert len(toasts) == 1  # one per batch and warning, however many conversations
            assert "drop the system message" in str(toasts[0].message)
            assert run.warnings == ["system_prompt_dropped:fake-model"]
            await wait_until(
                pilot,
                lambda: (
                    "system_prompt_dropped:fake-model"
                    in str(monitor.query_one("#monitor-summary", Static).render())
                ),
                what="the warning in the monitor",
            )
    convs = [c for c in await store.conversations.list() if c.batch_id == batch.id]
    assert len(convs) == 2
    assert all(c.warnings == ["system_prompt_dropped:fake-model"] for c in convs)
    details = str(conversation_details(convs[0], exp, await store.messages.list(convs[0].id)))
    assert "warning: system_prompt_dropped:fake-model" in details
    assert "Parameters sent" in details and "temperature 0.7" in details


def test_the_details_show_each_days_prompt_when_the_days_differ() -> None:
    from simulator.engine.conversation import build_conversation
    from tests.plugins.engine import build_cell
    from tests.test_fidelity_prompts import daily_experiment

    exp = daily_experiment()
    text = str(conversation_details(build_conversation(exp, build_cell(6, 3)), exp))
    for day in (1, 2, 3):
        assert f"Prompt of Guard 1 (Guard) · day {day} ·" in text
        assert f"You are Guard 1, a guard. It is day {day} of 3." in text
        assert f"Summarizer prompt · day {day}" in text
        assert f"Summarize day {day} of 3." in text
    # one day: one prompt, headed as before
    one = str(conversation_details(build_conversation(exp, build_cell(2, 1)), exp))
    assert "Prompt of Guard 1 (Guard) · dryrun" in one and "· day 1" not in one
