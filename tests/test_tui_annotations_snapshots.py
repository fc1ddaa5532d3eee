"""SVG snapshot (pytest-textual-snapshot) of a transcript with annotations at 100x30 on fixed
data: the conversation's own (a judge's verdict, an interview) boxed before the first message,
moderation and a Python scorer's scores and a fallback under the messages they are about.
Taken once the browser has drawn the transcript with its annotations (a state, not a pause).

Update the baseline after an intended change of the UI with
``pytest tests/test_tui_annotations_snapshots.py --snapshot-update`` and review the SVG.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from textual.pilot import Pilot

from simulator.db.mongo import connect_store
from simulator.domain import ModelRef
from simulator.domain.annotations import Annotation, AnnotatorEntry
from simulator.domain.models import Decision
from simulator.settings import Settings
from simulator.tui.app import SimulatorApp
from simulator.tui.screens.browser import ConversationBrowserScreen
from tests.plugins.tui import FIXED_TIME, app_on_fresh_database, snapshot_library, wait_until
from tests.plugins.tui_browser import fixed_conversation, roles_experiment, store_conversation

SIZE = (100, 30)


def fixed_annotations(conversation_id: str, experiment_id: str) -> tuple[list[Any], list[Any]]:
    def ann(**kw: Any) -> Annotation:
        return Annotation(
            conversation_id=conversation_id,
            experiment_id=experiment_id,
            created_at=FIXED_TIME,
            **kw,
        )

    judge = {"annotator": "judge:persuasion", "annotator_version": "1-aaaa", "kind": "judge"}
    moderation = {"annotator": "moderation", "annotator_version": "omni", "kind": "moderation"}
    tone = {"annotator": "judge:tone", "annotator_version": "1-bbbb", "kind": "judge"}
    question = "How did today go?"
    annotations = [
        ann(question="goal_achieved", value="yes", model=ModelRef(model="judge"), **judge),
        ann(question="goal_third", value=2, model=ModelRef(model="judge"), **judge),
        ann(agent="Prisoner 1", question=question, value="It went well; the guard listened.",
            annotator="interview", annotator_version="end", kind="interview"),
        ann(seq=1, value=False, scores={"harassment": 0.02, "violence": 0.11, "hate": 0.01},
            **moderation),
        ann(seq=2, value=True, scores={"harassment": 0.83, "violence": 0.64, "hate": 0.03},
            data={"flagged_categories": ["harassment", "violence"]}, **moderation),
        ann(seq=2, question="hostility", value=None, decision=Decision.fallback,
            decision_cause="no valid answer after one re-ask", **tone),
        ann(seq=4, annotator="python:lab.scores:lengths", annotator_version="1",
            kind="python", scores={"chars": 48.0, "words": 9.0}),
    ]  # fmt: skip
    entries = [
        AnnotatorEntry(experiment_id=experiment_id, annotator=a.annotator,
                       annotator_version=a.annotator_version, question=a.question,
                       target=a.target, kind=a.kind, position=i, created_at=FIXED_TIME)
        for i, a in enumerate(annotations)
    ]  # fmt: skip
    return annotations, entries


async def _populate(uri: str, db: str) -> None:
    store = await connect_store(uri, db)
    try:
        exp = await store.experiments.create(
            roles_experiment(["Guard", "Prisoner"], name="Snapshot study")
        )
        conv, messages = fixed_conversation(exp)
        await store_conversation(store, conv, messages)
        annotations, entries = fixed_annotations(conv.id, exp.id)
        await store.annotations.register(entries)
        await store.annotations.insert(annotations)
    finally:
        await store.close()


@pytest.fixture
def annotated_app(tui_settings: Settings, mongo_uri: str) -> Iterator[SimulatorApp]:
    import os

    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield from app_on_fresh_database(mongo_uri, _populate)
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


async def _browser_with_annotations(pilot: Pilot[Any]) -> None:
    app = pilot.app
    await snapshot_library(pilot)
    await pilot.press("c")
    await wait_until(
        pilot,
        lambda: (
            isinstance(app.screen, ConversationBrowserScreen)
            and app.screen.annotation_loads >= 1
            and not app.screen.transcript.drawing
        ),
        what="the transcript with its annotations",
    )
    app.screen.set_focus(None)  # no cursor highlight that depends on timing
    await pilot.pause()


def test_transcript_with_annotations_snapshot(
    snap_compare: Any, annotated_app: SimulatorApp
) -> None:
    assert snap_compare(annotated_app, terminal_size=SIZE, run_before=_browser_with_annotations)
