"""Conversations of the library: browse, read, favourite and delete (owner only); the order
they are listed in and what their filters can choose among."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from simulator.db.store import ConversationFilter, Store
from simulator.domain import Conversation, Message, ModelRef
from simulator.domain.errors import NotFoundError
from simulator.domain.filters import SINGLE_RUNS, model_refs
from simulator.services.ownership import is_owner, require_owner, server_permission


class ConversationService:
    def __init__(self, store: Store, user: str) -> None:
        self.store = store
        self.user = user

    def can_delete(self, conversation: Conversation) -> bool:
        """Whether the current user may delete it (for enabling UI actions)."""
        return is_owner(conversation.owner, self.user)

    async def list(
        self, flt: ConversationFilter | None = None, *, brief: bool = False
    ) -> builtins.list[Conversation]:
        """Conversations passing ``flt``, read in pages converted off the event loop;
        ``brief`` leaves out the prompts (``simulator.db.store.PROMPT_FIELDS``)."""
        return await self.store.conversations.list(flt, brief=brief)

    async def get(self, conversation_id: str) -> Conversation:
        conversation = await self.store.conversations.get(conversation_id)
        if conversation is None:
            raise NotFoundError(f"No conversation {conversation_id} (it may have been deleted).")
        return conversation

    async def messages(self, conversation_id: str) -> builtins.list[Message]:
        """A transcript: the conversation's messages in seq order (one range of the ``_id``
        index, whatever the size of the database)."""
        return (await self.transcript(conversation_id))[1]

    async def transcript(self, conversation_id: str) -> tuple[Conversation, builtins.list[Message]]:
        """The conversation as stored (prompts included) and its messages in seq order."""
        conversation = await self.get(conversation_id)
        return conversation, await self.store.messages.list(conversation_id)

    async def delete(self, conversation_id: str) -> None:
        """Delete a conversation and its messages: only whoever ran it may."""
        conversation = await self.get(conversation_id)
        require_owner(conversation.owner, self.user, "delete", f"conversation {conversation.id}")
        with server_permission("delete", f"conversation {conversation.id}"):
            await self.store.conversations.delete(conversation_id)

    async def toggle_favourite(self, conversation_id: str) -> Conversation:
        """Mark or unmark a conversation as favourite (its owner's, not the experiment's)."""
        conversation = await self.get(conversation_id)
        require_owner(
            conversation.owner,
            self.user,
            "mark as favourite",
            f"conversation {conversation.id}",
        )
        value = not conversation.favourite
        with server_permission("mark as favourite", f"conversation {conversation.id}"):
            await self.store.conversations.set_fields(conversation_id, favourite=value)
        return conversation.model_copy(update={"favourite": value})


# --------------------------------------------------------------------------- listing and choosing


def list_order(conversations: Iterable[Conversation]) -> builtins.list[Conversation]:
    """Batches in the order they were started, each batch's conversations by grid cell."""
    convs = builtins.list(conversations)
    first: dict[str | None, datetime] = {}
    for conv in convs:
        first[conv.batch_id] = min(first.get(conv.batch_id, conv.created_at), conv.created_at)
    return sorted(
        convs,
        key=lambda c: (first[c.batch_id], c.batch_id or "", c.cell_index, c.created_at),
    )


def batch_numbers(conversations: Iterable[Conversation]) -> dict[str | None, int]:
    """Batch id -> 1, 2, ... in the order the batches were started (conversations in
    ``list_order``); conversations without a batch have no number."""
    numbers: dict[str | None, int] = {}
    for conv in conversations:
        if conv.batch_id is not None and conv.batch_id not in numbers:
            numbers[conv.batch_id] = len(numbers) + 1
    return numbers


def counts_key(counts: Mapping[str, int]) -> str:
    """``Guard=1,Prisoner=2``: agents per role as one value (the role order of the cell)."""
    return ",".join(f"{role}={n}" for role, n in counts.items())


def parse_counts(key: str) -> dict[str, int]:
    """The agents per role of a ``counts_key``."""
    out: dict[str, int] = {}
    for part in key.split(","):
        if "=" in part:
            role, n = part.rsplit("=", 1)
            out[role] = int(n)
    return out


def model_key(ref: ModelRef) -> str:
    """``provider:model``: what a model filter is set to."""
    return f"{ref.provider.value}:{ref.model}"


@dataclass(frozen=True)
class FilterChoices:
    """What a filter of these conversations can be set to: each value present among them."""

    #: (batch id or SINGLE_RUNS, its number, or None for the single runs; conversations), in the
    #: order the batches were started, the single runs last
    batches: builtins.list[tuple[str, int | None, int]]
    models: dict[str, ModelRef]  # model_key -> the model
    days: builtins.list[int]
    counts: builtins.list[tuple[str, str]]  # (counts_key, "1v2"), by the counts


def filter_choices(conversations: Iterable[Conversation]) -> FilterChoices:
    """The choices of a ``ConversationFilter`` over ``conversations`` (in ``list_order``)."""
    convs = builtins.list(conversations)
    numbers = batch_numbers(convs)
    sizes: dict[str, int] = {}
    models: dict[str, ModelRef] = {}
    days: set[int] = set()
    counts: dict[str, str] = {}
    for conv in convs:
        key = conv.batch_id or SINGLE_RUNS
        sizes[key] = sizes.get(key, 0) + 1
        for ref in model_refs(conv):
            models.setdefault(model_key(ref), ref)
        days.add(conv.cell.days)
        counts.setdefault(counts_key(conv.cell.counts), conv.cell.counts_label)
    batches = sorted(
        ((key, numbers.get(key), n) for key, n in sizes.items()),
        key=lambda b: b[1] if b[1] is not None else len(numbers) + 1,
    )
    ordered = sorted(counts.items(), key=lambda kv: builtins.list(parse_counts(kv[0]).values()))
    return FilterChoices(batches, models, sorted(days), ordered)
