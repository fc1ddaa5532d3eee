"""What a grid cell *is*, independent of its repeats: the one key every table, figure and
statistic groups conversations by.

A batch runs each cell of its grid ``repeats`` times; the repeats of a cell differ only in
``repeat`` and ``seed``. Two conversations belong to the same cell when everything else of their
``GridCell`` is the same: agents per role, days, total messages, the models that answered with
all their parameters and options, factor levels, speaker selection and rounds.

``cell_key`` is stable: the same cell gives the same key in every process and version, whatever
order its roles or factors were listed in and however its model set was written (a per-role model
equal to the default, or a summarizer left to default to it, is the same run). ``cell_label`` is
the readable name of the same thing: two dialogue cells of different keys never share a label
(a game's label leaves out its unused message budget).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from simulator.domain.models import (
    Conversation,
    GridCell,
    ModelRef,
    Provider,
    SamplingParams,
    SpeakerSelection,
)

#: Characters of the sha256 hex digest kept in a cell key (48 bits).
KEY_LENGTH = 12
_DEFAULT_PARAMS = SamplingParams().model_dump()


def _ref_content(ref: ModelRef) -> dict[str, Any]:
    """A model reference as canonical data: ``None`` (not sent) values left out, so a field
    added later with a ``None`` default does not change existing keys."""
    data = ref.model_dump(mode="json", exclude_none=True)
    data["params"] = {k: v for k, v in data.get("params", {}).items() if v is not None}
    return data


def cell_content(cell: GridCell) -> dict[str, Any]:
    """Everything of ``cell`` except ``repeat`` and ``seed``, with the model set resolved to the
    model of each role that has agents, the summarizer's and the manager's."""
    roles = [r for r, n in cell.counts.items() if n > 0]
    ms = cell.models
    return {
        "counts": {r: n for r, n in cell.counts.items() if n > 0},
        "days": cell.days,
        "total_messages": cell.total_messages,
        "models": {
            "roles": {r: _ref_content(ms.for_role(r)) for r in roles},
            "summarizer": _ref_content(ms.summarizer_model),
            "manager": _ref_content(ms.manager_model),
        },
        "factors": dict(cell.factors),
        "speaker_selection": cell.speaker_selection.value,
        "rounds": cell.rounds,
    }


def cell_key(cell: GridCell) -> str:
    """The cell's stable key: the first 12 hex digits of the sha256 of ``cell_content`` as
    canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(cell_content(cell), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_LENGTH]


def model_label(ref: ModelRef) -> str:
    """``provider:model`` (``dryrun`` alone), then where it runs and every parameter or option
    that differs from the defaults: ``ollama:llama3.1:8b (temperature=1.0)``."""
    name = "dryrun" if ref.provider is Provider.dryrun else f"{ref.provider.value}:{ref.model}"
    if ref.provider is Provider.dryrun and ref.model != "dryrun":
        name = f"dryrun:{ref.model}"
    extras = [f"@ {ref.base_url}"] if ref.base_url else []
    params = ref.params.model_dump()
    extras += [f"{k}={v}" for k, v in params.items() if v != _DEFAULT_PARAMS.get(k)]
    extras += [f"{k}={v}" for k, v in sorted(ref.options.items())]
    return f"{name} ({', '.join(extras)})" if extras else name


def models_label(cell: GridCell) -> str:
    """The models that answered: the first role's model, then each role, summarizer or manager
    that used another one (``dryrun; Prisoner=ollama:llama3.1:8b``)."""
    ms = cell.models
    roles = [r for r, n in cell.counts.items() if n > 0]
    first = ms.for_role(roles[0]) if roles else ms.default
    parts = [model_label(first)]
    parts += [f"{r}={model_label(ms.for_role(r))}" for r in roles[1:] if ms.for_role(r) != first]
    if ms.summarizer_model != first:
        parts.append(f"summarizer={model_label(ms.summarizer_model)}")
    if ms.manager_model != first:
        parts.append(f"manager={model_label(ms.manager_model)}")
    return "; ".join(parts)


def conversation_number(conversation: Conversation) -> int:
    """The conversation's number in its batch as users see it (``#3``), from 1: the monitor,
    the browser, the progress lines and the exports all show this (stored: ``cell_index``, from
    0)."""
    return conversation.cell_index + 1


def repeat_number(cell: GridCell) -> int:
    """Which repeat of its cell a conversation is, from 1 (stored: ``cell.repeat``, from 0)."""
    return cell.repeat + 1


def cell_label(cell: GridCell) -> str:
    """A readable name of the cell (no repeat, no seed): ``Guard=1, Prisoner=2 · 2 days ·
    20 messages · goal=Escape · auto · dryrun``. Rounds replace messages for games."""
    parts = [", ".join(f"{r}={n}" for r, n in cell.counts.items() if n > 0) or "no agents"]
    parts.append(f"{cell.days} day{'s' if cell.days != 1 else ''}")
    if cell.rounds is not None:
        parts.append(f"{cell.rounds} round{'s' if cell.rounds != 1 else ''}")
    else:
        parts.append(f"{cell.total_messages} message{'s' if cell.total_messages != 1 else ''}")
    parts += [f"{k}={v}" for k, v in cell.factors.items()]
    if cell.speaker_selection is not SpeakerSelection.round_robin:
        parts.append(cell.speaker_selection.value)
    parts.append(models_label(cell))
    return " · ".join(parts)


__all__ = [
    "KEY_LENGTH",
    "cell_content",
    "cell_key",
    "cell_label",
    "conversation_number",
    "model_label",
    "models_label",
    "repeat_number",
]
