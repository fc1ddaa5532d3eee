"""Subprocess entry of the SIGKILL test: annotate every conversation of a database with the
persuasion judge (or the moderation scorer) at an OpenAI-compatible server, until done or killed.

    python -m tests.annotate_worker URI DB BASE_URL [judge|moderation]

Prints ``planned <todo>`` (flushed) once the job is planned, ``finished`` at the end.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from simulator.annotations.service import AnnotationService, AnnotatorSpec
from simulator.db.mongo import connect_store
from simulator.domain.filters import ConversationFilter
from simulator.llm.registry import Backends
from simulator.scenarios.registry import install
from simulator.settings import Settings

RUBRIC = Path(__file__).resolve().parents[1] / "simulator/examples/rubrics/persuasion.yaml"


def spec_for(annotator: str, base_url: str) -> AnnotatorSpec:
    """The annotator of the test and of its re-run: the same spec, hence the same version."""
    if annotator == "moderation":  # small batches: many writes to be killed between
        return AnnotatorSpec("moderation", base_url=base_url, batch_size=4)
    return AnnotatorSpec("judge", rubric=RUBRIC, model="openai:fake-judge", base_url=base_url)


async def main(uri: str, db: str, base_url: str, annotator: str = "judge") -> None:
    store = await connect_store(uri, db)
    settings = Settings(_env_file=None, openai_api_key=None)  # type: ignore[call-arg]
    backends = Backends(settings, max_attempts=1)
    service = AnnotationService(store, backends)
    spec = spec_for(annotator, base_url)
    prepared = await service.prepare(spec, ConversationFilter())
    print(f"planned {len(prepared.plan.missing)}", flush=True)
    await service.run(prepared, concurrency=4)
    print("finished", flush=True)


if __name__ == "__main__":
    install()  # the experiment kinds, as the program's entry point does
    asyncio.run(main(*sys.argv[1:5]))
