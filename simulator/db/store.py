"""The storage interface the services and the engine use (STYLE.md #2).

Implemented by ``simulator.db.mongo.MongoStore`` against any MongoDB wire-protocol server.
Every method returns domain objects, never raw documents.

Reads are shaped for an index on every server (docs/architecture.md, "Queries and the indexes
that serve them"): a conversation's messages and snapshots are read by a range of their computed
``_id``s, bulk reads by ``_id $in`` of computed ids, listings by an indexed field with a
projection that leaves out what no list shows.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from simulator.domain import (
    Batch,
    CachedResponse,
    Conversation,
    Experiment,
    Ledger,
    Message,
    Status,
)
from simulator.domain.annotations import Annotation, AnnotatorEntry

# The one conversation filter: the store serves its indexed fields (experiment, batch, status,
# days, favourites) by query and checks the others in Python.
from simulator.domain.filters import ConversationFilter as ConversationFilter


class _Now:
    """The type of ``NOW`` (compared by identity)."""

    def __repr__(self) -> str:
        return "NOW"


#: A ``set_fields`` value meaning "the database server's current time": written in the same
#: single update as the other fields (``$currentDate``), stored as a date on every server. The
#: caller keeps its own ``utcnow()`` for its in-memory copy.
NOW = _Now()

#: Conversation fields a listing leaves out (``brief=True``): the rendered prompts, kilobytes per
#: conversation that no list, filter or table shows. A brief conversation has them empty.
PROMPT_FIELDS = ("kickoff", "summarizer_prompt", "summarizer_prompts", "manager_prompt")


def message_count_hint(conversation: Conversation) -> int:
    """A guess of how many messages a conversation has stored, for bulk reads by computed id
    (``MessageRepo.list_many``): its agent messages, a kickoff and a summary a day, and a little
    room. Only a guess: a conversation with more is read on from there."""
    return conversation.messages_done + 2 * conversation.cell.days + 4


#: What a conversation's start sets (with ``started_at`` when it never started).
START_FIELDS: dict[str, Any] = {"status": Status.running, "error": None, "finished_at": None}


@dataclass(frozen=True)
class LeaseState:
    """A conversation as a batch's scheduler sees it: its status and its lease, nothing else
    (``ConversationRepo.lease_states``)."""

    id: str
    status: Status
    runner: str | None = None
    lease_until: int | None = None


@dataclass(frozen=True)
class ExperimentFilter:
    text: str | None = None  # case-insensitive match on name and note
    owner: str | None = None
    favourites_only: bool = False
    kind: str | None = None


class ExperimentRepo(Protocol):
    async def ids_with_prefix(self, prefix: str, limit: int = 20) -> builtins.list[str]:
        """Ids starting with ``prefix`` in order, at most ``limit`` (resolving short ids)."""
        ...

    async def create(self, experiment: Experiment) -> Experiment: ...
    async def get(self, experiment_id: str) -> Experiment | None: ...
    async def list(self, flt: ExperimentFilter | None = None) -> list[Experiment]: ...
    async def update(self, experiment: Experiment) -> Experiment:
        """Replace the stored experiment if its stored version equals ``experiment.version``;
        returns it with version + 1. Raises ``StaleVersionError`` otherwise."""
        ...

    async def set_fields(self, experiment_id: str, **fields: Any) -> None:
        """Small view-state updates (favourite, note) that do not bump the version."""
        ...

    async def duplicate(
        self, experiment_id: str, owner: str, name: str | None = None
    ) -> Experiment: ...
    async def delete(self, experiment_id: str) -> None:
        """Delete the experiment with its batches, conversations and messages."""
        ...

    async def count_conversations(self, experiment_ids: builtins.list[str]) -> dict[str, int]: ...


class BatchRepo(Protocol):
    async def ids_with_prefix(self, prefix: str, limit: int = 20) -> builtins.list[str]:
        """Ids starting with ``prefix`` in order, at most ``limit`` (resolving short ids)."""
        ...

    async def create(self, batch: Batch) -> Batch: ...
    async def get(self, batch_id: str) -> Batch | None: ...
    async def list(
        self, experiment_id: str | None = None, unfinished_only: bool = False
    ) -> list[Batch]: ...
    async def set_fields(self, batch_id: str, **fields: Any) -> None: ...
    async def update_if(
        self, batch_id: str, check: Callable[[Batch], bool], **fields: Any
    ) -> Batch | None:
        """Set ``fields`` only if ``check(stored batch)`` holds, atomically (compare-and-set on
        the document's revision); returns the updated batch, or None when the check failed."""
        ...


class ConversationRepo(Protocol):
    async def ids_with_prefix(self, prefix: str, limit: int = 20) -> builtins.list[str]:
        """Ids starting with ``prefix`` in order, at most ``limit`` (resolving short ids)."""
        ...

    async def create(self, conversation: Conversation) -> Conversation:
        """Insert; idempotent on ``conversation.id`` (a retried create returns the stored one)."""
        ...

    async def get(self, conversation_id: str) -> Conversation | None: ...
    async def get_many(
        self, conversation_ids: builtins.list[str], *, brief: bool = False
    ) -> builtins.list[Conversation]:
        """The stored conversations among these ids, in the order of the ids."""
        ...

    async def list(
        self, flt: ConversationFilter | None = None, *, brief: bool = False
    ) -> list[Conversation]:
        """The conversations passing ``flt``, oldest first; ``brief``: without the prompts
        (``PROMPT_FIELDS``), for listings."""
        ...

    def pages(
        self, flt: ConversationFilter | None = None, *, brief: bool = False, size: int = 100
    ) -> AsyncIterator[builtins.list[Conversation]]:
        """``list`` in pages of at most ``size``, converted off the event loop, so that a long
        listing never holds the loop or all of its documents at once."""
        ...

    async def lease_states(self, batch_id: str) -> builtins.list[LeaseState]:
        """The batch's conversations in ``list`` order, each with its status and lease only:
        what a scheduler's look, a progress count and a batch's end read (one indexed query
        of three fields, a fraction of the cost of a listing)."""
        ...

    async def set_fields(self, conversation_id: str, **fields: Any) -> None:
        """Set top-level fields in one update; a value ``NOW`` is the server's current time."""
        ...

    async def start(self, conversation_id: str, **fields: Any) -> bool:
        """Set ``fields``, and ``started_at`` to the server's current time if the stored
        conversation never started; True when it never had (one update in that case)."""
        ...

    async def delete(self, conversation_id: str) -> None: ...

    async def take_lease(
        self,
        conversation_id: str,
        runner: str,
        until: int,
        *,
        seen_runner: str | None,
        seen_until: int | None,
    ) -> Conversation | None:
        """Give the conversation's lease to ``runner`` until ``until`` (epoch milliseconds) if its
        lease is still the one seen (``seen_runner``, ``seen_until``): one atomic
        compare-and-set, so of two workers taking the same conversation exactly one wins.
        Returns the conversation as stored with the new lease (one round trip: the winner needs
        no second read), or None when the lease was not the one seen."""
        ...

    async def take_lease_and_start(
        self,
        conversation_id: str,
        runner: str,
        until: int,
        *,
        seen_runner: str | None,
        seen_until: int | None,
    ) -> Conversation | None:
        """``take_lease`` of a conversation that never ran (``pending``, never started), which
        the same write also starts (status ``running``, ``started_at`` the server's time, as
        ``start`` does): one round trip where a batch made two. None when the lease is no
        longer the one seen or the conversation is not a never-started pending one (the caller
        then takes the lease alone)."""
        ...

    async def renew_leases(
        self, conversation_ids: builtins.list[str], runner: str, until: int
    ) -> builtins.list[str]:
        """Extend ``runner``'s leases; returns the ids whose lease another worker took (or
        that no longer exist). A lease found free is not among them: the end of its
        conversation released it while the runner still counted it as held."""
        ...

    async def release_lease(self, conversation_id: str, runner: str) -> None:
        """Drop ``runner``'s lease (a lease taken over by another worker is left alone)."""
        ...

    async def end(self, conversation_id: str, runner: str | None, **fields: Any) -> bool:
        """Store a conversation's end: ``set_fields(**fields)`` and, while ``runner`` holds the
        lease, its release in the same update (one write where a batch made two). True when
        the lease was released; False when ``runner`` is None or no longer holds it (another
        worker's lease is left alone; the fields are set all the same)."""
        ...


class MessageRepo(Protocol):
    async def append(self, message: Message) -> bool:
        """Store a message; False (and no second copy) when (conversation_id, seq) exists.
        Returns once the message is stored (acknowledged): appends from concurrent tasks are
        written together, one ``insert_many`` per short window."""
        ...

    async def get(self, conversation_id: str, seq: int) -> Message | None:
        """The stored message at ``seq``, if any."""
        ...

    async def list(self, conversation_id: str) -> list[Message]:
        """Every message of a conversation in seq order."""
        ...

    async def list_many(
        self,
        conversation_ids: builtins.list[str],
        hints: Mapping[str, int] | None = None,
    ) -> builtins.list[Message]:
        """Messages of several conversations, ordered by (conversation_id, seq). ``hints``
        guesses how many each has (``message_count_hint``): those are read in bulk by computed
        ids, and only a conversation found to have more is read on by itself."""
        ...

    async def count_many(
        self,
        conversation_ids: builtins.list[str],
        hints: Mapping[str, int] | None = None,
    ) -> dict[str, int]:
        """How many messages each of these conversations has stored (ids only are read)."""
        ...

    async def delete_from(self, conversation_id: str, seq: int) -> int:
        """Delete messages with seq >= ``seq`` (used only by forks, never by resume)."""
        ...


class StateRepo(Protocol):
    """Snapshots of game state (commons rounds, reputation steps), keyed by (conversation, step)."""

    async def put(self, conversation_id: str, step: int, state: dict[str, Any]) -> None: ...
    async def latest(self, conversation_id: str) -> tuple[int, dict[str, Any]] | None: ...
    async def list(self, conversation_id: str) -> list[tuple[int, dict[str, Any]]]: ...


class AnnotationRepo(Protocol):
    """Annotations keyed by a computed ``_id`` (``simulator.domain.annotations``), and the
    catalogue of annotators per experiment. Reads and writes go by ``_id``: a primary-key
    lookup on every server."""

    async def insert(self, annotations: builtins.list[Annotation]) -> int:
        """Store those whose id is not stored yet (the first write wins); returns how many."""
        ...

    async def existing(self, ids: builtins.list[str]) -> set[str]:
        """Which of these ids are stored."""
        ...

    async def get_many(self, ids: builtins.list[str]) -> builtins.list[Annotation]:
        """The stored annotations among these ids, in the order of ``ids``."""
        ...

    async def register(self, entries: builtins.list[AnnotatorEntry]) -> None:
        """Add catalogue entries (idempotent)."""
        ...

    async def catalog(self, experiment_ids: builtins.list[str]) -> builtins.list[AnnotatorEntry]:
        """The catalogue entries of these experiments, oldest first."""
        ...


class ResponseRepo(Protocol):
    """The response cache (docs/cost.md): answers by key, shared by every batch."""

    async def get(self, key: str) -> CachedResponse | None: ...
    async def put(self, response: CachedResponse, *, replace: bool = False) -> None:
        """Store under its key; the first answer stored wins unless ``replace``."""
        ...

    async def insert_many(self, responses: builtins.list[CachedResponse]) -> int:
        """Store those whose key is not stored yet; returns how many were new."""
        ...

    def iterate(self, batch_size: int = 500) -> AsyncIterator[CachedResponse]:
        """Every answer in key order, streamed."""
        ...

    async def stats(self) -> builtins.list[dict[str, Any]]: ...
    async def clear(self, model: str | None = None, provider: str | None = None) -> int: ...


class SlotRepo(Protocol):
    """Concurrency slots of model endpoints shared by every process (``llm/shared_limits.py``):
    one document per slot (``_id`` = ``endpoint#i``) with its holder and expiry."""

    async def ensure(self, endpoint: str, slot_ids: builtins.list[str]) -> None:
        """Create the slots that do not exist yet (free)."""
        ...

    async def get(self, slot_ids: builtins.list[str]) -> builtins.list[dict[str, Any]]:
        """The slots as stored: ``{"_id", "holder", "until"}`` each."""
        ...

    async def take(
        self, slot_id: str, holder: str, until: int, *, seen_holder: str | None, seen_until: int
    ) -> bool:
        """Compare-and-set: hold the slot if it is still as seen."""
        ...

    async def free(self, slot_id: str, holder: str) -> None:
        """Let go of a slot this holder still holds."""
        ...


class LedgerRepo(Protocol):
    """Cost ledgers, one per batch (``_id`` = the batch's id)."""

    async def get(self, batch_id: str) -> Ledger | None: ...
    async def get_many(self, batch_ids: builtins.list[str]) -> builtins.list[Ledger]: ...
    async def put(self, ledger: Ledger) -> None: ...


class Store(Protocol):
    """A database. The repositories are read-only members, so an implementation may hold its
    own repository classes (a protocol's plain attribute would demand exactly these types)."""

    @property
    def experiments(self) -> ExperimentRepo: ...
    @property
    def batches(self) -> BatchRepo: ...
    @property
    def conversations(self) -> ConversationRepo: ...
    @property
    def messages(self) -> MessageRepo: ...
    @property
    def states(self) -> StateRepo: ...
    @property
    def annotations(self) -> AnnotationRepo: ...
    @property
    def responses(self) -> ResponseRepo: ...
    @property
    def ledgers(self) -> LedgerRepo: ...

    async def ping(self) -> None: ...
    async def close(self) -> None: ...


#: The message a task is cancelled with when the database stopped answering: it then stops
#: without trying to store anything (the write could only wait for the same dead server).
STORE_LOST = "the database stopped answering"


def is_store_unreachable(exc: BaseException | None) -> bool:
    """True when ``exc`` (or what it was raised from) says the database could not be reached:
    the server died or the network went away, as opposed to a refused or malformed operation.
    The engine stops scheduling work at the first such failure instead of letting every
    conversation wait out its own timeout."""
    from pymongo.errors import ConnectionFailure

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ConnectionFailure):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False
