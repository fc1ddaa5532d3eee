"""Producing annotations like batches: idempotent, resumable, concurrent, with progress events.

``AnnotationRunner.plan`` reads the selected conversations' messages, asks the annotator for its
items, computes every item's annotation ids and looks them up with ``_id $in`` (a primary-key
lookup on every server): an item is to do when any of its annotations is missing.
``run`` registers the annotator in the catalogue, checks its models, and annotates the items to
do in batches of ``annotator.batch_size``, at most ``concurrency`` batches at once (each model
endpoint's own limit applies inside ``Backends``). Each batch is written as soon as it is
answered, only the ids that were missing, each once: a process killed at any instant loses at
most the batches in flight, and running the same job again annotates exactly what is missing.

A batch that fails (a model down after its retries, a scorer that raised) is counted and
reported; the others go on and a re-run retries it. An error no retry can fix (a rejected API
key, an unknown model) stops the job at once and is raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from simulator.annotations.base import Annotator, Item, item_ids
from simulator.annotations.events import (
    AnnotationFailed,
    AnnotationFinished,
    AnnotationsStored,
    AnnotationStarted,
)
from simulator.domain import Conversation, Message, TokenUsage
from simulator.domain.annotations import Annotation
from simulator.domain.errors import LLMError, SimulatorError
from simulator.domain.models import Decision

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 8
MESSAGE_CHUNK = 50  # conversations whose messages are read in one query


@dataclass
class Plan:
    """What a job would do: every item of the selection, and those not stored yet."""

    conversations: list[Conversation]
    items: list[Item]
    missing: list[Item]
    missing_ids: set[str]

    @property
    def stored(self) -> int:
        return len(self.items) - len(self.missing)


@dataclass
class JobReport:
    """How a job ended."""

    job_id: str
    annotator: str
    version: str
    conversations: int
    items: int
    stored_before: int
    todo: int
    done: int = 0
    failed: int = 0
    written: int = 0  # annotations stored by this job
    decisions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(Decision, 0))
    tokens: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float | None = 0.0
    errors: list[str] = field(default_factory=list)
    cancelled: bool = False

    @property
    def complete(self) -> bool:
        return not self.cancelled and self.done == self.todo


class AnnotationRunner:
    """Plans and runs annotation jobs (see the module docstring)."""

    def __init__(
        self,
        store: Any,
        backends: Any = None,
        bus: Any = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.store = store
        self.backends = backends
        self.bus = bus
        self.concurrency = max(1, int(concurrency))

    # ------------------------------------------------------------------ planning

    async def plan(self, annotator: Annotator, conversations: list[Conversation]) -> Plan:
        items: list[Item] = []
        for start in range(0, len(conversations), MESSAGE_CHUNK):
            chunk = conversations[start : start + MESSAGE_CHUNK]
            messages = await self.store.messages.list_many([c.id for c in chunk])
            by_conversation: dict[str, list[Message]] = {c.id: [] for c in chunk}
            for m in messages:
                by_conversation.setdefault(m.conversation_id, []).append(m)
            for conv in chunk:
                items.extend(await annotator.items(conv, by_conversation[conv.id]))
        wanted = {item.key: item_ids(annotator, item) for item in items}
        all_ids = [i for ids in wanted.values() for i in ids]
        stored = await self.store.annotations.existing(all_ids)
        missing = [item for item in items if any(i not in stored for i in wanted[item.key])]
        missing_ids = {i for item in missing for i in wanted[item.key] if i not in stored}
        return Plan(list(conversations), items, missing, missing_ids)

    # ------------------------------------------------------------------ running

    async def run(
        self,
        annotator: Annotator,
        conversations: list[Conversation],
        *,
        job_id: str | None = None,
        plan: Plan | None = None,
    ) -> JobReport:
        job_id = job_id or uuid.uuid4().hex
        plan = plan or await self.plan(annotator, conversations)
        report = JobReport(
            job_id=job_id,
            annotator=annotator.name,
            version=annotator.version,
            conversations=len(plan.conversations),
            items=len(plan.items),
            stored_before=plan.stored,
            todo=len(plan.missing),
        )
        if plan.missing and self.backends is not None and annotator.models():
            await self.backends.ensure_available(annotator.models())
        experiments = list(dict.fromkeys(c.experiment_id for c in plan.conversations))
        entries = [e for exp in experiments for e in annotator.entries(exp)]
        await self.store.annotations.register(entries)
        await self._publish(
            AnnotationStarted(
                job_id,
                annotator.name,
                annotator.version,
                report.conversations,
                report.items,
                report.stored_before,
                report.todo,
            )
        )
        size = max(1, int(annotator.batch_size))
        batches = [plan.missing[i : i + size] for i in range(0, len(plan.missing), size)]
        gate = asyncio.Semaphore(annotator.concurrency or self.concurrency)
        fatal: list[BaseException] = []
        calls: set[str] = set()

        async def one(batch: list[Item]) -> None:
            async with gate:
                if fatal:
                    return
                try:
                    results = await annotator.annotate(batch)
                    new = _checked(annotator, batch, results, plan.missing_ids)
                    written = await self.store.annotations.insert(new)
                except LLMError as exc:
                    if not exc.retryable:
                        fatal.append(exc)
                    await self._failed(report, batch, exc)
                    return
                except SimulatorError as exc:
                    await self._failed(report, batch, exc)
                    return
            report.done += len(batch)
            report.written += written
            _tally(report, new, calls)
            await self._publish(
                AnnotationsStored(job_id, report.done, report.failed, report.todo, tuple(new))
            )

        tasks = [asyncio.create_task(one(b), name=f"annotate {annotator.name}") for b in batches]
        try:
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            bugs = [o for o in outcomes if isinstance(o, BaseException)]
            if bugs:  # not a model's failure: an annotator's bug, raised as it is
                raise bugs[0]
        except asyncio.CancelledError:
            report.cancelled = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self._publish(
                        AnnotationFinished(
                            job_id, report.done, report.failed, report.todo, report.cancelled
                        )
                    )
                )
        if fatal:
            raise fatal[0]
        return report

    async def _failed(self, report: JobReport, batch: list[Item], exc: SimulatorError) -> None:
        report.failed += len(batch)
        reason = f"{exc.title}: {exc}"
        if reason not in report.errors:
            report.errors.append(reason)
        log.warning("annotating %d item(s) failed: %s", len(batch), reason)
        await self._publish(
            AnnotationFailed(report.job_id, len(batch), reason, report.done, report.failed)
        )

    async def _publish(self, event: Any) -> None:
        if self.bus is not None:
            await self.bus.publish(event)


def _checked(
    annotator: Annotator,
    batch: list[Item],
    results: list[list[Annotation]],
    missing_ids: set[str],
) -> list[Annotation]:
    """The annotations of ``batch`` that were missing; an annotator that answers for other keys
    (or not for every item) is a bug, reported before anything is written."""
    from simulator.annotations.base import AnnotationError

    if len(results) != len(batch):
        raise AnnotationError(
            f"{annotator.name} returned {len(results)} result(s) for {len(batch)} item(s)"
        )
    out: list[Annotation] = []
    for item, answered in zip(batch, results, strict=True):
        expected = set(item_ids(annotator, item))
        got = {a.id for a in answered}
        if got != expected:
            raise AnnotationError(
                f"{annotator.name} answered {sorted(got - expected) or 'nothing'} for item "
                f"{item.key}, which expects {sorted(expected - got)}"
            )
        out.extend(a for a in answered if a.id in missing_ids)
    return out


def _tally(report: JobReport, new: list[Annotation], calls: set[str]) -> None:
    for a in new:
        report.decisions[a.decision] = report.decisions.get(a.decision, 0) + 1
        call = a.call_id or a.id
        if call in calls:
            continue
        calls.add(call)
        report.tokens = report.tokens + a.usage
        if a.model is not None and a.cost_usd is None and a.usage.total_tokens:
            report.cost_usd = None
        elif report.cost_usd is not None and a.cost_usd is not None:
            report.cost_usd = round(report.cost_usd + a.cost_usd, 8)


__all__ = ["DEFAULT_CONCURRENCY", "AnnotationRunner", "JobReport", "Plan"]
