"""The one interface every annotator implements, and what they share.

An annotator (an LLM judge with a rubric, the moderation scorer, a Python scorer, an interview,
the commons deception judge) says which catalogue entries it fills (``entries``), which items of
a conversation it annotates (``items``), and annotates a batch of items (``annotate``). The
runner (``simulator.annotations.runner``) computes each item's annotation ids, skips the items
whose annotations are all stored, and writes each new annotation once, by its id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from simulator.domain import Conversation, Message, ModelRef, Provider, TokenUsage
from simulator.domain.annotations import (
    Annotation,
    AnnotatorEntry,
    Target,
    annotation_id,
    digest,
)
from simulator.domain.errors import AnnotationError

Prices = Mapping[str, Mapping[str, float]]  # model -> {input_per_1k, output_per_1k}


@dataclass(frozen=True)
class Item:
    """One unit of work: what one call (or one row of a batched call) annotates.

    ``questions`` are the questions the item answers (``(None,)`` for a scorer's single
    annotation); the item is done when the annotation of every question is stored.
    ``payload`` is the annotator's own data (the message, the agent's context, ...).
    """

    conversation: Conversation
    seq: int | None = None
    agent: str | None = None
    questions: tuple[str | None, ...] = (None,)
    payload: Any = None

    @property
    def key(self) -> str:
        """Identifies the item within one annotator (for call ids and logs)."""
        where = f"{self.seq:06d}" if self.seq is not None else (self.agent or "conversation")
        return f"{self.conversation.id}:{where}"


@runtime_checkable
class Annotator(Protocol):
    """What the runner needs from an annotator (see the module docstring)."""

    name: str  # "judge:persuasion", "moderation", "python:pkg.mod:fn", "interview"
    version: str  # changes whenever what produces the answers changes
    kind: str  # judge, moderation, python, interview, deception
    batch_size: int  # items per ``annotate`` call
    concurrency: int | None  # ``annotate`` calls at once at most (None: the runner's setting)

    def entries(self, experiment_id: str) -> list[AnnotatorEntry]:
        """The catalogue entries this annotator fills in ``experiment_id``."""
        ...

    def models(self) -> list[ModelRef]:
        """Models to check (and pull) before the first call."""
        ...

    async def items(self, conversation: Conversation, messages: list[Message]) -> list[Item]:
        """What to annotate in one conversation (given its stored messages in seq order)."""
        ...

    async def annotate(self, items: list[Item]) -> list[list[Annotation]]:
        """Annotations for each item, in order; raises ``SimulatorError`` when the batch fails
        (nothing of it is stored, a re-run asks again)."""
        ...


def item_ids(annotator: Annotator, item: Item) -> list[str]:
    """The ids of the annotations that make ``item`` done."""
    return [
        annotation_id(
            item.conversation.id,
            seq=item.seq,
            agent=item.agent,
            annotator=annotator.name,
            version=annotator.version,
            question=q,
        )
        for q in item.questions
    ]


def make_annotation(annotator: Annotator, item: Item, **fields: Any) -> Annotation:
    """An annotation of ``item`` by ``annotator``: the key and the conversation's ids filled in."""
    conv = item.conversation
    return Annotation(
        conversation_id=conv.id,
        seq=item.seq,
        agent=item.agent,
        annotator=annotator.name,
        annotator_version=annotator.version,
        kind=annotator.kind,
        experiment_id=conv.experiment_id,
        batch_id=conv.batch_id,
        **fields,
    )


def entries_for(
    annotator: Annotator,
    experiment_id: str,
    questions: list[tuple[str | None, Target, str]],
) -> list[AnnotatorEntry]:
    """Catalogue entries from (question, target, label) triples."""
    return [
        AnnotatorEntry(
            experiment_id=experiment_id,
            annotator=annotator.name,
            annotator_version=annotator.version,
            question=q,
            target=target,
            kind=annotator.kind,
            label=label,
            position=i,
        )
        for i, (q, target, label) in enumerate(questions)
    ]


def model_digest(ref: ModelRef) -> str:
    """Changes when anything that shapes a model's answers changes (name, server, parameters)."""
    return digest(ref.model_dump(mode="json", exclude={"options": {"api_key"}}))


def cost_usd(ref: ModelRef | None, usage: TokenUsage, prices: Prices | None) -> float | None:
    """The cost of ``usage`` on ``ref`` from the price table (USD per 1000 tokens, keyed by
    ``provider:model`` or the model name); dryrun costs nothing; None when no price is known."""
    if ref is None:
        return None
    if ref.provider is Provider.dryrun:
        return 0.0
    price = (prices or {}).get(f"{ref.provider.value}:{ref.model}") or (prices or {}).get(ref.model)
    if price is None:
        return None
    cost = usage.prompt_tokens / 1000 * float(price.get("input_per_1k", 0.0))
    cost += usage.completion_tokens / 1000 * float(price.get("output_per_1k", 0.0))
    return round(cost, 8)


def load_prices(settings: Any) -> dict[str, dict[str, float]]:
    """The PRICE_TABLE file's prices (empty when it is not set); a bad file is a SpecError."""
    path = getattr(settings, "price_table", None)
    if path is None:
        return {}
    from simulator.engine.spec import load_price_table

    return load_price_table(path)


@dataclass
class Usage:
    """Tokens, latency and attempts summed over the calls of one item."""

    usage: TokenUsage = field(default_factory=TokenUsage)
    latency_ms: float = 0.0
    attempts: int = 0

    def add(self, result: Any) -> None:
        self.usage = self.usage + result.usage
        self.latency_ms += float(result.latency_ms)
        self.attempts += int(getattr(result, "attempts", 1) or 1)


def prompt_of(messages: list[Any]) -> list[dict[str, str]]:
    """Chat messages as stored: ``[{role, content}]``, exactly as sent."""
    return [{"role": m.role, "content": m.content} for m in messages]


__all__ = [
    "AnnotationError",
    "Annotator",
    "Item",
    "Prices",
    "Usage",
    "cost_usd",
    "digest",
    "entries_for",
    "item_ids",
    "load_prices",
    "make_annotation",
    "model_digest",
    "prompt_of",
]
