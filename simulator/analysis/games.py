"""What the analysis tables need to know about the game kinds (commons, reputation, ...).

A game's messages store their round (commons) or step (reputation) in the engine's ``day``
field; in the tables they are named for what they are: a ``round`` or ``step`` column, and
``day`` is missing (a game has no days). Transcripts say "Round 8" or "Step 8", never "Day 8".
Which clock a kind has is the kind's to say (``Kind.clock``): the tables ask the kind registry
handed to the engine (``engine.kinds``) and name no kind themselves. A game's own tables
(rounds, steps, ...) are pooled over runs by ``analysis.game_tables``.

A structured answer's stored content is its JSON (unless the game stored the text it says, as a
commons public post): its words are those of its text fields (a reason, a message, a summary),
not of the JSON around them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pandas as pd

from simulator.domain import Message, MessageKind
from simulator.domain.errors import ConfigurationError
from simulator.engine import kinds


class _Clocks(Mapping[str, str]):
    """The clock of each game kind (``{"commons": "round", "reputation": "step", ...}``), from
    the installed kind registry; a kind whose time is days (dialogue) has none."""

    def __getitem__(self, kind: str) -> str:
        try:
            clock = kinds.installed().get(str(kind)).clock
        except ConfigurationError as exc:
            if exc.title == "No experiment kinds":
                raise
            raise KeyError(kind) from None  # a kind this version does not know: days
        if clock == kinds.DAY:
            raise KeyError(kind)
        return clock

    def _games(self) -> dict[str, str]:
        registry = kinds.installed()
        clocks = {name: registry.get(name).clock for name in registry.names()}
        return {name: clock for name, clock in clocks.items() if clock != kinds.DAY}

    def __iter__(self) -> Iterator[str]:
        return iter(self._games())

    def __len__(self) -> int:
        return len(self._games())


#: The clock of each game kind: what one unit of a game's time (stored as ``day``) is called.
CLOCKS: Mapping[str, str] = _Clocks()
#: Every clock column of the message frame, after ``day`` (every clock a game kind may have).
CLOCK_COLUMNS: Sequence[str] = tuple(c for c in kinds.CLOCKS if c != kinds.DAY)


def clock_values(kind: str, day: int) -> dict[str, int | None]:
    """The ``day`` and clock columns of a message of a conversation of ``kind``."""
    clock = CLOCKS.get(kind)
    out: dict[str, int | None] = {"day": None if clock else day}
    for column in CLOCK_COLUMNS:
        out[column] = day if column == clock else None
    return out


def strings(value: Any) -> list[str]:
    """Every string in a JSON value (the text fields of a structured answer)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings(v)]
    return []


def text_of(message: Message) -> str:
    """The text a message says: its content, or for a structured answer stored as JSON, the
    text fields of the answer."""
    if message.kind is not MessageKind.action or message.data is None:
        return message.content
    content = message.content.strip()
    if not content.startswith("{"):
        return message.content  # the game stored the answer's text (a public post)
    try:
        json.loads(content)
    except json.JSONDecodeError:
        return message.content
    return "\n".join(s for s in strings(message.data) if s.strip())


def period_label(row: Mapping[str, Any]) -> tuple[str, int]:
    """("Round", n), ("Step", n) or ("Day", n) of a transcript row."""
    for column in CLOCK_COLUMNS:
        value = row.get(column)
        if value is not None and not pd.isna(value):
            return column.capitalize(), int(value)
    return "Day", int(row["day"])


__all__ = [
    "CLOCKS",
    "CLOCK_COLUMNS",
    "clock_values",
    "period_label",
    "strings",
    "text_of",
]
