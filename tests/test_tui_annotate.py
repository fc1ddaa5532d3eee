"""Annotating from the conversation browser (Pilot): ``a`` opens the dialog, a judge with the
shipped rubric annotates the highlighted conversation, moderation (at a local server) every
listed one, as app workers with progress in the status line; the answers appear beside the
messages in the transcript; a bad rubric is a toast and stores nothing."""

from __future__ import annotations

from typing import Any

from textual.widgets import Input, Select, Static

from simulator.settings import Settings
from simulator.tui.annotate import AnnotateDialog, jobs_of
from simulator.tui.app import SimulatorApp
from tests.plugins.annotations import DialogueStudy
from tests.plugins.tui import wait_until
from tests.servers import FakeModerationServer
from tests.test_tui_browser import open_browser, show, transcript_text

SIZE = (100, 30)


def app_for(store: Any, settings: Settings) -> SimulatorApp:
    return SimulatorApp(settings, store=store, user="alice", offer_example=False)


async def open_dialog(pilot: Any) -> AnnotateDialog:
    await pilot.press("a")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, AnnotateDialog), what="dialog")
    return pilot.app.screen  # type: ignore[no-any-return]


async def wait_job(pilot: Any) -> Any:
    app = pilot.app
    await wait_until(
        pilot,
        lambda: jobs_of(app).latest() is not None and not jobs_of(app).latest().running,
        within=30,
        what="the annotation job",
    )
    return jobs_of(app).latest()


async def test_judge_the_highlighted_conversation_and_read_the_answers_beside_it(
    store: Any, tui_settings: Settings, dialogue_study: DialogueStudy
) -> None:
    conv = dialogue_study.conversations[1]
    async with app_for(store, tui_settings).run_test(size=SIZE) as pilot:
        screen = await open_browser(pilot, dialogue_study.experiment.name)
        await show(pilot, screen, conv.id)
        await wait_until(pilot, lambda: screen.annotation_loads >= 1, what="the first read")
        loads = screen.annotation_loads
        assert not screen.transcript.annotations  # nothing annotated yet
        dialog = await open_dialog(pilot)
        assert dialog.query_one("#annotate-kind", Select).value == "judge"
        assert dialog.query_one("#annotate-rubric", Input).value.endswith(
            "examples/rubrics/persuasion.yaml"
        )
        assert dialog.query_one("#annotate-model", Input).value == "dryrun:judge"
        assert dialog.query_one("#annotate-scope", Select).value == "one"
        await pilot.click("#start")
        job = await wait_job(pilot)
        assert job.error is None and job.done == job.todo == 1
        assert "1 of 1 item(s) annotated; 2 annotation(s) stored" in job.summary
        await wait_until(
            pilot,
            lambda: bool(screen.transcript.annotations) and not screen.transcript.drawing,
            what="the new annotations drawn",
        )
        assert screen.annotation_loads > loads  # read again once the job stored them
        text = transcript_text(screen.transcript)
        assert "Annotations of the conversation" in text
        assert "judge:persuasion: goal_achieved = " in text
        status = str(screen.query_one("#browser-status", Static).render())
        assert "Annotating with judge (dryrun:judge): 1 of 1 item(s) annotated" in status
    docs = await store.db["annotations"].find({}).to_list(None)
    assert {d["conversation_id"] for d in docs} == {conv.id} and len(docs) == 2


async def test_moderation_of_every_listed_conversation_at_a_local_server(
    store: Any, tui_settings: Settings, dialogue_study: DialogueStudy
) -> None:
    with FakeModerationServer() as server:
        settings = tui_settings.model_copy(update={"openai_base_url": server.base_url})
        async with app_for(store, settings).run_test(size=SIZE) as pilot:
            screen = await open_browser(pilot, dialogue_study.experiment.name)
            await show(pilot, screen, dialogue_study.conversations[0].id)
            dialog = await open_dialog(pilot)
            dialog.query_one("#annotate-kind", Select).value = "moderation"
            await pilot.pause()
            assert dialog.query_one("#annotate-model", Input).value == "omni-moderation-latest"
            assert not dialog.query_one("#annotate-rubric", Input).display
            dialog.query_one("#annotate-scope", Select).value = "listed"
            await pilot.click("#start")
            job = await wait_job(pilot)
            assert job.error is None and job.todo == job.done == 12
            await wait_until(
                pilot,
                lambda: "moderation: " in transcript_text(screen.transcript),
                what="scores under the messages",
            )
        assert len(server.moderation_bodies()) >= 1
    assert await store.db["annotations"].count_documents({}) == 12


async def test_a_bad_rubric_is_a_toast_and_stores_nothing(
    store: Any, tui_settings: Settings, dialogue_study: DialogueStudy
) -> None:
    async with app_for(store, tui_settings).run_test(size=SIZE) as pilot:
        await open_browser(pilot, dialogue_study.experiment.name)
        dialog = await open_dialog(pilot)
        dialog.query_one("#annotate-rubric", Input).value = "/nowhere/rubric.yaml"
        await pilot.click("#start")
        job = await wait_job(pilot)
        assert job.error is not None and "no such rubric file" in job.error
        await wait_until(
            pilot,
            lambda: any("no such rubric file" in str(n.message) for n in pilot.app._notifications),
            what="the toast",
        )
        # the dialog is gone and the app still runs: another key works
        await pilot.press("escape")
    assert await store.db["annotations"].count_documents({}) == 0
    assert await store.db["annotators"].count_documents({}) == 0


async def test_cancel_closes_the_dialog_without_starting_anything(
    store: Any, tui_settings: Settings, dialogue_study: DialogueStudy
) -> None:
    async with app_for(store, tui_settings).run_test(size=SIZE) as pilot:
        screen = await open_browser(pilot, dialogue_study.experiment.name)
        await open_dialog(pilot)
        await pilot.press("escape")
        await wait_until(pilot, lambda: pilot.app.screen is screen, what="the browser")
        assert jobs_of(pilot.app).latest() is None
