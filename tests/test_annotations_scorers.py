"""Python scorers: plugged in by dotted path and by entry point (the same path the docs' ToxiGen
recipe takes), run off the event loop in batches, versioned; a scorer's bad output or exception
is reported and nothing of that batch is stored."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from simulator.annotations.base import AnnotationError, item_ids
from simulator.annotations.runner import AnnotationRunner
from simulator.annotations.scorers import PythonScorer, resolve_scorer
from tests import scorers
from tests.plugins.annotations import DialogueStudy


async def scores_of(store: Any, scorer: Any, study: DialogueStudy) -> list[Any]:
    plan = await AnnotationRunner(store).plan(scorer, study.conversations)
    return await store.annotations.get_many([i for it in plan.items for i in item_ids(scorer, it)])


async def test_a_dotted_path_scorer_scores_every_agent_message_in_batches(
    store: Any, dialogue_study: DialogueStudy
) -> None:
    scorer = PythonScorer("tests.scorers:thread_names")
    scorers.THREADS.clear()
    report = await AnnotationRunner(store).run(scorer, dialogue_study.conversations)
    assert report.complete and report.written == 12
    assert scorers.THREADS and threading.current_thread().name not in scorers.THREADS

    lengths = PythonScorer("tests.scorers:lengths")
    assert (lengths.name, lengths.version, lengths.batch_size) == (
        "python:tests.scorers:lengths",
        "1",
        4,
    )
    assert (await AnnotationRunner(store).run(lengths, dialogue_study.conversations)).written == 12
    messages = {
        (m.conversation_id, m.seq): m
        for c in dialogue_study.conversations
        for m in await store.messages.list(c.id)
    }
    for a in await scores_of(store, lengths, dialogue_study):
        text = messages[(a.conversation_id, a.seq)].content
        assert a.scores == {"chars": len(text), "words": len(text.split())}
        assert a.kind == "python" and a.value is None and a.model is None
    assert PythonScorer("tests.scorers:shouting").version == scorers.__version__
    report = await AnnotationRunner(store).run(
        PythonScorer("tests.scorers:async_lengths"), dialogue_study.conversations
    )
    assert report.written == 12


def test_an_entry_point_names_a_scorer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "lab_scorers-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-scorers\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[simulator.scorers]\nlengths = tests.scorers:lengths\nbroken = tests.scorers:nothere\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_scorer("lengths") is scorers.lengths
    assert PythonScorer("lengths").name == "python:lengths"
    with pytest.raises(AnnotationError, match="failed to load"):
        resolve_scorer("broken")
    with pytest.raises(AnnotationError, match=r"installed: broken, lengths"):
        resolve_scorer("toxigen")


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("nosuchmodule.x:f", "cannot import 'nosuchmodule.x'"),
        ("tests.scorers:nothere", "has no 'nothere'"),
        ("tests.scorers:__version__", "is not a function"),
    ],
)
def test_a_scorer_that_cannot_be_found_is_named(spec: str, error: str) -> None:
    with pytest.raises(AnnotationError, match=error):
        PythonScorer(spec)


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("wrong_count", "returned a list of 1 for 4 text"),
        ("not_numbers", "score 'label' of item 0 is 'toxic', not a number"),
        ("raises", "raised RuntimeError: the classifier is not loaded"),
    ],
)
async def test_a_failing_scorer_is_reported_and_stores_nothing(
    store: Any, dialogue_study: DialogueStudy, spec: str, error: str
) -> None:
    scorer = PythonScorer(f"tests.scorers:{spec}")
    scorer.batch_size = 4
    report = await AnnotationRunner(store).run(scorer, dialogue_study.conversations)
    assert report.failed == 12 and report.done == 0 and not report.complete
    assert any(error in e for e in report.errors), report.errors
    assert await store.db["annotations"].count_documents({}) == 0
