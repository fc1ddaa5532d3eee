"""MongoStore: the ``Store`` protocol on PyMongo's ``AsyncMongoClient`` (never Motor).

The same code runs against a real MongoDB / Atlas and against the embedded ``nx-27017`` server.
The data model keeps clear of that server's known gaps (DESIGN.md "Storage"): messages and state
snapshots are their own documents (no ``$push``), arrays are only ever replaced whole
(whole-document ``replace_one`` or ``$set`` of a field, never positional paths), and text search
uses ``$regex`` on top-level string fields only.

Documents: ``_id`` is the domain id (a string); a message's ``_id`` is
``"<conversation>:<seq:06d>"`` (a state snapshot's ``"<conversation>:<step:06d>"``) and a unique
index on (conversation_id, seq) makes a retried append harmless. Conversion between domain
objects and documents happens only in ``_to_doc`` / ``_from_doc``.

Hot reads go by ``_id``, the one index the embedded server uses for every query shape we need
(docs/architecture.md, "Queries and the indexes that serve them"): a conversation's messages and
snapshots are the ``_id`` range ``["<conversation>:", "<conversation>;")``, read with
``min``/``max`` (``_prefix_range``); bulk reads are ``_id $in`` of computed ids. A plain-field
filter such as ``{conversation_id: X}`` compiles there to SQL that scans the whole collection.
Appends from concurrent tasks are written together (``simulator.db.coalesce``).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    DuplicateKeyError,
    InvalidName,
    OperationFailure,
    PyMongoError,
)
from pymongo.errors import (
    ConfigurationError as PyMongoConfigurationError,
)

from simulator.db.coalesce import InsertCoalescer
from simulator.db.store import (
    NOW,
    PROMPT_FIELDS,
    START_FIELDS,
    ConversationFilter,
    ExperimentFilter,
    LeaseState,
    Store,
)
from simulator.domain import (
    Batch,
    CachedResponse,
    Conversation,
    Experiment,
    Ledger,
    Message,
    Status,
    new_id,
    utcnow,
)
from simulator.domain.annotations import Annotation, AnnotatorEntry
from simulator.domain.errors import (
    AuthenticationError,
    ConfigurationError,
    DatabaseUnavailableError,
    NotFoundError,
    StaleVersionError,
)
from simulator.domain.filters import SINGLE_RUNS
from simulator.settings import redact_uri

if TYPE_CHECKING:
    from simulator.credentials import Credentials
    from simulator.db.embedded import EmbeddedServer
    from simulator.settings import Settings

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# A hidden revision counter bumped by every partial update; guards read-modify-replace writes.
REV = "_rev"

Doc = dict[str, Any]
M = TypeVar("M", bound=BaseModel)


# --------------------------------------------------------------------------- conversions


# Types BSON encodes as they are (exact types: a str-valued enum is not a plain str here).
_PLAIN = frozenset({str, int, float, bool, type(None), datetime, bytes})


def _bson_value(value: Any) -> Any:
    """Plain BSON-encodable data: enums become their values, tuples lists, models dicts."""
    # Fast paths first: every stored message goes through here on the run's critical path.
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        return {k if type(k) is str else str(k): _bson_value(v) for k, v in value.items()}
    if kind is list:
        return [_bson_value(v) for v in value]
    if isinstance(value, BaseModel):
        return _bson_value(value.model_dump(mode="python"))
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _bson_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_bson_value(v) for v in value]
    return value


def _to_doc(model: BaseModel, doc_id: str | None = None) -> Doc:
    """A domain object as a document; datetimes stay datetimes (BSON dates)."""
    doc = _bson_value(model.model_dump(mode="python"))
    if doc_id is None:
        doc_id = doc.pop("id")
    return {"_id": doc_id, **doc}


def _from_doc(cls: type[M], doc: Mapping[str, Any], *, id_field: str | None = "id") -> M:
    data = dict(doc)
    doc_id = data.pop("_id")
    data.pop(REV, None)
    if id_field is not None:
        data[id_field] = doc_id
    return cls.model_validate(data)


def _set_doc(cls: type[BaseModel], fields: Mapping[str, Any]) -> Doc:
    """A ``$set`` document for top-level fields of ``cls``; unknown names are programming errors."""
    unknown = [k for k in fields if k not in cls.model_fields or k == "id"]
    if unknown:
        raise ValueError(f"{cls.__name__} has no settable field(s) {unknown}")
    return {k: _bson_value(v) for k, v in fields.items()}


def _update_of(fields: Doc) -> Doc | None:
    """The update setting ``fields`` (a value ``NOW`` is the server's clock) and bumping the
    revision; None when a value is a datetime, which only a whole-document write stores as
    one on the embedded server (``_Repo._replace_fields``)."""
    now = [k for k, v in fields.items() if v is NOW]
    values = {k: v for k, v in fields.items() if v is not NOW}
    if any(isinstance(v, datetime) for v in values.values()):
        return None
    update: Doc = {"$inc": {REV: 1}}
    if values:
        update["$set"] = values
    if now:
        # The server's clock, stored as a date by every server (the embedded one stores a
        # top-level datetime given to $set as a string).
        update["$currentDate"] = dict.fromkeys(now, True)
    return update


def message_id(conversation_id: str, seq: int) -> str:
    return f"{conversation_id}:{seq:06d}"


#: Ids per ``_id $in`` query and documents per ``insert_many`` (both well under the limits).
ID_CHUNK = 1000
#: Range reads (one conversation each) in flight at once in a bulk read.
RANGE_READS = 4
#: Documents per page of a listing; larger pages are converted to domain objects off the loop.
PAGE = 100
OFF_LOOP = 32
#: Documents per batch of a ``lease_states`` read (a few dozen bytes each).
LEASE_PAGE = 1000


def _prefix_range(
    cursor: Any, prefix: str, start: str | None = None, end: str | None = None
) -> Any:
    """``cursor`` restricted to the ``_id`` range of the children of ``prefix``: ids from
    ``start`` (default ``"<prefix>:"``) up to ``end`` (default ``"<prefix>;"``, ``;`` being the
    character after ``:``), in ``_id`` order.

    Why ``min``/``max`` and not ``{_id: {$gte, $lt}}``: the embedded server evaluates a range
    operator on ``_id`` in Python over the whole collection, while it turns ``min``/``max`` into
    ``_id >= ? AND _id < ?``, a search of its ``_id`` index; MongoDB serves both from its ``_id``
    index and wants the ``hint`` with ``min``/``max``."""
    low = start if start is not None else f"{prefix}:"
    high = end if end is not None else f"{prefix};"
    return (
        cursor.min([("_id", low)])
        .max([("_id", high)])
        .hint([("_id", ASCENDING)])
        .sort([("_id", ASCENDING)])
    )


def _chunks(items: builtins.list[str], size: int = ID_CHUNK) -> Iterable[builtins.list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _convert(cls: type[M], docs: builtins.list[Doc], **kw: Any) -> builtins.list[M]:
    """Documents as domain objects; a large page is converted on a worker thread, so that a
    listing never holds the event loop (the UI's) for long."""
    if len(docs) < OFF_LOOP:
        return [_from_doc(cls, d, **kw) for d in docs]
    return await asyncio.to_thread(lambda: [_from_doc(cls, d, **kw) for d in docs])


def _projection(brief: bool) -> Doc | None:
    """The projection of a conversation listing: ``brief`` leaves the prompts out (top-level
    fields only: the embedded server ignores paths into arrays of sub-documents)."""
    return dict.fromkeys(PROMPT_FIELDS, 0) if brief else None


# --------------------------------------------------------------------------- repositories


class _Repo:
    def __init__(self, coll: AsyncCollection[Doc]) -> None:
        self.coll = coll

    async def _find(
        self, query: Doc, sort: builtins.list[tuple[str, int]] | None = None
    ) -> builtins.list[Doc]:
        cursor = self.coll.find(query)
        if sort:
            cursor = cursor.sort(sort)
        return await cursor.to_list(None)

    async def ids_with_prefix(self, prefix: str, limit: int = 20) -> builtins.list[str]:
        """Ids that start with ``prefix``, in order, at most ``limit`` (an ``_id`` range, served
        by the ``_id`` index on every server)."""
        cursor = self.coll.find({}, {"_id": 1})
        cursor = _prefix_range(cursor, prefix, start=prefix, end=prefix + "\U0010ffff")
        return [str(d["_id"]) async for d in cursor.limit(limit)]

    async def _set(self, doc_id: str, what: str, fields: Doc) -> None:
        if not fields:
            return
        update = _update_of(fields)
        if update is None:
            now = utcnow()
            await self._replace_fields(
                doc_id, what, {k: now if v is NOW else v for k, v in fields.items()}
            )
            return
        result = await self.coll.update_one({"_id": doc_id}, update)
        if result.matched_count == 0:
            raise NotFoundError(f"{what} {doc_id} does not exist (it may have been deleted).")

    async def _replace_fields(self, doc_id: str, what: str, fields: Doc) -> None:
        """Set fields by replacing the whole document, guarded by its revision.

        Why: the embedded server stores a top-level datetime given to ``$set`` as a naive string
        (nested ones and whole-document writes keep their type), so a timestamp given as a value
        is written this way; "now" is cheaper as ``NOW`` (one ``$currentDate`` update). The
        revision filter makes a concurrent partial update (say, a favourite set while the run
        finishes) win a retry instead of being lost.
        """
        for _ in range(20):
            doc = await self.coll.find_one({"_id": doc_id})
            if doc is None:
                raise NotFoundError(f"{what} {doc_id} does not exist (it may have been deleted).")
            rev = doc.get(REV, 0)
            guard = {"_id": doc_id, REV: rev} if REV in doc else {"_id": doc_id, REV: None}
            result = await self.coll.replace_one(guard, {**doc, **fields, REV: rev + 1})
            if result.matched_count == 1:
                return
        raise DatabaseUnavailableError(
            f"{what} {doc_id} kept changing while being updated; try again."
        )


class MongoExperimentRepo(_Repo):
    def __init__(self, store: MongoStore) -> None:
        super().__init__(store.db["experiments"])
        self._store = store

    async def create(self, experiment: Experiment) -> Experiment:
        try:
            await self.coll.insert_one(_to_doc(experiment))
        except DuplicateKeyError:
            stored = await self.get(experiment.id)  # a retried create: keep the stored one
            if stored is None:
                raise
            return stored
        return experiment

    async def get(self, experiment_id: str) -> Experiment | None:
        doc = await self.coll.find_one({"_id": experiment_id})
        return None if doc is None else _from_doc(Experiment, doc)

    async def list(self, flt: ExperimentFilter | None = None) -> builtins.list[Experiment]:
        flt = flt or ExperimentFilter()
        query: Doc = {}
        if flt.owner is not None:
            query["owner"] = flt.owner
        if flt.favourites_only:
            query["favourite"] = True
        if flt.kind is not None:
            query["kind"] = _bson_value(flt.kind)
        if flt.text:
            # Top-level string fields only: $regex on array sub-fields fails on the embedded server.
            pattern = {"$regex": re.escape(flt.text.strip()), "$options": "i"}
            query["$or"] = [{"name": pattern}, {"note": pattern}]
        docs = await self._find(query, sort=[("updated_at", DESCENDING), ("_id", ASCENDING)])
        return [_from_doc(Experiment, d) for d in docs]

    async def update(self, experiment: Experiment) -> Experiment:
        expected = experiment.version
        new = experiment.model_copy(update={"version": expected + 1, "updated_at": utcnow()})
        result = await self.coll.replace_one(
            {"_id": experiment.id, "version": expected}, _to_doc(new)
        )
        if result.matched_count == 1:
            return new
        stored = await self.coll.find_one({"_id": experiment.id}, {"version": 1})
        if stored is None:
            raise NotFoundError(
                f"Experiment {experiment.name!r} no longer exists (it was deleted)."
            )
        raise StaleVersionError(
            f"Experiment {experiment.name!r} was changed by someone else (stored version "
            f"{stored.get('version')}, yours is based on version {expected}); reload it and "
            "apply your changes again."
        )

    async def set_fields(self, experiment_id: str, **fields: Any) -> None:
        await self._set(experiment_id, "Experiment", _set_doc(Experiment, fields))

    async def duplicate(
        self, experiment_id: str, owner: str, name: str | None = None
    ) -> Experiment:
        source = await self.get(experiment_id)
        if source is None:
            raise NotFoundError(
                f"Experiment {experiment_id} does not exist (it may have been deleted)."
            )
        now = utcnow()
        copy = source.model_copy(
            update={
                "id": new_id(),
                "owner": owner,
                "name": name if name and name.strip() else f"{source.name} (copy)",
                "version": 1,
                "parent_id": source.id,
                "created_at": now,
                "updated_at": now,
                "favourite": False,
            },
            deep=True,
        )
        copy = Experiment.model_validate(copy.model_dump())  # re-validate (the name, above all)
        await self.coll.insert_one(_to_doc(copy))
        return copy

    async def delete(self, experiment_id: str) -> None:
        # Children first: a crash half-way leaves the experiment visible; deleting again finishes.
        db = self._store.db
        conv_ids = [
            d["_id"]
            async for d in db["conversations"].find({"experiment_id": experiment_id}, {"_id": 1})
        ]
        await self._store._delete_conversation_children(conv_ids)
        await db["conversations"].delete_many({"experiment_id": experiment_id})
        batch_ids = [
            d["_id"] async for d in db["batches"].find({"experiment_id": experiment_id}, {"_id": 1})
        ]
        if batch_ids:  # the response cache is shared by every batch: it stays
            await db["ledgers"].delete_many({"_id": {"$in": batch_ids}})
        await db["batches"].delete_many({"experiment_id": experiment_id})
        await db["annotators"].delete_many({"experiment_id": experiment_id})
        await self.coll.delete_one({"_id": experiment_id})

    async def count_conversations(self, experiment_ids: builtins.list[str]) -> dict[str, int]:
        counts = dict.fromkeys(experiment_ids, 0)
        if not experiment_ids:
            return counts
        cursor = await self._store.db["conversations"].aggregate(
            [
                {"$match": {"experiment_id": {"$in": experiment_ids}}},
                {"$group": {"_id": "$experiment_id", "n": {"$sum": 1}}},
            ]
        )
        async for row in cursor:
            counts[row["_id"]] = int(row["n"])
        return counts


class MongoBatchRepo(_Repo):
    async def create(self, batch: Batch) -> Batch:
        try:
            await self.coll.insert_one(_to_doc(batch))
        except DuplicateKeyError:
            stored = await self.get(batch.id)
            if stored is None:
                raise
            return stored
        return batch

    async def get(self, batch_id: str) -> Batch | None:
        doc = await self.coll.find_one({"_id": batch_id})
        return None if doc is None else _from_doc(Batch, doc)

    async def list(
        self, experiment_id: str | None = None, unfinished_only: bool = False
    ) -> builtins.list[Batch]:
        query: Doc = {}
        if experiment_id is not None:
            query["experiment_id"] = experiment_id
        if unfinished_only:
            query["status"] = {"$in": ["pending", "running"]}
        docs = await self._find(query, sort=[("created_at", DESCENDING), ("_id", ASCENDING)])
        return [_from_doc(Batch, d) for d in docs]

    async def set_fields(self, batch_id: str, **fields: Any) -> None:
        await self._set(batch_id, "Batch", _set_doc(Batch, fields))

    async def update_if(
        self, batch_id: str, check: Callable[[Batch], bool], **fields: Any
    ) -> Batch | None:
        changes = _set_doc(Batch, fields)
        for _ in range(20):
            doc = await self.coll.find_one({"_id": batch_id})
            if doc is None:
                raise NotFoundError(f"Batch {batch_id} does not exist (it may have been deleted).")
            if not check(_from_doc(Batch, doc)):
                return None
            rev = doc.get(REV, 0)
            guard = {"_id": batch_id, REV: rev} if REV in doc else {"_id": batch_id, REV: None}
            updated = {**doc, **changes, REV: rev + 1}
            result = await self.coll.replace_one(guard, updated)
            if result.matched_count == 1:
                return _from_doc(Batch, updated)
        raise DatabaseUnavailableError(f"Batch {batch_id} kept changing while being updated.")


class MongoConversationRepo(_Repo):
    def __init__(self, store: MongoStore) -> None:
        super().__init__(store.db["conversations"])
        self._store = store

    async def create(self, conversation: Conversation) -> Conversation:
        try:
            await self.coll.insert_one(_to_doc(conversation))
        except DuplicateKeyError:
            stored = await self.get(conversation.id)  # idempotent: a retried create
            if stored is None:
                raise
            return stored
        return conversation

    async def get(self, conversation_id: str) -> Conversation | None:
        doc = await self.coll.find_one({"_id": conversation_id})
        return None if doc is None else _from_doc(Conversation, doc)

    async def get_many(
        self, conversation_ids: builtins.list[str], *, brief: bool = False
    ) -> builtins.list[Conversation]:
        unique = list(dict.fromkeys(conversation_ids))
        docs: dict[str, Doc] = {}
        for chunk in _chunks(unique):
            async for d in self.coll.find({"_id": {"$in": chunk}}, _projection(brief)):
                docs[d["_id"]] = d
        return await _convert(Conversation, [docs[i] for i in unique if i in docs])

    async def list(
        self, flt: ConversationFilter | None = None, *, brief: bool = False
    ) -> builtins.list[Conversation]:
        out: builtins.list[Conversation] = []
        async for page in self.pages(flt, brief=brief):
            out += page
        return out

    async def pages(
        self, flt: ConversationFilter | None = None, *, brief: bool = False, size: int = PAGE
    ) -> AsyncIterator[builtins.list[Conversation]]:
        """Conversations passing ``flt``, oldest first, ``size`` at a time. Each filter field
        that narrows a listing (experiment, batch, status) has its own index, which serves an
        equality on the embedded server as on MongoDB."""
        query = self._query(flt or ConversationFilter())
        cursor = self.coll.find(query, _projection(brief))
        cursor = cursor.sort([("created_at", ASCENDING), ("cell_index", ASCENDING)])
        cursor = cursor.batch_size(size)
        while docs := await cursor.to_list(size):
            page = await _convert(Conversation, docs)
            if flt is not None and flt.active:  # what no index serves: models, counts, ...
                page = [c for c in page if flt.matches(c)]
            if page:
                yield page

    async def lease_states(self, batch_id: str) -> builtins.list[LeaseState]:
        fields = {"status": 1, "runner": 1, "lease_until": 1, "created_at": 1, "cell_index": 1}
        cursor = self.coll.find({"batch_id": batch_id}, fields)
        cursor = cursor.sort([("created_at", ASCENDING), ("cell_index", ASCENDING)])
        return [
            LeaseState(d["_id"], Status(d["status"]), d.get("runner"), d.get("lease_until"))
            async for d in cursor.batch_size(LEASE_PAGE)
        ]

    def _query(self, flt: ConversationFilter) -> Doc:
        """The query of a filter's indexed fields; the filter checks the rest (``pages``)."""
        query: Doc = {}
        if flt.experiment_id is not None:
            query["experiment_id"] = flt.experiment_id
        if flt.batch_id is not None and flt.batch_id != SINGLE_RUNS:
            query["batch_id"] = flt.batch_id
        if flt.status is not None:
            query["status"] = _bson_value(Status(flt.status))
        if flt.days is not None:
            query["cell.days"] = flt.days
        if flt.favourites_only:
            query["favourite"] = True
        return query

    async def set_fields(self, conversation_id: str, **fields: Any) -> None:
        await self._set(conversation_id, "Conversation", _set_doc(Conversation, fields))

    async def start(self, conversation_id: str, **fields: Any) -> bool:
        changes = _set_doc(Conversation, fields)
        never = {"_id": conversation_id, "started_at": None}  # null or missing
        update: Doc = {"$currentDate": {"started_at": True}, "$inc": {REV: 1}}
        if changes:
            update["$set"] = changes
        if (await self.coll.update_one(never, update)).matched_count:
            return True
        await self._set(conversation_id, "Conversation", changes)
        return False

    async def delete(self, conversation_id: str) -> None:
        await self._store._delete_conversation_children([conversation_id])
        await self.coll.delete_one({"_id": conversation_id})

    # The lease writes bump the revision: a whole-document write that read the old lease
    # (``_replace_fields``) then retries instead of putting it back.

    async def take_lease(
        self,
        conversation_id: str,
        runner: str,
        until: int,
        *,
        seen_runner: str | None,
        seen_until: int | None,
    ) -> Conversation | None:
        query = {"_id": conversation_id, "runner": seen_runner, "lease_until": seen_until}
        change = {"$set": {"runner": runner, "lease_until": until}, "$inc": {REV: 1}}
        doc = await self.coll.find_one_and_update(
            query, change, return_document=ReturnDocument.AFTER
        )
        if doc is not None:
            return _from_doc(Conversation, doc)
        # Not taken. nx-27017 answers a failed findAndModify as "nothing matched": a lease still
        # as seen means the write itself failed, which must not pass for another worker's win.
        stored = await self.coll.find_one({"_id": conversation_id}, {"runner": 1, "lease_until": 1})
        if stored is not None and (stored.get("runner"), stored.get("lease_until")) == (
            seen_runner,
            seen_until,
        ):
            raise OperationFailure(
                f"taking the lease of conversation {conversation_id} failed on the server"
            )
        return None

    async def take_lease_and_start(
        self,
        conversation_id: str,
        runner: str,
        until: int,
        *,
        seen_runner: str | None,
        seen_until: int | None,
    ) -> Conversation | None:
        never_ran = {
            "_id": conversation_id,
            "runner": seen_runner,
            "lease_until": seen_until,
            "status": _bson_value(Status.pending),
            "started_at": None,  # null or missing
        }
        change = {
            "$set": {
                "runner": runner,
                "lease_until": until,
                **_set_doc(Conversation, START_FIELDS),
            },
            "$currentDate": {"started_at": True},
            "$inc": {REV: 1},
        }
        doc = await self.coll.find_one_and_update(
            never_ran, change, return_document=ReturnDocument.AFTER
        )
        return None if doc is None else _from_doc(Conversation, doc)

    async def renew_leases(
        self, conversation_ids: builtins.list[str], runner: str, until: int
    ) -> builtins.list[str]:
        lost: builtins.list[str] = []
        for chunk in _chunks(conversation_ids):  # by _id: the primary index everywhere
            held = {"_id": {"$in": chunk}, "runner": runner}
            result = await self.coll.update_many(
                held, {"$set": {"lease_until": until}, "$inc": {REV: 1}}
            )
            if result.matched_count < len(chunk):  # some were taken over, ended or deleted
                where = {"_id": {"$in": chunk}}
                found = self.coll.find(where, {"runner": 1})
                holder = {d["_id"]: d.get("runner") async for d in found}
                # a lease its conversation's end released (free now) is not lost
                lost += [i for i in chunk if i not in holder or holder[i] not in (None, runner)]
        return lost

    async def release_lease(self, conversation_id: str, runner: str) -> None:
        await self.coll.update_one(
            {"_id": conversation_id, "runner": runner},
            {"$set": {"runner": None, "lease_until": None}, "$inc": {REV: 1}},
        )

    async def end(self, conversation_id: str, runner: str | None, **fields: Any) -> bool:
        update = _update_of(_set_doc(Conversation, fields))
        if runner is not None and update is not None:
            update["$set"] = {**update.get("$set", {}), "runner": None, "lease_until": None}
            held = {"_id": conversation_id, "runner": runner}
            if (await self.coll.update_one(held, update)).matched_count:
                return True
        await self.set_fields(conversation_id, **fields)
        return False


class MongoMessageRepo(_Repo):
    """``messages``: appends coalesced across tasks, reads by ``_id`` (module docstring)."""

    def __init__(self, coll: AsyncCollection[Doc]) -> None:
        super().__init__(coll)
        self.inserts = InsertCoalescer(coll)

    async def append(self, message: Message) -> bool:
        return await self.inserts.insert(_to_doc(message, message.id))

    async def get(self, conversation_id: str, seq: int) -> Message | None:
        doc = await self.coll.find_one({"_id": message_id(conversation_id, seq)})
        return None if doc is None else _from_doc(Message, doc, id_field=None)

    async def list(self, conversation_id: str) -> builtins.list[Message]:
        docs = await self._range(conversation_id)
        return await _convert(Message, docs, id_field=None)

    async def list_many(
        self,
        conversation_ids: builtins.list[str],
        hints: Mapping[str, int] | None = None,
    ) -> builtins.list[Message]:
        found = await self._many(conversation_ids, hints)
        docs = [d for cid in sorted(found) for d in found[cid]]
        return await _convert(Message, docs, id_field=None)

    async def count_many(
        self,
        conversation_ids: builtins.list[str],
        hints: Mapping[str, int] | None = None,
    ) -> dict[str, int]:
        found = await self._many(conversation_ids, hints, {"_id": 1, "conversation_id": 1})
        return {cid: len(found.get(cid, [])) for cid in dict.fromkeys(conversation_ids)}

    async def delete_from(self, conversation_id: str, seq: int) -> int:
        start = message_id(conversation_id, seq)
        docs = await self._range(conversation_id, {"_id": 1, "conversation_id": 1}, start=start)
        ids = [d["_id"] for d in docs]
        deleted = 0
        for chunk in _chunks(ids):
            deleted += (await self.coll.delete_many({"_id": {"$in": chunk}})).deleted_count
        return deleted

    async def _range(
        self, conversation_id: str, projection: Doc | None = None, start: str | None = None
    ) -> builtins.list[Doc]:
        """A conversation's message documents in seq order (from ``start``, an ``_id``)."""
        cursor = _prefix_range(self.coll.find({}, projection), conversation_id, start=start)
        docs: builtins.list[Doc] = await cursor.to_list(None)
        return docs

    async def _many(
        self,
        conversation_ids: builtins.list[str],
        hints: Mapping[str, int] | None,
        projection: Doc | None = None,
    ) -> dict[str, builtins.list[Doc]]:
        """Message documents by conversation, in seq order. With a hint, a conversation's ids
        ``0 .. hint-1`` are read in bulk (``_id $in``); a conversation with all of them stored,
        or without a hint, is then read (on) by its ``_id`` range. Seqs are dense from 0, so
        no message is missed."""
        unique = list(dict.fromkeys(conversation_ids))
        found: dict[str, builtins.list[Doc]] = {cid: [] for cid in unique}
        hints = hints or {}
        guessed = [message_id(cid, s) for cid in unique for s in range(max(0, hints.get(cid, 0)))]
        for chunk in _chunks(guessed):
            async for d in self.coll.find({"_id": {"$in": chunk}}, projection):
                found[d["conversation_id"]].append(d)
        more = [cid for cid in unique if len(found[cid]) >= hints.get(cid, 0)]
        gate = asyncio.Semaphore(RANGE_READS)

        async def read_on(cid: str) -> None:
            async with gate:
                start = message_id(cid, len(found[cid]))
                found[cid] += await self._range(cid, projection, start=start)

        await asyncio.gather(*(read_on(cid) for cid in more))
        for docs in found.values():
            docs.sort(key=lambda d: d["_id"])
        return found


class MongoStateRepo(_Repo):
    async def put(self, conversation_id: str, step: int, state: dict[str, Any]) -> None:
        doc = {
            "_id": f"{conversation_id}:{step:06d}",
            "conversation_id": conversation_id,
            "step": step,
            "state": _bson_value(state),
            "created_at": utcnow(),
        }
        # Whole-document replace: a retried put of the same step overwrites, never duplicates.
        await self.coll.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def latest(self, conversation_id: str) -> tuple[int, dict[str, Any]] | None:
        cursor = _prefix_range(self.coll.find({}), conversation_id)
        docs = await cursor.sort([("_id", DESCENDING)]).limit(1).to_list(1)
        return None if not docs else (int(docs[0]["step"]), docs[0]["state"])

    async def list(self, conversation_id: str) -> builtins.list[tuple[int, dict[str, Any]]]:
        docs = await _prefix_range(self.coll.find({}), conversation_id).to_list(None)
        return [(int(d["step"]), d["state"]) for d in docs]


DUPLICATE_KEY = 11000


class MongoAnnotationRepo(_Repo):
    """``annotations`` (one document per computed id) and the ``annotators`` catalogue."""

    def __init__(self, store: MongoStore) -> None:
        super().__init__(store.db["annotations"])
        self.catalog_coll: AsyncCollection[Doc] = store.db["annotators"]

    async def insert(self, annotations: builtins.list[Annotation]) -> int:
        docs = list({a.id: _to_doc(a, a.id) for a in annotations}.values())
        inserted = 0
        for start in range(0, len(docs), ID_CHUNK):
            chunk = docs[start : start + ID_CHUNK]
            try:
                result = await self.coll.insert_many(chunk, ordered=False)
                inserted += len(result.inserted_ids)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                inserted += int(exc.details.get("nInserted", 0))
        return inserted

    async def existing(self, ids: builtins.list[str]) -> set[str]:
        found: set[str] = set()
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), ID_CHUNK):
            chunk = unique[start : start + ID_CHUNK]
            cursor = self.coll.find({"_id": {"$in": chunk}}, {"_id": 1})
            found.update([d["_id"] async for d in cursor])
        return found

    async def get_many(self, ids: builtins.list[str]) -> builtins.list[Annotation]:
        unique = list(dict.fromkeys(ids))
        docs: dict[str, Doc] = {}
        for start in range(0, len(unique), ID_CHUNK):
            chunk = unique[start : start + ID_CHUNK]
            async for d in self.coll.find({"_id": {"$in": chunk}}):
                docs[d["_id"]] = d
        return [_from_doc(Annotation, docs[i], id_field=None) for i in unique if i in docs]

    async def register(self, entries: builtins.list[AnnotatorEntry]) -> None:
        for entry in entries:
            with contextlib.suppress(DuplicateKeyError):
                await self.catalog_coll.insert_one(_to_doc(entry, entry.id))

    async def catalog(self, experiment_ids: builtins.list[str]) -> builtins.list[AnnotatorEntry]:
        if not experiment_ids:
            return []
        # A small collection (annotators x questions per experiment): a scan costs nothing.
        cursor = self.catalog_coll.find({"experiment_id": {"$in": list(experiment_ids)}})
        order = [("created_at", ASCENDING), ("position", ASCENDING), ("_id", ASCENDING)]
        docs = await cursor.sort(order).to_list(None)
        return [_from_doc(AnnotatorEntry, d, id_field=None) for d in docs]


class MongoResponseRepo(_Repo):
    """The response cache (``responses``): one document per answer, ``_id`` its key. Reads and
    writes go by ``_id``; the listing for ``simulator cache`` streams in ``_id`` order."""

    async def get(self, key: str) -> CachedResponse | None:
        doc = await self.coll.find_one({"_id": key})
        return None if doc is None else _from_doc(CachedResponse, doc)

    async def put(self, response: CachedResponse, *, replace: bool = False) -> None:
        doc = _to_doc(response)
        if replace:
            await self.coll.replace_one({"_id": doc["_id"]}, doc, upsert=True)
            return
        with contextlib.suppress(DuplicateKeyError):  # the first answer stored wins
            await self.coll.insert_one(doc)

    async def insert_many(self, responses: builtins.list[CachedResponse]) -> int:
        """Store those whose key is not stored yet (an import merges); returns how many."""
        docs = list({r.id: _to_doc(r) for r in responses}.values())
        inserted = 0
        for start in range(0, len(docs), ID_CHUNK):
            chunk = docs[start : start + ID_CHUNK]
            try:
                result = await self.coll.insert_many(chunk, ordered=False)
                inserted += len(result.inserted_ids)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                inserted += int(exc.details.get("nInserted", 0))
        return inserted

    async def iterate(self, batch_size: int = 500) -> AsyncIterator[CachedResponse]:
        """Every stored answer in key order, read page by page (memory stays bounded)."""
        after: str | None = None
        while True:
            query: Doc = {} if after is None else {"_id": {"$gt": after}}
            cursor = self.coll.find(query).sort([("_id", ASCENDING)]).limit(batch_size)
            docs = await cursor.to_list(None)
            if not docs:
                return
            for doc in docs:
                yield _from_doc(CachedResponse, doc)
            after = str(docs[-1]["_id"])

    async def stats(self) -> builtins.list[dict[str, Any]]:
        """Answers and their tokens by provider and model. Counted here from a projection of
        those fields (the embedded server's ``$group`` does not evaluate a compound ``_id``)."""
        totals: dict[tuple[str, str], dict[str, Any]] = {}
        projection = {"provider": 1, "model": 1, "usage": 1}
        async for doc in self.coll.find({}, projection, batch_size=2000):
            key = (str(doc.get("provider", "")), str(doc.get("model", "")))
            row = totals.setdefault(
                key,
                {"provider": key[0], "model": key[1], "answers": 0, "prompt_tokens": 0,
                 "completion_tokens": 0},
            )  # fmt: skip
            usage = doc.get("usage") or {}
            row["answers"] += 1
            row["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
            row["completion_tokens"] += int(usage.get("completion_tokens") or 0)
        return [totals[k] for k in sorted(totals)]

    async def clear(self, model: str | None = None, provider: str | None = None) -> int:
        """Delete every answer (or those of one model / provider); returns how many."""
        query: Doc = {}
        if model is not None:
            query["model"] = model
        if provider is not None:
            query["provider"] = provider
        result = await self.coll.delete_many(query)
        return int(result.deleted_count)


class MongoLedgerRepo(_Repo):
    """Cost ledgers (``ledgers``), one document per batch, ``_id`` the batch's id."""

    async def get(self, batch_id: str) -> Ledger | None:
        doc = await self.coll.find_one({"_id": batch_id})
        return None if doc is None else _from_doc(Ledger, doc, id_field=None)

    async def get_many(self, batch_ids: builtins.list[str]) -> builtins.list[Ledger]:
        found: dict[str, Ledger] = {}
        unique = list(dict.fromkeys(batch_ids))
        for start in range(0, len(unique), ID_CHUNK):
            async for doc in self.coll.find({"_id": {"$in": unique[start : start + ID_CHUNK]}}):
                found[str(doc["_id"])] = _from_doc(Ledger, doc, id_field=None)
        return [found[i] for i in unique if i in found]

    async def put(self, ledger: Ledger) -> None:
        # whole-document replace: datetimes keep their type on the embedded server
        await self.coll.replace_one(
            {"_id": ledger.batch_id}, _to_doc(ledger, ledger.batch_id), upsert=True
        )


# --------------------------------------------------------------------------- the store


class MongoSlotRepo(_Repo):
    """Every query is by ``_id`` (the primary index on every server)."""

    async def ensure(self, endpoint: str, slot_ids: builtins.list[str]) -> None:
        docs = [{"_id": i, "endpoint": endpoint, "holder": None, "until": 0} for i in slot_ids]
        with contextlib.suppress(BulkWriteError, DuplicateKeyError):  # another process did
            await self.coll.insert_many(docs, ordered=False)

    async def get(self, slot_ids: builtins.list[str]) -> builtins.list[Doc]:
        return await self._find({"_id": {"$in": slot_ids}})

    async def take(
        self, slot_id: str, holder: str, until: int, *, seen_holder: str | None, seen_until: int
    ) -> bool:
        result = await self.coll.update_one(
            {"_id": slot_id, "holder": seen_holder, "until": seen_until},
            {"$set": {"holder": holder, "until": until}},
        )
        return result.modified_count == 1

    async def free(self, slot_id: str, holder: str) -> None:
        await self.coll.update_one(
            {"_id": slot_id, "holder": holder}, {"$set": {"holder": None, "until": 0}}
        )


class MongoStore:
    """The ``Store`` for one database; create with ``connect_store`` (which also calls ``init``)."""

    def __init__(self, client: AsyncMongoClient[Doc], db_name: str, uri: str = "") -> None:
        self.client = client
        self.db: AsyncDatabase[Doc] = client[db_name]
        self.db_name = db_name
        self.uri_redacted = redact_uri(uri)
        self._uri = uri  # for ``reopen`` only: never logged or shown (it may hold a password)
        self._timeout_ms = 5000
        self.experiments = MongoExperimentRepo(self)
        self.batches = MongoBatchRepo(self.db["batches"])
        self.conversations = MongoConversationRepo(self)
        self.messages = MongoMessageRepo(self.db["messages"])
        self.states = MongoStateRepo(self.db["states"])
        self.annotations = MongoAnnotationRepo(self)
        self.responses = MongoResponseRepo(self.db["responses"])
        self.ledgers = MongoLedgerRepo(self.db["ledgers"])
        self.slots = MongoSlotRepo(self.db["slots"])

    async def init(self) -> None:
        """Check the schema version and create the indexes (idempotent)."""
        meta = self.db["meta"]
        doc = await meta.find_one({"_id": "schema"})
        if doc is None:
            with contextlib.suppress(DuplicateKeyError):  # another process got there first
                await meta.insert_one(
                    {"_id": "schema", "version": SCHEMA_VERSION, "created_at": utcnow()}
                )
            doc = await meta.find_one({"_id": "schema"}) or {"version": SCHEMA_VERSION}
        version = int(doc.get("version", 0))
        if version > SCHEMA_VERSION:
            raise ConfigurationError(
                f"Database {self.db_name!r} was written by a newer version of the simulator "
                f"(schema version {version}; this version understands {SCHEMA_VERSION}). "
                "Upgrade the simulator, or set MONGODB_DB to use another database.",
                title="Database too new",
            )
        db = self.db
        await db["experiments"].create_index([("owner", ASCENDING), ("name", ASCENDING)])
        await db["experiments"].create_index([("updated_at", DESCENDING)])
        await db["batches"].create_index([("experiment_id", ASCENDING), ("created_at", ASCENDING)])
        # The embedded server serves an equality only from an index on that field alone: an
        # experiment's batches (a new batch's estimate learns from their ledgers).
        await db["batches"].create_index([("experiment_id", ASCENDING)])
        for field in ("experiment_id", "batch_id", "status"):
            await db["conversations"].create_index([(field, ASCENDING)])
        await db["messages"].create_index(
            [("conversation_id", ASCENDING), ("seq", ASCENDING)], unique=True
        )
        await db["states"].create_index(
            [("conversation_id", ASCENDING), ("step", ASCENDING)], unique=True
        )
        # Reads go by computed _id; these serve deletes and ad-hoc queries on a real MongoDB.
        await db["annotations"].create_index([("conversation_id", ASCENDING), ("seq", ASCENDING)])
        await db["annotators"].create_index([("experiment_id", ASCENDING)])

    async def schema_version(self) -> int:
        doc = await self.db["meta"].find_one({"_id": "schema"})
        return int(doc["version"]) if doc else 0

    async def ping(self) -> None:
        try:
            await self.client.admin.command("ping")
        except PyMongoError as exc:
            raise DatabaseUnavailableError(
                f"Lost the connection to MongoDB at {_host_of(self.uri_redacted)}: "
                f"{redact_uri(str(exc))}"
            ) from None

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # appends still queued are written first
            await self.messages.inserts.flush()
        await self.client.close()

    async def reopen(self) -> MongoStore:
        """A second store on the same server and database, with its own client: for another
        event loop (a client is bound to the loop it was first used on). Close it yourself."""
        return await connect_store(self._uri, self.db_name, self._timeout_ms)

    async def drop_database(self) -> None:
        """Delete every collection of this database (tests and ``simulator db`` maintenance)."""
        await self.client.drop_database(self.db_name)

    async def _delete_conversation_children(self, conversation_ids: list[str]) -> None:
        if not conversation_ids:
            return
        where = {"conversation_id": {"$in": conversation_ids}}
        await self.db["annotations"].delete_many(where)
        await self.db["states"].delete_many(where)
        await self.db["messages"].delete_many(where)


def _host_of(uri: str) -> str:
    """The host part of a URI (no credentials, no path): what error messages name."""
    rest = uri.split("://", 1)[-1]
    rest = rest.rsplit("@", 1)[-1]
    return rest.split("/", 1)[0].split("?", 1)[0] or uri


def _has_credentials(uri: str) -> bool:
    return "@" in uri.split("://", 1)[-1].split("/", 1)[0]


async def connect_store(
    uri: str, db_name: str, timeout_ms: int = 5000, *, advice: str | None = None
) -> MongoStore:
    """Connect, ping within ``timeout_ms``, check the schema and create indexes.

    ``advice`` says what to do when the server cannot be reached or refuses the login, in place
    of the advice about MONGODB_URI and DB_CLUSTER_URL (a remembered login has other remedies).

    Raises DatabaseUnavailableError (naming the host, never the password) when unreachable,
    AuthenticationError when the credentials are refused or the server has no authentication,
    ConfigurationError for a malformed URI (its SRV, TLS or authentication options named) or
    database name.
    """
    from simulator.settings import uri_problem, uri_topic

    host = _host_of(redact_uri(uri))
    problem = uri_problem(uri)
    if problem:
        raise ConfigurationError(
            f"The MongoDB URI {redact_uri(uri)} is not valid: {problem}. Check MONGODB_URI "
            "(or DB_CLUSTER_URL) in your environment or .env.",
            title="Invalid MongoDB URI",
        )
    try:
        client: AsyncMongoClient[Doc] = AsyncMongoClient(
            uri,
            tz_aware=True,
            tzinfo=UTC,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            appname="llm-interaction-simulator",
        )
    except (PyMongoConfigurationError, ValueError, TypeError, OSError) as exc:
        # OSError: a TLS certificate or key file that cannot be read
        raise ConfigurationError(
            f"The MongoDB URI {redact_uri(uri)} is not valid ({uri_topic(str(exc))}): "
            f"{redact_uri(str(exc))}. Check MONGODB_URI (or DB_CLUSTER_URL) in your "
            "environment or .env.",
            title="Invalid MongoDB URI",
        ) from None
    try:
        store = MongoStore(client, db_name, uri)
    except InvalidName as exc:
        await client.close()
        raise ConfigurationError(
            f"MONGODB_DB={db_name!r} is not a valid database name: {exc}.",
            title="Invalid setting",
        ) from None
    try:
        await client.admin.command("ping")
        await store.init()
    except OperationFailure as exc:
        await client.close()
        if exc.code in (18, 8000):  # AuthenticationFailed (8000: Atlas)
            raise AuthenticationError(
                f"MongoDB at {host} refused the user name or password. "
                + (advice or "Check DB_USER and DB_PASSWORD (or MONGODB_URI), or log in again.")
            ) from None
        if exc.code == 59 and _has_credentials(uri):  # CommandNotFound: no saslStart
            raise _no_authentication(host) from None
        raise DatabaseUnavailableError(
            f"MongoDB at {host} refused a command: {redact_uri(str(exc))}"
        ) from None
    except PyMongoConfigurationError as exc:  # found while connecting: SRV records, auth setup
        await client.close()
        raise ConfigurationError(
            f"The MongoDB URI {redact_uri(uri)} cannot be used ({uri_topic(str(exc))}): "
            f"{redact_uri(str(exc))}. Check MONGODB_URI (or DB_CLUSTER_URL) in your "
            "environment or .env.",
            title="Invalid MongoDB URI",
        ) from None
    except PyMongoError as exc:
        await client.close()
        if _tls_failure(exc):
            raise ConfigurationError(
                f"The TLS handshake with MongoDB at {host} failed: "
                f"{_first_line(redact_uri(str(exc)))}. Check the TLS options of MONGODB_URI "
                "(tls=true needs a server with TLS; tls=false one without).",
                title="TLS problem",
            ) from None
        tls = ""
        if re.search(r"[?&](tls|ssl)=true", uri, re.IGNORECASE):
            tls = " TLS is on (tls=true): a server without TLS never answers such a client."
        raise DatabaseUnavailableError(
            f"Cannot reach MongoDB at {host} within {timeout_ms / 1000:g}s "
            f"({type(exc).__name__}). "
            + (
                advice
                or "Check that the server runs and the address is right (MONGODB_URI or "
                "DB_CLUSTER_URL), or unset them to use the embedded local server."
            )
            + tls
        ) from None
    except KeyError as exc:
        # The driver's login found no SCRAM answer: the server has no authentication (the
        # embedded local server is such a server).
        await client.close()
        if _has_credentials(uri):
            raise _no_authentication(host) from None
        raise DatabaseUnavailableError(
            f"MongoDB at {host} gave an answer the driver could not read ({exc!r})."
        ) from None
    except BaseException:
        await client.close()
        raise
    store._timeout_ms = timeout_ms
    return store


class NoAuthenticationError(ConfigurationError):
    """Credentials were given to a server that has no authentication (the embedded one)."""

    title = "No authentication on this server"


def _no_authentication(host: str) -> NoAuthenticationError:
    return NoAuthenticationError(
        f"The server at {host} has no authentication: it does not accept a user name or "
        "password (the embedded local server is such a server; there you are your "
        "operating-system account). Remove the user name and password from MONGODB_URI, or "
        "unset DB_USER/DB_PASSWORD; 'simulator login' is for servers with users, such as Atlas."
    )


def _tls_failure(exc: BaseException) -> bool:
    text = str(exc)
    return "SSL" in text or "TLS" in text or "CERTIFICATE" in text.upper()


def _first_line(text: str) -> str:
    """The first line of a driver message without its topology dump."""
    return text.split("\n", 1)[0].split(", Timeout:", 1)[0].split(" (configured timeouts", 1)[0]


# --------------------------------------------------------------------------- app wiring


async def open_store(
    settings: Settings, remembered: Credentials | None = None, *, advice: str | None = None
) -> tuple[MongoStore, EmbeddedServer | None]:
    """The store the app uses: the configured MongoDB, or the embedded server (started or joined).
    ``advice``: see ``connect_store``. The app opens it through ``services.root.AppRoot``.

    Close both with ``close_store(store, server)``.
    """
    from simulator.db.embedded import EmbeddedServer, default_data_dir

    configured = settings.mongodb_connection_uri(remembered)
    if configured is not None:
        store = await connect_store(
            configured.get_secret_value(),
            settings.mongodb_db,
            settings.mongodb_timeout_ms,
            advice=advice,
        )
        return store, None
    server = EmbeddedServer(default_data_dir(settings))
    uri = await asyncio.to_thread(server.start)
    try:
        store = await connect_store(uri, settings.mongodb_db, settings.mongodb_timeout_ms)
    except BaseException:
        await asyncio.to_thread(server.stop)
        raise
    server.supervise()  # restarted once, on the same port, if it dies while we use it
    return store, server


async def close_store(store: MongoStore | None, server: EmbeddedServer | None) -> None:
    """Close the client, then leave the embedded server (stopping it if no one else uses it)."""
    try:
        if store is not None:
            await store.close()
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)


@contextlib.asynccontextmanager
async def opened_store(
    settings: Settings, remembered: Credentials | None = None
) -> AsyncIterator[MongoStore]:
    store, server = await open_store(settings, remembered)
    try:
        yield store
    finally:
        await close_store(store, server)


if TYPE_CHECKING:  # mypy (tests/test_types.py) checks here that MongoStore is a Store

    def _is_a_store(store: MongoStore) -> Store:
        return store


__all__ = [
    "SCHEMA_VERSION",
    "MongoLedgerRepo",
    "MongoResponseRepo",
    "MongoStore",
    "NoAuthenticationError",
    "close_store",
    "connect_store",
    "message_id",
    "open_store",
    "opened_store",
]
