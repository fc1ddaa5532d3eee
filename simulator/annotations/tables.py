"""Annotations as tables, joined to the message table on ``(conversation_id, seq)``.

The long table has one row per answer: per rubric question, per interview question, and per
score of a scorer (``question`` is then the score's name, e.g. a moderation category). Rows about
a message carry its ``seq``; rows about a whole conversation or an agent have no ``seq`` (and an
``agent`` for the latter). So::

    messages.merge(annotations, on=["conversation_id", "seq"], how="left")

puts every answer about a message beside it. The wide table has one row per
``(conversation_id, seq, agent)`` and one column per ``<annotator>.<question>`` (the value; numbers
as numbers); when a selection holds several versions of an annotator, its columns end in
``@<version>``. Fallbacks have no value in either table; the long table says why (``decision``,
``decision_cause``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.analysis.loading import (
    BOOL,
    FLOAT,
    INT,
    STRING,
    TIME,
    select_conversations,
)
from simulator.domain import Conversation, Message
from simulator.domain.annotations import Annotation, AnnotatorEntry, Target
from simulator.domain.filters import ConversationFilter

ANNOTATION_COLUMNS: dict[str, str] = {
    "conversation_id": STRING,
    "seq": INT,
    "agent": STRING,
    "target": STRING,
    "annotator": STRING,
    "annotator_kind": STRING,
    "annotator_version": STRING,
    "question": STRING,
    "value": STRING,
    "value_number": FLOAT,
    "decision": STRING,
    "decision_cause": STRING,
    "fallback": BOOL,
    "provider": STRING,
    "model": STRING,
    "base_url": STRING,
    "prompt_tokens": INT,
    "completion_tokens": INT,
    "cost_usd": FLOAT,
    "latency_ms": FLOAT,
    "attempts": INT,
    "call_id": STRING,
    "data": STRING,
    "created_at": TIME,
    "experiment_id": STRING,
    "batch_id": STRING,
}
WIDE_KEYS = ["conversation_id", "seq", "agent"]


def ids_for(
    catalog: Iterable[AnnotatorEntry], conversation: Conversation, messages: Iterable[Message]
) -> list[str]:
    """Every annotation id the catalogue allows in ``conversation`` (computed, never searched)."""
    messages = list(messages)
    seqs = [m.seq for m in messages]
    # the conversation's agents, and anyone else who acted (a commons member born mid-game)
    speakers = [m.speaker for m in messages if m.kind.value in ("utterance", "action")]
    agents = list(dict.fromkeys([*(a.name for a in conversation.agents), *speakers]))
    out: list[str] = []
    for entry in catalog:
        if entry.experiment_id != conversation.experiment_id:
            continue
        if entry.target is Target.message:
            out += [entry.annotation_id(conversation.id, seq=s) for s in seqs]
        elif entry.target is Target.agent:
            out += [entry.annotation_id(conversation.id, agent=a) for a in agents]
        else:
            out.append(entry.annotation_id(conversation.id))
    return out


async def conversation_annotations(
    store: Any, conversation: Conversation, messages: list[Message]
) -> list[Annotation]:
    """The stored annotations of one conversation (the transcript's)."""
    catalog = await store.annotations.catalog([conversation.experiment_id])
    return await store.annotations.get_many(ids_for(catalog, conversation, messages))


async def load_annotations(
    store: Any, flt: ConversationFilter | None = None, *, annotators: Iterable[str] = ()
) -> list[Annotation]:
    """The annotations of the conversations ``flt`` selects (optionally of these annotators),
    in (conversation, seq, agent, annotator, question) order."""
    convs, _ = await select_conversations(store, flt or ConversationFilter())
    wanted = {a.strip() for a in annotators if a.strip()}
    catalog = await store.annotations.catalog(list(dict.fromkeys(c.experiment_id for c in convs)))
    if wanted:
        catalog = [e for e in catalog if e.annotator in wanted]
    if not catalog:
        return []
    out: list[Annotation] = []
    for start in range(0, len(convs), 50):
        chunk = convs[start : start + 50]
        messages = await store.messages.list_many([c.id for c in chunk])
        by_conv: dict[str, list[Message]] = {c.id: [] for c in chunk}
        for m in messages:
            by_conv.setdefault(m.conversation_id, []).append(m)
        ids: list[str] = []
        for conv in chunk:
            ids += ids_for(catalog, conv, by_conv[conv.id])
        out += await store.annotations.get_many(ids)
    order = {c.id: i for i, c in enumerate(convs)}
    return sorted(
        out,
        key=lambda a: (
            order.get(a.conversation_id, 0),
            -1 if a.seq is None else a.seq,
            a.agent or "",
            a.annotator,
            a.annotator_version,
            a.question or "",
        ),
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _frame(rows: list[dict[str, Any]], columns: dict[str, str]) -> pd.DataFrame:
    """A frame with exactly these columns and dtypes (missing values as NA)."""
    data: dict[str, pd.Series] = {}
    for name, dtype in columns.items():
        values = [row.get(name) for row in rows]
        if dtype == TIME:
            data[name] = pd.Series(pd.to_datetime(values, utc=True), dtype=TIME)
        else:
            data[name] = pd.Series([pd.NA if v is None else v for v in values], dtype=dtype)
    return pd.DataFrame(data).reset_index(drop=True)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else str(value)
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def annotations_frame(annotations: Iterable[Annotation]) -> pd.DataFrame:
    """The long table (see the module docstring): one row per answer or score."""
    rows: list[dict[str, Any]] = []
    for a in annotations:
        ref = a.model
        common = {
            "conversation_id": a.conversation_id,
            "seq": a.seq,
            "agent": a.agent,
            "target": a.target.value,
            "annotator": a.annotator,
            "annotator_kind": a.kind,
            "annotator_version": a.annotator_version,
            "decision": a.decision.value,
            "decision_cause": a.decision_cause,
            "fallback": a.decision.value == "fallback",
            "provider": ref.provider.value if ref else None,
            "model": ref.model if ref else None,
            "base_url": ref.base_url if ref else None,
            "prompt_tokens": a.usage.prompt_tokens,
            "completion_tokens": a.usage.completion_tokens,
            "cost_usd": a.cost_usd,
            "latency_ms": a.latency_ms,
            "attempts": a.attempts,
            "call_id": a.call_id,
            "data": None if a.data is None else json.dumps(a.data, sort_keys=True),
            "created_at": _utc(a.created_at),
            "experiment_id": a.experiment_id,
            "batch_id": a.batch_id,
        }
        if a.scores:
            for name, score in a.scores.items():
                rows.append(
                    {**common, "question": name, "value": _text(score), "value_number": score}
                )
            if a.kind == "moderation" and isinstance(a.value, bool):
                rows.append(
                    {
                        **common,
                        "question": "flagged",
                        "value": _text(a.value),
                        "value_number": float(a.value),
                    }
                )
            continue
        rows.append(
            {
                **common,
                "question": a.question,
                "value": _text(a.value),
                "value_number": _number(a.value),
            }
        )
    return _frame(rows, ANNOTATION_COLUMNS)


def column_name(annotator: str, question: str | None, version: str | None = None) -> str:
    name = f"{annotator}.{question}" if question else annotator
    return f"{name}@{version}" if version else name


def wide_frame(long: pd.DataFrame) -> pd.DataFrame:
    """One row per (conversation_id, seq, agent), one column per annotator question."""
    if long.empty:
        return pd.DataFrame(
            {
                "conversation_id": pd.Series(dtype=STRING),
                "seq": pd.Series(dtype=INT),
                "agent": pd.Series(dtype=STRING),
            }
        )
    versions = long.groupby("annotator")["annotator_version"].nunique()
    several = set(versions[versions > 1].index)
    frame = long.copy()
    frame["column"] = [
        column_name(a, q if q is not pd.NA else None, v if a in several else None)
        for a, q, v in zip(
            frame["annotator"], frame["question"], frame["annotator_version"], strict=True
        )
    ]
    numeric = (
        frame.dropna(subset=["value"])
        .groupby("column")["value_number"]
        .agg(lambda s: bool(s.notna().all()))
    )
    cells = zip(frame["column"], frame["value_number"], frame["value"], strict=True)
    frame["cell"] = [num if numeric.get(col, False) else val for col, num, val in cells]
    keys = frame[WIDE_KEYS].astype(object).where(frame[WIDE_KEYS].notna(), None)
    frame["_key"] = list(zip(keys["conversation_id"], keys["seq"], keys["agent"], strict=True))
    order = list(dict.fromkeys(frame["_key"]))
    columns = list(dict.fromkeys(frame["column"]))
    table: dict[tuple[Any, ...], dict[str, Any]] = {k: {} for k in order}
    for key, col, cell in zip(frame["_key"], frame["column"], frame["cell"], strict=True):
        table[key][col] = None if cell is pd.NA else cell
    out = pd.DataFrame(
        {
            "conversation_id": pd.Series([k[0] for k in order], dtype=STRING),
            "seq": pd.Series([pd.NA if k[1] is None else k[1] for k in order], dtype=INT),
            "agent": pd.Series([pd.NA if k[2] is None else k[2] for k in order], dtype=STRING),
        }
    )
    for col in columns:
        values = [table[k].get(col) for k in order]
        dtype = FLOAT if numeric.get(col, False) else STRING
        out[col] = pd.Series([pd.NA if v is None else v for v in values], dtype=dtype)
    return out


async def export_annotations(
    store: Any,
    flt: ConversationFilter | None = None,
    *,
    fmt: str,
    output: Path | None = None,
    wide: bool = False,
    annotators: Iterable[str] = (),
) -> list[Path]:
    """Write the annotations of the selected conversations (``annotations.<ext>``, or the file
    ``output`` names); NotFoundError when there are none."""
    from simulator.analysis.catalog import TABLE_FORMATS
    from simulator.analysis.exports import table_path, write_table
    from simulator.domain.errors import ConfigurationError, NotFoundError

    if fmt not in TABLE_FORMATS:
        raise ConfigurationError(
            f"--what annotations is a table: export it as {', '.join(TABLE_FORMATS)}, not {fmt}"
        )
    flt = flt or ConversationFilter()
    if flt.kinds:
        raise ConfigurationError(
            "--kind selects messages; the annotations table has every annotation of the "
            "selected conversations (choose annotators with --annotator, or merge with the "
            "messages table exported with --kind)"
        )
    convs, _ = await select_conversations(store, flt)
    if not convs:
        raise NotFoundError("no conversation matches these filters; nothing was written")
    annotations = await load_annotations(store, flt, annotators=annotators)
    if not annotations:
        which = f" by {', '.join(annotators)}" if annotators else ""
        raise NotFoundError(
            f"the {len(convs)} selected conversation(s) have no annotations{which}; "
            "'simulator annotate' makes some"
        )
    frame = annotations_frame(annotations)
    if wide:
        frame = wide_frame(frame)
    name = "annotations_wide" if wide else "annotations"
    return [write_table(frame, table_path(name, fmt, output), fmt)]


__all__ = [
    "ANNOTATION_COLUMNS",
    "annotations_frame",
    "column_name",
    "conversation_annotations",
    "export_annotations",
    "ids_for",
    "load_annotations",
    "wide_frame",
]
