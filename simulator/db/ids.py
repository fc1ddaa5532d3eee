"""One resolver for the ids a user types: a whole id, or a unique prefix of it as the app prints
them (8 characters in progress lines and the monitor, 12 in ``simulator batches``); experiments
also by exact name.

Every command and the Python analysis API resolve batches, experiments and conversations here,
so they accept the same short ids and fail the same way: an unknown id is a ``NotFoundError``, an
ambiguous prefix an ``AmbiguousIdError`` that lists the candidates (both exit 2 on the command
line). This module reads the store only through its ``Store`` protocol, so every layer above the
database (the engine, analysis, services, commands) can use it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from simulator.db.store import Store
from simulator.domain import Batch, Conversation, Experiment
from simulator.domain.cells import conversation_number
from simulator.domain.errors import NotFoundError

#: The shortest prefix accepted (shorter ones would match by accident).
MIN_PREFIX = 4
#: Candidates named in an ambiguity error.
MAX_LISTED = 10

T = TypeVar("T")


class AmbiguousIdError(NotFoundError):
    """A prefix (or a name) matches several objects; ``candidates`` are their ids."""

    title = "Ambiguous id"

    def __init__(self, message: str, candidates: Sequence[str]) -> None:
        super().__init__(message)
        self.candidates = list(candidates)


def _ambiguous(what: str, ref: str, lines: Sequence[str], more: bool) -> AmbiguousIdError:
    plural = "batches" if what == "batch" else f"{what}s"
    listed = "; ".join(lines[:MAX_LISTED]) + ("; ..." if more or len(lines) > MAX_LISTED else "")
    return AmbiguousIdError(
        f"{ref!r} matches several {plural}: {listed}. Give more of the id.",
        [line.split(" ", 1)[0] for line in lines],
    )


async def _by_prefix(
    ref: str,
    what: str,
    get: Callable[[str], Awaitable[T | None]],
    ids_with_prefix: Callable[..., Awaitable[list[str]]],
    describe: Callable[[T], str],
    hint: str,
) -> T:
    ref = ref.strip()
    if not ref:
        raise NotFoundError(f"No {what} id given. {hint}")
    found = await get(ref)
    if found is not None:
        return found
    if len(ref) < MIN_PREFIX:
        raise NotFoundError(
            f"There is no {what} {ref!r}; give at least {MIN_PREFIX} characters of its id. {hint}"
        )
    ids = await ids_with_prefix(ref, MAX_LISTED + 1)
    if not ids and ref != ref.lower():
        ids = await ids_with_prefix(ref.lower(), MAX_LISTED + 1)
    if len(ids) == 1:
        found = await get(ids[0])
        if found is not None:
            return found
    if len(ids) > 1:
        items = [await get(i) for i in ids[:MAX_LISTED]]
        lines = [describe(x) for x in items if x is not None]
        raise _ambiguous(what, ref, lines, more=len(ids) > MAX_LISTED)
    raise NotFoundError(f"There is no {what} {ref!r}. {hint}")


def _describe_batch(b: Batch) -> str:
    return f"{b.id} ({b.status.value}, {b.created_at:%Y-%m-%d %H:%M})"


def _describe_conversation(c: Conversation) -> str:
    return f"{c.id} (#{conversation_number(c)}, {c.status.value})"


def _describe_experiment(e: Experiment) -> str:
    return f"{e.id} ({e.name!r}, {e.owner or 'no owner'})"


async def resolve_batch(store: Store, ref: str) -> Batch:
    """A batch by id or unique id prefix."""
    return await _by_prefix(
        ref,
        "batch",
        store.batches.get,
        store.batches.ids_with_prefix,
        _describe_batch,
        "List them with 'simulator batches'.",
    )


async def resolve_conversation(store: Store, ref: str) -> Conversation:
    """A conversation by id or unique id prefix."""
    return await _by_prefix(
        ref,
        "conversation",
        store.conversations.get,
        store.conversations.ids_with_prefix,
        _describe_conversation,
        "Export the conversations table ('simulator export --what conversations') to see them.",
    )


async def resolve_experiment(store: Store, ref: str, user: str | None = None) -> Experiment:
    """An experiment by id, unique id prefix, or exact (case-insensitive) name; among several of
    one name, ``user``'s own when it is the only one of theirs."""
    ref = ref.strip()
    hint = "List them with 'simulator experiments list'."
    try:
        return await _by_prefix(
            ref,
            "experiment",
            store.experiments.get,
            store.experiments.ids_with_prefix,
            _describe_experiment,
            hint,
        )
    except AmbiguousIdError:
        raise
    except NotFoundError:
        pass
    from simulator.db.store import ExperimentFilter

    named = [
        e
        for e in await store.experiments.list(ExperimentFilter(text=ref))
        if e.name.casefold() == ref.casefold()
    ]
    mine = [e for e in named if user is not None and e.owner == user]
    if len(named) > 1 and len(mine) == 1:
        named = mine
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        lines = [_describe_experiment(e) for e in named]
        raise AmbiguousIdError(
            f"{ref!r} names several experiments: {'; '.join(lines[:MAX_LISTED])}. "
            "Name one by its id.",
            [e.id for e in named],
        )
    raise NotFoundError(f"No experiment {ref!r} (by id, id prefix or name). {hint}")


async def resolve_conversations(store: Store, refs: Sequence[str]) -> list[Conversation]:
    """Each of ``refs`` resolved (see ``resolve_conversation``), in order, without repeats."""
    out: dict[str, Conversation] = {}
    for ref in refs:
        conv = await resolve_conversation(store, ref)
        out.setdefault(conv.id, conv)
    return list(out.values())


__all__ = [
    "MIN_PREFIX",
    "AmbiguousIdError",
    "resolve_batch",
    "resolve_conversation",
    "resolve_conversations",
    "resolve_experiment",
]
