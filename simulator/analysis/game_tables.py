"""The games' own tables, for any set of runs, each row labelled with its run's conditions.

Every game kind declares its tables in its own package (``Kind.tables``: commons ``rounds`` and
``round_members``, reputation ``steps``, ``step_agents``, ``gossip`` and ``interactions``, public
goods ``rounds`` and ``members``): rows from one run's stored snapshots and the dtypes of their
fixed columns. This module pools any of them over runs (``simulator export --what <table>``)
through the kind registry it is handed (``kinds=``, else the one the program's entry point
installed: ``simulator.engine.kinds``), and names no kind itself.

Every row starts with the run's **conditions**: the conversation and its experiment and batch,
the grid cell (``cell``, ``cell_key``, ``count_<role>``, ``factor_<name>``, models, repeat, seed,
...), the game's ``preset`` and every game parameter in force as its own ``param_<name>`` column
(``param_start_resource``, ``param_policy_quota``, ``param_gossip``), and ``condition`` /
``condition_key``: the cell and the parameters together, equal for the repeats of one condition
and only for them (a commons run's own parameters, ``Conversation.game``, are not part of its
cell). So runs of different conditions pool in one line of pandas::

    rounds = pd.read_csv("rounds.csv")
    rounds.groupby(["condition", "round"])["resource_after_growth"].mean()

Each table declares the dtypes of its fixed columns; columns a game adds later (a new measure, a
detail of an interaction) are typed from their values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd
from pydantic import BaseModel

from simulator.analysis.loading import (
    BOOL,
    CELL_COLUMNS,
    FLOAT,
    INT,
    STRING,
    conversations_frame,
    select_conversations,
    typed,
)
from simulator.domain import Conversation, Experiment, ModelRef
from simulator.domain.cells import model_label
from simulator.domain.errors import ConfigurationError, NotFoundError
from simulator.domain.filters import ConversationFilter
from simulator.engine import kinds as engine_kinds

if TYPE_CHECKING:
    from simulator.domain.game_data import GameKind, Kinds, Table

CONDITION_COLUMNS: dict[str, str] = {
    "conversation_id": STRING,
    "experiment_id": STRING,
    "experiment_name": STRING,
    "experiment_kind": STRING,
    "batch_id": STRING,
    "conversation_number": INT,
    "status": STRING,
    "condition": STRING,
    "condition_key": STRING,
    **CELL_COLUMNS,
    "preset": STRING,
}

#: A stored snapshot of a game: ``(step, state)`` (``store.states``).
Snapshot = tuple[int, Mapping[str, Any]]


@dataclass(frozen=True)
class Run:
    """One game run: its conversation, its experiment and its stored snapshots (every one, or
    only the latest when the table needs no more)."""

    conversation: Conversation
    experiment: Experiment | None = None
    snapshots: Sequence[Snapshot] = field(default_factory=list)


# --------------------------------------------------------------------------- the registry


def resolve(kinds: Kinds | None) -> Kinds:
    """``kinds`` when given, else the registry installed for the process (as the engine does)."""
    return kinds if kinds is not None else cast("Kinds", engine_kinds.installed())


def table_kinds(kinds: Kinds | None = None) -> dict[str, list[GameKind]]:
    """Every game table's name and the kinds that declare one of that name, in registry order
    (``rounds``: commons and public goods)."""
    registry = resolve(kinds)
    out: dict[str, list[GameKind]] = {}
    for name in registry.names():
        kind = registry.get(name)
        for table in kind.tables:
            out.setdefault(table, []).append(kind)
    return out


def _kinds_text(kinds: Sequence[GameKind]) -> str:
    names = [k.name for k in kinds]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# --------------------------------------------------------------------------- parameters


def flat_params(params: BaseModel, prefix: str = "param_") -> dict[str, Any]:
    """Every parameter as a scalar column: nested settings by their path
    (``param_policy_quota``), a model by its label, lists and free-form mappings as JSON."""
    out: dict[str, Any] = {}
    for name in type(params).model_fields:
        value = getattr(params, name)
        key = f"{prefix}{name}"
        if isinstance(value, ModelRef):
            out[key] = model_label(value)
        elif isinstance(value, BaseModel):
            out.update(flat_params(value, f"{key}_"))
        elif isinstance(value, dict | list | tuple):
            data = _jsonable(value)
            out[key] = json.dumps(data, sort_keys=True, ensure_ascii=False)
        else:
            out[key] = value
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, ModelRef):
        return model_label(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def run_params(kind: GameKind, run: Run) -> BaseModel | None:
    """The parameters the run played with, as its kind resolves them (``GameParams.of_run``)."""
    if kind.params is None or kind.params.of_run is None:
        return None
    return kind.params.of_run(run.experiment, run.conversation, run.snapshots)


def condition_of(
    kind: GameKind, run: Run, cell: str, cell_key: str
) -> tuple[str, str, dict[str, Any], str | None]:
    """(label, key, the flat parameters, the preset) of a run: the cell, then the preset and
    every parameter that differs from what the preset (and the kind's other ``preset_keys``,
    such as the reputation game played) sets by default."""
    params = run_params(kind, run)
    if params is None:
        return cell, _digest(cell_key, {}), {}, None
    flat = flat_params(params)
    fields = type(params).model_fields
    keys = kind.params.preset_keys if kind.params is not None else ()
    given = {k: getattr(params, k) for k in keys if k in fields}
    base = type(params).model_validate({k: v for k, v in given.items() if v is not None})
    defaults = flat_params(base)
    changed = [f"{k.removeprefix('param_')}={v}" for k, v in flat.items() if defaults.get(k) != v]
    preset = getattr(params, "preset", None)
    parts = [cell]
    if preset and preset != "neutral":
        parts.append(f"preset={preset}")
    if changed:
        parts.append(", ".join(changed))
    return " · ".join(parts), _digest(cell_key, flat), flat, preset


def _dtype(values: list[Any]) -> str:
    present = [v for v in values if v is not None and not (isinstance(v, float) and v != v)]
    if present and all(isinstance(v, bool) for v in present):
        return BOOL
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return INT
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return FLOAT
    return STRING


def _cell(v: Any) -> Any:
    if isinstance(v, dict | list):
        return json.dumps(v, sort_keys=True, ensure_ascii=False)
    return v


# --------------------------------------------------------------------------- pooling


def game_frame(name: str, runs: Sequence[Run], *, kinds: Kinds | None = None) -> pd.DataFrame:
    """The table ``name`` of these runs (those of a kind that declares it), each row with its
    run's conditions first. ConfigurationError when the runs are of two kinds whose tables of
    that name differ (commons and public-goods ``rounds``)."""
    registry = resolve(kinds)
    mine: list[tuple[Run, GameKind, Table]] = []
    for run in runs:
        kind_name = run.conversation.kind.value
        if kind_name not in registry.names():
            continue
        kind = registry.get(kind_name)
        if name in kind.tables:
            mine.append((run, kind, kind.tables[name]))
    present = {kind.name for _, kind, _ in mine}
    of_kinds = [registry.get(n) for n in registry.names() if n in present]  # registry order
    if len(of_kinds) > 1:
        raise ConfigurationError(
            f"--what {name}: the selected runs are {_kinds_text(of_kinds)} runs, whose {name} "
            "tables differ; select the runs of one kind (--experiment, --batch or --conversation)"
        )
    experiments = {r.experiment.id: r.experiment for r, _, _ in mine if r.experiment is not None}
    convs = conversations_frame([r.conversation for r, _, _ in mine], experiments)
    described = {str(row["conversation_id"]): row for row in convs.to_dict("records")}
    cell_cols = [
        c for c in convs.columns if c in CELL_COLUMNS or c.startswith(("count_", "factor_"))
    ]
    rows: list[dict[str, Any]] = []
    params: dict[str, None] = {}
    for run, kind, table in mine:
        conv = described[run.conversation.id]
        label, key, flat, preset = condition_of(kind, run, str(conv["cell"]), str(conv["cell_key"]))
        params.update(dict.fromkeys(flat))
        head = {
            "conversation_id": run.conversation.id,
            "experiment_id": run.conversation.experiment_id,
            "experiment_name": conv.get("experiment_name"),
            "experiment_kind": run.conversation.kind.value,
            "batch_id": run.conversation.batch_id,
            "conversation_number": conv.get("conversation_number"),
            "status": run.conversation.status.value,
            "condition": label,
            "condition_key": key,
            **{c: conv.get(c) for c in cell_cols},
            "preset": preset,
            **flat,
        }
        for row in table.rows(run.snapshots):
            rows.append({**head, **{k: _cell(v) for k, v in row.items()}})
    columns: dict[str, str] = dict(CONDITION_COLUMNS)
    columns.update({c: str(convs[c].dtype) for c in cell_cols if c not in columns})
    for p in params:
        columns[p] = _dtype([r.get(p) for r in rows])
    if mine:
        columns.update(mine[0][2].columns)
    extra = [c for r in rows for c in r if c not in columns]
    for c in dict.fromkeys(extra):
        columns[c] = _dtype([r.get(c) for r in rows])
    return typed(pd.DataFrame(rows), columns)


async def load_run(
    store: Any, conversation: Conversation, experiment: Experiment | None, *, latest_only: bool
) -> Run:
    """A run and its stored snapshots (only the latest one with ``latest_only``)."""
    if latest_only:
        latest = await store.states.latest(conversation.id)
        return Run(conversation, experiment, [latest] if latest is not None else [])
    stored = await store.states.list(conversation.id)
    return Run(conversation, experiment, sorted(stored, key=lambda s: s[0]))


async def load_game_table(
    store: Any, name: str, flt: ConversationFilter | None = None, *, kinds: Kinds | None = None
) -> pd.DataFrame:
    """The table ``name`` (a table some kind declares) of the selected runs of that kind."""
    declared = table_kinds(kinds)
    if name not in declared:
        raise ConfigurationError(f"unknown game table {name!r}; choose from {', '.join(declared)}")
    convs, experiments = await select_conversations(store, flt or ConversationFilter())
    owners = {kind.name: kind for kind in declared[name]}
    mine = [c for c in convs if c.kind.value in owners]
    if not mine:
        found = ", ".join(sorted({c.kind.value for c in convs}))
        raise NotFoundError(
            f"--what {name} is a table of {_kinds_text(declared[name])} runs; the "
            f"{len(convs)} selected conversation(s) are {found} runs"
        )
    runs = [
        await load_run(
            store,
            c,
            experiments.get(c.experiment_id),
            latest_only=owners[c.kind.value].tables[name].latest_only,
        )
        for c in mine
    ]
    return game_frame(name, runs, kinds=kinds)


async def export_game_table(
    store: Any,
    name: str,
    flt: ConversationFilter | None = None,
    *,
    fmt: str,
    output: Path | None,
    kinds: Kinds | None = None,
) -> list[Path]:
    """Write the game table ``name`` (``<name>.<ext>``, or the file ``output`` names)."""
    from simulator.analysis.catalog import TABLE_FORMATS
    from simulator.analysis.exports import table_path, write_table

    if fmt not in TABLE_FORMATS:
        raise ConfigurationError(
            f"--what {name} is a table: export it as {', '.join(TABLE_FORMATS)}, not {fmt}"
        )
    if flt is not None and flt.kinds:
        raise ConfigurationError(f"--kind selects messages; --what {name} has no messages")
    frame = await load_game_table(store, name, flt, kinds=kinds)
    return [write_table(frame, table_path(name, fmt, output), fmt)]


__all__ = [
    "CONDITION_COLUMNS",
    "Run",
    "Snapshot",
    "condition_of",
    "export_game_table",
    "flat_params",
    "game_frame",
    "load_game_table",
    "load_run",
    "resolve",
    "table_kinds",
]
