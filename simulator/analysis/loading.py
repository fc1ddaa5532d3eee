"""Stored conversations and messages as tidy pandas DataFrames.

One row per message (``load_messages``) or per conversation (``load_conversations``), fully
labelled: the grid cell (``cell`` and its stable ``cell_key``, agents per role as ``count_<role>``,
``days``, ``repeat``, ``seed``, ...) and every study factor as its own ``factor_<name>`` column,
so no one has to recover a study design from free text. Rows of the message frame are in
(conversation_id, seq) order.

The pure builders ``messages_frame`` / ``conversations_frame`` turn domain objects into frames (the
TUI uses them on what a service returned); the ``load_*`` coroutines read the store first and
hold the whole selection in memory (for the small selections a notebook works on). Exports of
any size go through ``select`` and ``chunks`` instead: the selection is a list of ids, and the
conversations and their messages are read and turned into frames a bounded chunk at a time.
Each table declares its columns and their dtypes once (``MESSAGE_COLUMNS``,
``CONVERSATION_COLUMNS``, ``CELL_COLUMNS`` here; the metric tables in ``metrics``); the dtypes are
pandas' nullable ones and never depend on the selection, so a frame written to Parquet reads back
equal. An empty string is a missing value (``<NA>``), as CSV would read it anyway.

Numbers shown to users are 1-based here as everywhere in the app: ``conversation_number`` is the
``#N`` of the run monitor, the browser and the progress lines, ``repeat`` counts from 1. (The
stored ``cell_index`` and ``cell.repeat`` count from 0.)
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from simulator.analysis.games import CLOCK_COLUMNS, clock_values, text_of
from simulator.db.store import Store, message_count_hint
from simulator.domain import Conversation, Experiment, Message, MessageKind, Status
from simulator.domain.cells import (
    cell_key,
    cell_label,
    conversation_number,
    models_label,
    repeat_number,
)
from simulator.domain.errors import NotFoundError
from simulator.domain.filters import SINGLE_RUNS, ConversationFilter, model_refs

#: Message kinds written by agents (what budgets and per-role metrics count).
AGENT_KINDS = frozenset({MessageKind.utterance.value, MessageKind.action.value})
#: The flag the engine puts on a message whose content is a default it applied.
FALLBACK_FLAG = "fallback"
#: Prefix of the flag naming a parameter the server refused (the call ran without it).
DROPPED_PREFIX = "dropped:"
#: Sampling parameter -> its column in the message frame.
PARAM_COLUMNS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "num_ctx": "num_ctx",
    "max_tokens": "max_tokens",
    "seed": "model_seed",
}
#: A parameter as named in a request (``Message.sent_params``) -> its column: the answer-length
#: limit is ``max_tokens`` to OpenAI, ``max_completion_tokens`` to some servers and
#: ``num_predict`` to Ollama.
SENT_COLUMNS = {
    **PARAM_COLUMNS,
    "max_completion_tokens": "max_tokens",
    "num_predict": "max_tokens",
}
#: For messages stored before ``Message.sent_params`` existed: the parameters each provider's
#: backend sent (the configured value unless None; minus what the server refused).
_SENT_BY_PROVIDER = {
    "openai": ("temperature", "top_p", "max_tokens", "seed"),
    "ollama": tuple(PARAM_COLUMNS),
    "dryrun": (),
}
#: Separator of list-valued cells (recipients, flags, agents) in string columns.
LIST_SEP = ", "

STRING = "string"
INT = "Int64"
FLOAT = "Float64"
BOOL = "boolean"
TIME = "datetime64[ns, UTC]"

# The fixed columns of the message frame, in order, with their dtypes. The grid cell's
# ``count_<role>`` columns and the ``factor_<name>`` columns follow them.
MESSAGE_COLUMNS: dict[str, str] = {
    "conversation_id": STRING,
    "seq": INT,
    "day": INT,
    **dict.fromkeys(CLOCK_COLUMNS, INT),  # a game's round / step (its day is missing)
    "turn": INT,
    "speaker": STRING,
    "role": STRING,
    "kind": STRING,
    "public": BOOL,
    "recipients": STRING,
    "content": STRING,
    "raw": STRING,
    "words": INT,
    "chars": INT,
    "data": STRING,
    "provider": STRING,
    "model": STRING,
    "base_url": STRING,
    "temperature": FLOAT,
    "top_p": FLOAT,
    "top_k": INT,
    "num_ctx": INT,
    "max_tokens": INT,
    "model_seed": INT,
    "dropped_params": STRING,
    "prompt_tokens": INT,
    "completion_tokens": INT,
    "total_tokens": INT,
    "cached_tokens": INT,
    "latency_ms": FLOAT,
    "attempts": INT,
    "retries": INT,
    "cost_usd": FLOAT,
    "cache_hit": BOOL,
    "message_flags": STRING,
    "fallback": BOOL,
    "decision": STRING,
    "decision_cause": STRING,
    "created_at": TIME,
    "experiment_id": STRING,
    "experiment_name": STRING,
    "experiment_kind": STRING,
    "batch_id": STRING,
    "conversation_number": INT,
    "conversation_status": STRING,
}

# The grid cell's columns (shared by both frames), before ``count_*`` and ``factor_*``.
CELL_COLUMNS: dict[str, str] = {
    "cell": STRING,
    "cell_key": STRING,
    "cell_counts": STRING,
    "days": INT,
    "total_messages": INT,
    "speaker_selection": STRING,
    "repeat": INT,
    "seed": INT,
    "rounds": INT,
    "cell_provider": STRING,
    "cell_model": STRING,
    "cell_models": STRING,
}

CONVERSATION_COLUMNS: dict[str, str] = {
    "conversation_id": STRING,
    "experiment_id": STRING,
    "experiment_name": STRING,
    "experiment_kind": STRING,
    "batch_id": STRING,
    "conversation_number": INT,
    "owner": STRING,
    "status": STRING,
    "error": STRING,
    "stop_reason": STRING,
    "warnings": STRING,
    "agents": STRING,
    "n_agents": INT,
    "budget": INT,
    "messages_done": INT,
    "messages_stored": INT,
    "fallbacks": INT,
    "prompt_tokens": INT,
    "completion_tokens": INT,
    "total_tokens": INT,
    "created_at": TIME,
    "started_at": TIME,
    "finished_at": TIME,
    "duration_s": FLOAT,
    "favourite": BOOL,
    "parent_id": STRING,
    "forked_at": INT,
}


def column_key(name: str) -> str:
    """A role or factor name as a column suffix: lower case, runs of other characters as ``_``."""
    key = re.sub(r"[^0-9a-z]+", "_", name.strip().casefold()).strip("_")
    return key or "_"


def count_column(role: str) -> str:
    return f"count_{column_key(role)}"


def factor_column(factor: str) -> str:
    return f"factor_{column_key(factor)}"


def word_count(text: str) -> int:
    return len(text.split())


# --------------------------------------------------------------------------- filters


class NoMatchError(NotFoundError):
    """The filters select no conversation. ``filters`` names the ones that matched nothing
    (``factor``, ``counts``, ...) and ``valid`` the values they could have had."""

    title = "Nothing matches"

    def __init__(
        self, message: str, filters: Sequence[str] = (), valid: Mapping[str, list[str]] = {}
    ) -> None:
        super().__init__(message)
        self.filters = list(filters)
        self.valid = {k: list(v) for k, v in valid.items()}


def parse_assignments(
    text: str | Iterable[str] | None, *, what: str, split: bool = True
) -> dict[str, str]:
    """``"guard=1,prisoner=2"`` (or a list of such strings) as a dict; a ValueError names the bad
    part. With ``split=False`` each string is one ``NAME=VALUE`` whose value may hold commas."""
    if text is None:
        return {}
    parts: list[str] = []
    for chunk in [text] if isinstance(text, str) else list(text):
        parts.extend(p for p in (chunk.split(",") if split else [chunk]) if p.strip())
    out: dict[str, str] = {}
    for part in parts:
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"{what}: expected NAME=VALUE, got {part.strip()!r}")
        out[name.strip()] = value.strip()
    return out


def _refs_of(conv: Conversation) -> list[Any]:
    return model_refs(conv)


def _status(value: Status | str) -> str:
    try:
        return Status(value).value
    except ValueError:
        statuses = ", ".join(s.value for s in Status)
        raise NoMatchError(
            f"status {value!r} is not a status (statuses: {statuses})", ["status"]
        ) from None


def _valid_values(name: str, value: str, convs: Sequence[Conversation]) -> tuple[str, list[str]]:
    """Why the filter ``name`` (as ``value``) matched none of ``convs``, and the values it could
    have had among them."""
    if name == "days":
        days = sorted({c.cell.days for c in convs})
        return "days ran", [str(d) for d in days]
    if name == "status":
        return "statuses", sorted({c.status.value for c in convs})
    if name == "model":
        names = sorted({f"{r.provider.value}:{r.model}" for c in convs for r in _refs_of(c)})
        return "models", names
    if name == "counts":
        per_role: dict[str, set[int]] = {}
        for c in convs:
            for r, n in c.cell.counts.items():
                per_role.setdefault(r, set()).add(n)
        known = {r.casefold() for r in per_role}
        asked = [r for r in parse_assignments(value, what="counts")]
        unknown = [r for r in asked if r.strip().casefold() not in known]
        listing = [f"{r} = {' | '.join(str(n) for n in sorted(ns))}" for r, ns in per_role.items()]
        if unknown:
            return f"no role {', '.join(map(repr, unknown))}; roles and agent counts", listing
        return "agent counts per role", listing
    factor, _, _ = value.partition("=")
    levels: dict[str, set[str]] = {}
    for c in convs:
        for f, lv in c.cell.factors.items():
            levels.setdefault(f, set()).add(lv)
    match = [f for f in levels if f.casefold() == factor.strip().casefold()]
    if not match:
        listing = [f"{f} = {' | '.join(sorted(lv))}" for f, lv in levels.items()]
        return f"no study factor {factor.strip()!r}; factors", listing or ["none"]
    return f"levels of {match[0]}", sorted(levels[match[0]])


def explain_no_match(
    convs: Sequence[Conversation], flt: ConversationFilter, where: str
) -> NoMatchError:
    """The error for filters that select nothing among ``convs`` (the conversations of
    ``where``: "the database", "batch 0197b0b3", ...): each filter that matches nothing on its
    own, with its valid values."""
    if not convs:
        return NoMatchError(f"{where[:1].upper()}{where[1:]} has no conversations.")
    failing: list[str] = []
    valid: dict[str, list[str]] = {}
    lines: list[str] = []
    for name, value, test in flt.checks():
        if any(test(c) for c in convs):
            continue
        failing.append(name)
        why, values = _valid_values(name, value, convs)
        valid[name] = values
        sep = "; " if name in ("factor", "counts") else " | "
        lines.append(f"{name} {value} matches no conversation ({why}: {sep.join(values)})")
    if not lines:
        together = ", ".join(f"{n} {v}" for n, v, _ in flt.checks())
        return NoMatchError(
            f"No conversation of {where} matches all of these filters at once: {together} (each "
            "matches some on its own)."
        )
    return NoMatchError(f"In {where}: {'; '.join(lines)}.", failing, valid)


# --------------------------------------------------------------------------- reading the store


async def resolve_experiment(store: Store, key: str) -> Experiment:
    """An experiment by id, unique id prefix or exact (case-insensitive) name
    (``db.ids.resolve_experiment``)."""
    from simulator.db.ids import resolve_experiment as resolve

    return await resolve(store, key)


async def select_conversations(
    store: Store, flt: ConversationFilter | None = None
) -> tuple[list[Conversation], dict[str, Experiment]]:
    """The conversations passing ``flt`` (batch by batch in grid-cell order, see
    ``_batch_order``) and the experiments they belong to, by id. Ids and prefixes are resolved
    first (``NotFoundError``, or ``AmbiguousIdError`` listing the candidates); filters that
    select nothing raise ``NoMatchError`` naming the filter and its valid values."""
    from simulator.db.ids import resolve_batch, resolve_conversations

    flt = flt or ConversationFilter()
    experiment_id = None
    where = "the database"
    if flt.experiment_id is not None:
        exp = await resolve_experiment(store, flt.experiment_id)
        experiment_id, where = exp.id, f"experiment {exp.name!r}"
    batch_id = None
    if flt.batch_id == SINGLE_RUNS:
        batch_id, where = SINGLE_RUNS, "the conversations run on their own"
    elif flt.batch_id is not None:
        batch = await resolve_batch(store, flt.batch_id)
        batch_id, where = batch.id, f"batch {batch.id[:8]}"
    ids = None
    if flt.conversation_ids:
        ids = [c.id for c in await resolve_conversations(store, flt.conversation_ids)]
        where = "the conversations given"
    status = Status(_status(flt.status)) if flt.status is not None else None
    resolved = replace(
        flt, experiment_id=experiment_id, batch_id=batch_id, conversation_ids=ids, status=status
    )
    convs = _batch_order(await store.conversations.list(resolved))
    if not convs:
        base = ConversationFilter(
            experiment_id=experiment_id, batch_id=batch_id, conversation_ids=ids
        )
        raise explain_no_match(await store.conversations.list(base), resolved, where)
    experiments: dict[str, Experiment] = {}
    for exp_id in dict.fromkeys(c.experiment_id for c in convs):
        found = await store.experiments.get(exp_id)
        if found is not None:
            experiments[exp_id] = found
    return convs, experiments


#: A chunk of an export holds at most this many (guessed) messages, and this many
#: conversations: what bounds an export's memory, whatever the size of the selection.
CHUNK_MESSAGES = 5_000
CHUNK_CONVERSATIONS = 1_000


@dataclass
class Selection:
    """What a filter selects, without the conversations themselves: their ids in the store's
    order (``_batch_order``), a message count hint for each, the experiments, and the role and
    factor names that make the frames' columns (the same for every chunk)."""

    ids: list[str]
    hints: dict[str, int]
    experiments: dict[str, Experiment]
    roles: list[str]
    factors: list[str]


async def select(store: Store, flt: ConversationFilter | None = None) -> Selection:
    """The ``Selection`` of ``flt`` (errors as ``select_conversations``), read in pages of
    brief conversations of which only ids and column names are kept."""
    from simulator.db.ids import resolve_batch, resolve_conversations

    flt = flt or ConversationFilter()
    experiment_id = None
    if flt.experiment_id is not None:
        experiment_id = (await resolve_experiment(store, flt.experiment_id)).id
    batch_id = None
    if flt.batch_id == SINGLE_RUNS:
        batch_id = SINGLE_RUNS
    elif flt.batch_id is not None:
        batch_id = (await resolve_batch(store, flt.batch_id)).id
    ids = None
    if flt.conversation_ids:
        ids = [c.id for c in await resolve_conversations(store, flt.conversation_ids)]
    status = Status(_status(flt.status)) if flt.status is not None else None
    resolved = replace(
        flt, experiment_id=experiment_id, batch_id=batch_id, conversation_ids=ids, status=status
    )
    keys: list[tuple[int, int, str]] = []  # (batch first seen, cell index, id)
    first: dict[str, int] = {}
    hints: dict[str, int] = {}
    cell_roles: dict[str, None] = {}
    cell_factors: dict[str, None] = {}
    experiment_ids: dict[str, None] = {}
    async for page in store.conversations.pages(resolved, brief=True):
        for c in page:  # the store applied the whole filter
            group = first.setdefault(c.batch_id or f"conversation:{c.id}", len(first))
            keys.append((group, c.cell_index, c.id))
            hints[c.id] = message_count_hint(c)
            cell_roles.update(dict.fromkeys(c.cell.counts))
            cell_factors.update(dict.fromkeys(c.cell.factors))
            experiment_ids.setdefault(c.experiment_id)
    if not keys:  # the error path reads the conversations again, to say what would match
        await select_conversations(store, flt)
    experiments: dict[str, Experiment] = {}
    for exp_id in experiment_ids:
        found = await store.experiments.get(exp_id)
        if found is not None:
            experiments[exp_id] = found
    roles, factors = _names(list(experiment_ids), experiments, cell_roles, cell_factors)
    keys.sort(key=lambda k: (k[0], k[1]))  # stable: creation order within a cell index
    return Selection([k[2] for k in keys], hints, experiments, roles, factors)


async def chunks(
    store: Store,
    selection: Selection,
    *,
    by_id: bool = False,
    messages: bool = True,
    kinds: Sequence[str] | None = None,
) -> AsyncIterator[tuple[list[Conversation], list[Message], dict[str, int]]]:
    """The selection a chunk at a time: (conversations, their messages, stored messages per
    conversation). In the selection's order, or by conversation id with ``by_id`` (the order
    of the message frame's rows). Without ``messages`` only their count is read; ``kinds``
    keeps messages of those kinds (after counting)."""
    ids = sorted(selection.ids) if by_id else selection.ids
    chunk: list[str] = []
    guessed = 0
    for i, cid in enumerate(ids):
        chunk.append(cid)
        guessed += selection.hints.get(cid, 0)
        last = i == len(ids) - 1
        if not last and guessed < CHUNK_MESSAGES and len(chunk) < CHUNK_CONVERSATIONS:
            continue
        hints = {c: selection.hints.get(c, 0) for c in chunk}
        convs = await store.conversations.get_many(chunk, brief=True)
        if messages:
            msgs = await store.messages.list_many(chunk, hints)
            stored: dict[str, int] = dict.fromkeys(chunk, 0)
            for m in msgs:
                stored[m.conversation_id] += 1
            if kinds:
                wanted = {str(k) for k in kinds}
                msgs = [m for m in msgs if m.kind.value in wanted]
        else:
            msgs, stored = [], await store.messages.count_many(chunk, hints)
        yield convs, msgs, stored
        chunk, guessed = [], 0


def _batch_order(convs: list[Conversation]) -> list[Conversation]:
    """Conversations of a batch together, in grid-cell order (a batch prepares its cells
    concurrently, so creation times interleave); batches and lone conversations in the order
    they were first created."""
    first: dict[str, int] = {}
    for i, c in enumerate(convs):
        first.setdefault(c.batch_id or f"conversation:{c.id}", i)
    return sorted(convs, key=lambda c: (first[c.batch_id or f"conversation:{c.id}"], c.cell_index))


async def load_conversations(
    store: Store, flt: ConversationFilter | None = None, **filters: Any
) -> pd.DataFrame:
    """One row per conversation passing the filter (see ``ConversationFilter``; keyword
    arguments are its fields), in the store's order."""
    flt = _filter(flt, filters)
    convs, experiments = await select_conversations(store, flt)
    stored = await _stored_counts(store, convs)
    return conversations_frame(convs, experiments, stored)


async def load_messages(
    store: Store, flt: ConversationFilter | None = None, **filters: Any
) -> pd.DataFrame:
    """One row per stored message of the conversations passing the filter, in (conversation_id,
    seq) order, labelled with its conversation's grid cell and study factors."""
    flt = _filter(flt, filters)
    convs, experiments = await select_conversations(store, flt)
    messages = await _messages_of(store, convs)
    if flt.kinds:
        kinds = {str(k) for k in flt.kinds}
        messages = [m for m in messages if m.kind.value in kinds]
    return messages_frame(messages, convs, experiments)


async def load_all(
    store: Store, flt: ConversationFilter | None = None, **filters: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both frames (conversations, messages) from one read of the store."""
    flt = _filter(flt, filters)
    convs, experiments = await select_conversations(store, flt)
    messages = await _messages_of(store, convs)
    stored: dict[str, int] = {}
    for m in messages:
        stored[m.conversation_id] = stored.get(m.conversation_id, 0) + 1
    conversations = conversations_frame(convs, experiments, stored)
    if flt.kinds:
        kinds = {str(k) for k in flt.kinds}
        messages = [m for m in messages if m.kind.value in kinds]
    return conversations, messages_frame(messages, convs, experiments)


def _filter(flt: ConversationFilter | None, filters: dict[str, Any]) -> ConversationFilter:
    if flt is not None and filters:
        raise TypeError("pass either a ConversationFilter or keyword filters, not both")
    return flt if flt is not None else ConversationFilter(**filters)


async def _messages_of(store: Store, convs: list[Conversation]) -> list[Message]:
    hints = {c.id: message_count_hint(c) for c in convs}
    return await store.messages.list_many([c.id for c in convs], hints)


async def _stored_counts(store: Store, convs: list[Conversation]) -> dict[str, int]:
    hints = {c.id: message_count_hint(c) for c in convs}
    return await store.messages.count_many([c.id for c in convs], hints)


# --------------------------------------------------------------------------- pure builders


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _roles_and_factors(
    convs: Iterable[Conversation], experiments: Mapping[str, Experiment]
) -> tuple[list[str], list[str]]:
    """Role and factor names in a stable order: each experiment's declared order, first seen
    first, then any extra names found in cells."""
    cell_roles: dict[str, None] = {}
    cell_factors: dict[str, None] = {}
    convs = list(convs)
    for c in convs:
        cell_roles.update(dict.fromkeys(c.cell.counts))
        cell_factors.update(dict.fromkeys(c.cell.factors))
    exp_ids = list(dict.fromkeys(c.experiment_id for c in convs))
    return _names(exp_ids, experiments, cell_roles, cell_factors)


def _names(
    experiment_ids: Iterable[str],
    experiments: Mapping[str, Experiment],
    cell_roles: Iterable[str],
    cell_factors: Iterable[str],
) -> tuple[list[str], list[str]]:
    roles: dict[str, None] = {}
    factors: dict[str, None] = {}
    for exp_id in experiment_ids:
        exp = experiments.get(exp_id)
        if exp is not None:
            roles.update(dict.fromkeys(r.name for r in exp.roles))
            factors.update(dict.fromkeys(f.name for f in exp.factors))
    roles.update(dict.fromkeys(cell_roles))
    factors.update(dict.fromkeys(cell_factors))
    return _distinct_keys(roles, count_column), _distinct_keys(factors, factor_column)


def _distinct_keys(names: Iterable[str], column: Any) -> list[str]:
    seen: dict[str, str] = {}
    for n in names:
        seen.setdefault(column(n), n)
    return list(seen.values())


def _cell_values(conv: Conversation, roles: list[str], factors: list[str]) -> dict[str, Any]:
    cell = conv.cell
    counts = {count_column(r): n for r, n in cell.counts.items()}
    levels = {factor_column(f): v for f, v in cell.factors.items()}
    out: dict[str, Any] = {
        "cell": cell_label(cell),
        "cell_key": cell_key(cell),
        "cell_counts": LIST_SEP.join(f"{r}={n}" for r, n in cell.counts.items()),
        "days": cell.days,
        "total_messages": cell.total_messages,
        "speaker_selection": cell.speaker_selection.value,
        "repeat": repeat_number(cell),
        "seed": cell.seed,
        "rounds": cell.rounds,
        "cell_provider": cell.models.default.provider.value,
        "cell_model": cell.models.default.model,
        "cell_models": models_label(cell),
    }
    for r in roles:
        out[count_column(r)] = counts.get(count_column(r))
    for f in factors:
        out[factor_column(f)] = levels.get(factor_column(f))
    return out


def _columns(fixed: Mapping[str, str], roles: list[str], factors: list[str]) -> dict[str, str]:
    cols = dict(fixed)
    cols.update(CELL_COLUMNS)
    cols.update({count_column(r): INT for r in roles})
    cols.update({factor_column(f): STRING for f in factors})
    return cols


def _frame(rows: list[dict[str, Any]], columns: Mapping[str, str]) -> pd.DataFrame:
    data = {name: [row.get(name) for row in rows] for name in columns}
    out = pd.DataFrame(
        {
            name: _series(values, dtype)
            for (name, dtype), values in zip(columns.items(), data.values(), strict=True)
        }
    )
    return out.reset_index(drop=True)


def _series(values: list[Any], dtype: str) -> pd.Series:
    if dtype == TIME:
        return pd.Series(pd.to_datetime(values, utc=True), dtype=TIME)
    if dtype == STRING:  # an empty text is a missing value (as CSV reads it anyway)
        return pd.Series([pd.NA if v is None or v == "" else v for v in values], dtype=dtype)
    return pd.Series([pd.NA if v is None else v for v in values], dtype=dtype)


def typed(frame: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    """``frame`` with exactly ``columns`` (missing ones added as all-missing), in that order,
    each of its declared dtype; empty strings become missing values. Every table goes through
    this once, so its dtypes never depend on what was selected."""
    out: dict[str, pd.Series] = {}
    for name, dtype in columns.items():
        if name not in frame.columns:
            out[name] = pd.Series([pd.NA] * len(frame), dtype=dtype if dtype != TIME else object)
            if dtype == TIME:
                out[name] = pd.Series(pd.to_datetime(out[name], utc=True), dtype=TIME)
            continue
        col = frame[name].reset_index(drop=True)
        if dtype == TIME:
            out[name] = pd.Series(pd.to_datetime(col, utc=True), dtype=TIME)
        elif dtype == STRING:
            col = col.astype(STRING)
            out[name] = col.mask(col == "", pd.NA) if len(col) else col
        elif dtype == INT and col.dtype.kind == "f":
            out[name] = col.round().astype(INT)  # exact sums computed in floats by pandas
        else:
            out[name] = col.astype(dtype)
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))


def sent_columns(m: Message) -> tuple[dict[str, Any], list[str]]:
    """The parameter columns of a message (what its request SENT; None where nothing was sent)
    and the parameters the server refused.

    From ``Message.sent_params`` when stored; for older messages, rebuilt from the configured
    parameters by what the provider's backend sends (OpenAI-compatible: never ``top_k`` nor
    ``num_ctx``; dryrun: nothing), minus the refused ones (``dropped:`` flags)."""
    columns: dict[str, Any] = dict.fromkeys(PARAM_COLUMNS.values())
    if m.sent_params is not None:
        for name, value in m.sent_params.items():
            if name in SENT_COLUMNS:
                columns[SENT_COLUMNS[name]] = value
        return columns, list(m.dropped_params)
    dropped = list(m.dropped_params) or [
        f.removeprefix(DROPPED_PREFIX) for f in m.flags if f.startswith(DROPPED_PREFIX)
    ]
    if m.model is not None:
        for name in _SENT_BY_PROVIDER.get(m.model.provider.value, ()):
            if name not in dropped:
                columns[PARAM_COLUMNS[name]] = getattr(m.model.params, name)
    return columns, dropped


def messages_frame(
    messages: Iterable[Message],
    conversations: Iterable[Conversation],
    experiments: Mapping[str, Experiment] | None = None,
    *,
    names: tuple[list[str], list[str]] | None = None,
) -> pd.DataFrame:
    """The message frame of domain objects (see the module doc); messages of conversations not
    given are dropped. Rows are sorted by (conversation_id, seq). ``names`` (roles, factors)
    fixes the ``count_*``/``factor_*`` columns (a chunk of a larger selection)."""
    experiments = experiments or {}
    convs = {c.id: c for c in conversations}
    roles, factors = names or _roles_and_factors(convs.values(), experiments)
    cells = {cid: _cell_values(c, roles, factors) for cid, c in convs.items()}
    rows: list[dict[str, Any]] = []
    for m in sorted(messages, key=lambda m: (m.conversation_id, m.seq)):
        conv = convs.get(m.conversation_id)
        if conv is None:
            continue
        exp = experiments.get(conv.experiment_id)
        ref = m.model
        sent, dropped = sent_columns(m)
        rows.append(
            {
                "conversation_id": m.conversation_id,
                "seq": m.seq,
                **clock_values(conv.kind.value, m.day),
                "turn": m.turn,
                "speaker": m.speaker,
                "role": m.role,
                "kind": m.kind.value,
                "public": m.recipients is None,
                "recipients": None if m.recipients is None else LIST_SEP.join(m.recipients),
                "content": m.content,
                "raw": m.raw,
                "words": word_count(text_of(m)),
                "chars": len(m.content),
                "data": None if m.data is None else json.dumps(m.data, sort_keys=True),
                "provider": ref.provider.value if ref else None,
                "model": ref.model if ref else None,
                "base_url": ref.base_url if ref else None,
                **sent,
                "dropped_params": LIST_SEP.join(dropped),
                "prompt_tokens": m.usage.prompt_tokens,
                "completion_tokens": m.usage.completion_tokens,
                "total_tokens": m.usage.total_tokens,
                "cached_tokens": m.usage.cached_tokens,
                "latency_ms": m.latency_ms,
                "attempts": m.attempts,
                "retries": len(m.retries),
                "cost_usd": m.cost_usd,
                "cache_hit": None if m.cache is None else m.cache.hit,
                "message_flags": LIST_SEP.join(m.flags),
                "fallback": FALLBACK_FLAG in m.flags,
                # messages stored before ``decision`` existed: their fallback flag only
                "decision": m.decision.value
                if m.decision is not None
                else (FALLBACK_FLAG if FALLBACK_FLAG in m.flags else None),
                "decision_cause": m.decision_cause,
                "created_at": _utc(m.created_at),
                "experiment_id": conv.experiment_id,
                "experiment_name": exp.name if exp else None,
                "experiment_kind": conv.kind.value,
                "batch_id": conv.batch_id,
                "conversation_number": conversation_number(conv),
                "conversation_status": conv.status.value,
                **cells[conv.id],
            }
        )
    return _frame(rows, _columns(MESSAGE_COLUMNS, roles, factors))


def conversations_frame(
    conversations: Iterable[Conversation],
    experiments: Mapping[str, Experiment] | None = None,
    stored_messages: Mapping[str, int] | None = None,
    *,
    names: tuple[list[str], list[str]] | None = None,
) -> pd.DataFrame:
    """One row per conversation, in the order given (``names`` as in ``messages_frame``)."""
    experiments = experiments or {}
    convs = list(conversations)
    roles, factors = names or _roles_and_factors(convs, experiments)
    rows: list[dict[str, Any]] = []
    for c in convs:
        exp = experiments.get(c.experiment_id)
        started, finished = _utc(c.started_at), _utc(c.finished_at)
        duration = (finished - started).total_seconds() if started and finished else None
        rows.append(
            {
                "conversation_id": c.id,
                "experiment_id": c.experiment_id,
                "experiment_name": exp.name if exp else None,
                "experiment_kind": c.kind.value,
                "batch_id": c.batch_id,
                "conversation_number": conversation_number(c),
                "owner": c.owner,
                "status": c.status.value,
                "error": c.error,
                "stop_reason": c.stop_reason,
                "warnings": LIST_SEP.join(c.warnings),
                "agents": LIST_SEP.join(a.name for a in c.agents),
                "n_agents": len(c.agents),
                "budget": c.budget,
                "messages_done": c.messages_done,
                "messages_stored": (stored_messages or {}).get(c.id, 0)
                if stored_messages is not None
                else None,
                "fallbacks": c.fallbacks,
                "prompt_tokens": c.tokens.prompt_tokens,
                "completion_tokens": c.tokens.completion_tokens,
                "total_tokens": c.tokens.total_tokens,
                "created_at": _utc(c.created_at),
                "started_at": started,
                "finished_at": finished,
                "duration_s": duration,
                "favourite": c.favourite,
                "parent_id": c.parent_id,
                "forked_at": c.forked_at,
                **_cell_values(c, roles, factors),
            }
        )
    return _frame(rows, _columns(CONVERSATION_COLUMNS, roles, factors))


def role_columns(frame: pd.DataFrame) -> list[str]:
    """The ``count_<role>`` columns of a frame."""
    return [c for c in frame.columns if c.startswith("count_")]


def factor_columns(frame: pd.DataFrame) -> list[str]:
    """The ``factor_<name>`` columns of a frame."""
    return [c for c in frame.columns if c.startswith("factor_")]
