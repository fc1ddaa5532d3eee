"""Annotating from the library (Pilot): ``a`` on an experiment opens a dialog offering the
experiment's own rubrics (or a rubric file) and a model; the job annotates the experiment's
finished conversations with a progress bar (done / total, failures) and can be stopped, keeping
what it stored; starting again asks only the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from textual.widgets import DataTable, Input, ProgressBar, Select, Static

from simulator.settings import Settings
from simulator.tui.app import SimulatorApp
from simulator.tui.screens.annotate_experiment import RUBRIC_FILE, AnnotateExperimentScreen
from tests.plugins.annotations import RUBRIC, DialogueStudy, run_dialogue_study
from tests.plugins.tui import wait_library, wait_until
from tests.servers import FakeModerationServer, Fault
from tests.servers.openai_server import CHAT

SIZE = (100, 34)
REPO = Path(__file__).resolve().parents[1]


def persuasion() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / RUBRIC).read_text(encoding="utf-8"))["rubric"])


def app_for(store: Any, settings: Settings) -> SimulatorApp:
    return SimulatorApp(settings, store=store, user="alice", offer_example=False)


async def open_dialog(pilot: Any, study: DialogueStudy) -> AnnotateExperimentScreen:
    library = await wait_library(pilot)
    names = [row.experiment.name for row in library.rows]
    table = library.query_one("#experiments", DataTable)
    table.move_cursor(row=names.index(study.experiment.name))
    await pilot.press("a")
    await wait_until(
        pilot, lambda: isinstance(pilot.app.screen, AnnotateExperimentScreen), what="dialog"
    )
    return pilot.app.screen  # type: ignore[no-any-return]


def bar(screen: AnnotateExperimentScreen) -> tuple[float | None, float]:
    widget = screen.query_one("#annotate-progress", ProgressBar)
    return widget.total, widget.progress


def status(screen: AnnotateExperimentScreen) -> str:
    return str(screen.query_one("#annotate-status", Static).render())


async def test_judge_every_finished_conversation_with_the_experiments_rubric(
    store: Any, tui_settings: Settings
) -> None:
    study = await run_dialogue_study(store, rubrics=[persuasion()])
    async with app_for(store, tui_settings).run_test(size=SIZE) as pilot:
        screen = await open_dialog(pilot, study)
        choice = screen.query_one("#annotate-rubric-choice", Select)
        assert choice.value == "persuasion"  # the experiment's own rubric comes first
        assert not screen.query_one("#annotate-rubric", Input).display  # no file asked for
        assert screen.query_one("#annotate-model", Input).value == "dryrun:judge"
        assert not screen.query_one("#annotate-job").display  # no progress before the start
        await pilot.click("#start")
        await wait_until(
            pilot,
            lambda: screen.job is not None and not screen.job.running,
            within=30,
            what="the job",
        )
        job = screen.job
        assert job is not None and job.error is None and job.todo == job.done == 2
        await wait_until(pilot, lambda: bar(screen) == (2, 2), what="a full progress bar")
        assert status(screen).startswith("Done: 2 of 2 item(s) annotated; 4 annotation(s) stored")
        assert screen.query_one("#annotate-job").display
        assert not screen.query_one("#stop").display  # nothing left to stop
        await pilot.press("escape")
        await wait_until(
            pilot, lambda: not isinstance(pilot.app.screen, AnnotateExperimentScreen), what="close"
        )
    docs = await store.db["annotations"].find({}).to_list(None)
    assert len(docs) == 4 and {d["annotator"] for d in docs} == {"judge:persuasion"}
    assert {d["conversation_id"] for d in docs} == {c.id for c in study.conversations}


async def test_a_rubric_file_and_a_stopped_job_that_keeps_what_it_stored(
    store: Any, tui_settings: Settings
) -> None:
    study = await run_dialogue_study(store, repeats=2)  # four conversations, no rubric of its own
    with FakeModerationServer() as server:
        server.delay_s = 0.05
        settings = tui_settings.model_copy(
            update={"openai_base_url": server.base_url, "openai_concurrency": 1}
        )  # one call at a time: the job is stopped part-way, by what is stored
        async with app_for(store, settings).run_test(size=SIZE) as pilot:
            screen = await open_dialog(pilot, study)
            choice = screen.query_one("#annotate-rubric-choice", Select)
            assert choice.value == RUBRIC_FILE  # the only choice: a file
            rubric = screen.query_one("#annotate-rubric", Input)
            assert rubric.display and rubric.value.endswith("examples/rubrics/persuasion.yaml")
            screen.query_one("#annotate-model", Input).value = "openai:fake-judge"
            await pilot.click("#start")
            await wait_until(pilot, lambda: screen.job is not None and screen.job.todo == 4)
            assert screen.query_one("#stop").display
            await wait_until(pilot, lambda: screen.job.done >= 1, what="one conversation judged")
            # from now on the server holds every call: the job cannot finish on its own
            server.script(CHAT, *[Fault(hang=True) for _ in range(8)])
            await wait_until(pilot, lambda: status(screen).startswith("Annotating with judge"))
            await wait_until(pilot, lambda: bar(screen)[1] >= 1, what="the bar moving")
            await pilot.click("#stop")
            await wait_until(
                pilot, lambda: screen.job is not None and not screen.job.running, what="the stop"
            )
            assert screen.job.cancelled and screen.job.error is None
            await wait_until(pilot, lambda: status(screen).startswith("Stopped after"))
            assert "what is stored is kept" in status(screen)
            stored = await store.db["annotations"].count_documents({})
            assert stored == 2 * screen.job.done and screen.job.done < 4
            await pilot.press("escape")
            await wait_until(
                pilot, lambda: not isinstance(pilot.app.screen, AnnotateExperimentScreen)
            )
            # again, with every call answered: only the rest is asked
            with server._lock:
                server._faults[CHAT].clear()
            asked = len(server.chat_bodies())
            screen = await open_dialog(pilot, study)
            screen.query_one("#annotate-model", Input).value = "openai:fake-judge"
            await pilot.click("#start")
            await wait_until(
                pilot,
                lambda: screen.job is not None and not screen.job.running,
                within=30,
                what="the second job",
            )
            assert screen.job.error is None and screen.job.todo == 4 - stored // 2
            todo = screen.job.todo
            await wait_until(pilot, lambda: bar(screen) == (todo, todo), what="a full bar")
            assert len(server.chat_bodies()) - asked == screen.job.todo  # the rest, once
    assert await store.db["annotations"].count_documents({}) == 8  # two answers each, once
