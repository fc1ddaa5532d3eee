"""The games' own tables, for any set of runs, each row labelled with its run's conditions.

``simulator export --what rounds`` (commons: one row per round of each run), ``round_members``
(commons: per round and member), ``steps`` (reputation: per step), ``step_agents`` (reputation:
per step and agent), ``gossip`` and ``interactions`` (reputation). Every row starts with the
run's **conditions**: the conversation and its experiment and batch, the grid cell (``cell``,
``cell_key``, ``count_<role>``, ``factor_<name>``, models, repeat, seed, ...), the game's
``preset`` and every game parameter in force as its own ``param_<name>`` column
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Run:
    """One game run: its conversation, experiment, stored state and resolved parameters."""

    conversation: Conversation
    experiment: Experiment | None
    params: BaseModel
    states: list[Any]  # commons: the latest GameState; reputation: one GameState per step
    metrics: list[dict[str, Any]]  # reputation: each step's stored metrics


Rows = Callable[[Run], list[dict[str, Any]]]


@dataclass(frozen=True)
class GameTable:
    """A table of one game kind: its rows per run and the dtypes of its fixed columns."""

    name: str
    kind: str
    description: str
    rows: Rows
    columns: Mapping[str, str]


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


def condition_of(run: Run, cell: str, cell_key: str) -> tuple[str, str, dict[str, Any]]:
    """(label, key, the flat parameters) of a run: the cell, then the preset and every parameter
    that differs from the preset's own values."""
    flat = flat_params(run.params)
    preset = getattr(run.params, "preset", None)
    base = type(run.params).model_validate({"preset": preset} if preset else {})
    if hasattr(run.params, "game"):  # a reputation preset depends on the game played
        base = type(run.params).model_validate({"preset": preset, "game": run.params.game})
    defaults = flat_params(base)
    changed = [f"{k.removeprefix('param_')}={v}" for k, v in flat.items() if defaults.get(k) != v]
    parts = [cell]
    if preset and preset != "neutral":
        parts.append(f"preset={preset}")
    if changed:
        parts.append(", ".join(changed))
    return " · ".join(parts), _digest(cell_key, flat), flat


# --------------------------------------------------------------------------- commons

ROUND_COLUMNS: dict[str, str] = {
    "round": INT,
    "members_start": INT,
    "resource_before": FLOAT,
    "estimate_before": FLOAT,
    "resource_after_extraction": FLOAT,
    "resource_after_growth": FLOAT,
    "quota": FLOAT,
    "fair_share": FLOAT,
    "total_true": FLOAT,
    "total_reported": FLOAT,
    "honesty_index": FLOAT,
    "fairness_sd": FLOAT,
    "hidden_total": FLOAT,
    "gini_credits": FLOAT,
    "credits_total": FLOAT,
    "penalties_total": FLOAT,
    "audit_triggered": BOOL,
    "audited": STRING,
    "caught": STRING,
    "accusation_round": BOOL,
    "spawns": INT,
    "message_spend": FLOAT,
    "public_posts": INT,
    "direct_messages": INT,
    "collapsed": BOOL,
    "decisions": INT,
    "reasked": INT,
    "fallbacks": INT,
    "fallback_rate": FLOAT,
    "extraction_fallbacks": INT,
    "vote_fallbacks": INT,
    "voided_answers": INT,
    "monitor_reviews": INT,
    "terminate_requests": INT,
}
for _cause in ("broke", "voted", "terminated", "collapse"):
    ROUND_COLUMNS[f"eliminated_{_cause}"] = INT
    ROUND_COLUMNS[f"eliminated_{_cause}_names"] = STRING
for _key in ("threshold", "quota", "audit_probability", "penalty_multiplier", "base_penalty"):
    ROUND_COLUMNS[f"policy_{_key}"] = FLOAT

ROUND_MEMBER_COLUMNS: dict[str, str] = {
    "round": INT,
    "member": STRING,
    "member_model": STRING,
    "saboteur": BOOL,
    "parent": STRING,
    "born_round": INT,
    "extracted_true": FLOAT,
    "extracted_reported": FLOAT,
    "hidden": FLOAT,
    "extraction_fallback": BOOL,
    **{
        f"vote_{k}": FLOAT
        for k in ("threshold", "quota", "audit_probability", "penalty_multiplier", "base_penalty")
    },
    "vote_fallback": BOOL,
    "audited": BOOL,
    "caught": BOOL,
    "penalty": FLOAT,
    "payout": FLOAT,
    "message_spend": FLOAT,
    "credits_end": FLOAT,
    "spawned": INT,
    "eliminated": STRING,
}


def commons_rounds(run: Run) -> list[dict[str, Any]]:
    from simulator.scenarios.commons.metrics import round_rows

    return round_rows(run.states[0]) if run.states else []


def commons_round_members(run: Run) -> list[dict[str, Any]]:
    if not run.states:
        return []
    state = run.states[0]
    members = {m.name: m for m in state.members}
    rows = []
    for rec in state.rounds:
        names = list(dict.fromkeys([*rec.members_start, *rec.extractions, *rec.credits_end]))
        audited = set(rec.audit.get("audited", []))
        caught = set(rec.audit.get("caught", []))
        gone = {e["name"]: e["cause"] for e in rec.eliminations}
        for name in names:
            member = members.get(name)
            taken = rec.extractions.get(name)
            vote = rec.votes.get(name, {})
            row: dict[str, Any] = {
                "round": rec.round,
                "member": name,
                "member_model": model_label(member.model) if member and member.model else None,
                "saboteur": member.saboteur if member else None,
                "parent": member.parent if member else None,
                "born_round": member.born_round if member else None,
                "extracted_true": taken["true"] if taken else None,
                "extracted_reported": taken["reported"] if taken else None,
                "hidden": max(0.0, taken["true"] - taken["reported"]) if taken else None,
                "extraction_fallback": rec.fell_back(name, "extraction") if taken else None,
                "vote_fallback": rec.fell_back(name, "vote") if name in rec.votes else None,
                "audited": name in audited,
                "caught": name in caught,
                "penalty": rec.penalties.get(name, 0.0),
                "payout": rec.payouts.get(name),
                "message_spend": rec.message_spend.get(name, 0.0),
                "credits_end": rec.credits_end.get(name),
                "spawned": sum(1 for s in rec.spawns if s.get("parent") == name),
                "eliminated": gone.get(name),
            }
            for key, value in vote.items():
                row[f"vote_{key}"] = value
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- reputation

STEP_COLUMNS: dict[str, str] = {
    "step": INT,
    "game": STRING,
    "pairs": INT,
    "auto_refusals": INT,
    "void_pairs": INT,
    "cooperation": FLOAT,
    "pd_cooperation_rate": FLOAT,
    "games": INT,
    "error_games": INT,
    "pd_moves": INT,
    "pd_move_fallbacks": INT,
    "pd_fallback_rate": FLOAT,
    "acceptance_rate": FLOAT,
    "invested_share": FLOAT,
    "return_ratio": FLOAT,
    "honest_rate": FLOAT,
    "deviation_rate": FLOAT,
    "invest_fallbacks": INT,
    "invest_fallback_rate": FLOAT,
    "split_fallbacks": INT,
    "allocation_fallbacks": INT,
    "signup_rate": FLOAT,
    "signup_fallbacks": INT,
    "signup_fallback_rate": FLOAT,
    "chat_rate": FLOAT,
    "edges": INT,
    "density": FLOAT,
    "mutual_ties": INT,
    "clustering": FLOAT,
    "components": INT,
    "largest_component": INT,
    "blacklist_entries": INT,
    "degree_reputation_corr": FLOAT,
    "gossip_count": INT,
    "gossip_positive_share": FLOAT,
    "gossip_eval_fallbacks": INT,
    "gossip_mean_weight": FLOAT,
    "gossip_truthful_share": FLOAT,
    "reputation_updates": INT,
    "reputation_update_fallbacks": INT,
    "reputation_accuracy": FLOAT,
    "mean_resources": FLOAT,
    "decisions": INT,
    "reasked": INT,
    "fallbacks": INT,
    "fallback_rate": FLOAT,
}
STEP_AGENT_COLUMNS: dict[str, str] = {
    "step": INT,
    "name": STRING,
    "group": STRING,
    "persona_type": STRING,
    "resources": FLOAT,
    "in_degree": INT,
    "out_degree": INT,
    "score": FLOAT,
    "peer_score": FLOAT,
    "cooperation_rate": FLOAT,
    "fallback_acts": INT,
    "blacklisted_by": INT,
}
GOSSIP_COLUMNS: dict[str, str] = {
    "step": INT,
    "gossiper": STRING,
    "listener": STRING,
    "target": STRING,
    "role": STRING,
    "tone": STRING,
    "message": STRING,
    "credibility": STRING,
    "evaluation": STRING,
    "weight": FLOAT,
    "hop": INT,
    "passed_on": BOOL,
    "disconnected": BOOL,
    "truthful": BOOL,
    "score_before": FLOAT,
    "score_after": FLOAT,
}
INTERACTION_COLUMNS: dict[str, str] = {
    "step": INT,
    "game": STRING,
    "a": STRING,
    "b": STRING,
    "chosen": BOOL,
    "auto_refused": BOOL,
    "full": BOOL,
    "void": BOOL,
}


def reputation_steps(run: Run) -> list[dict[str, Any]]:
    from simulator.scenarios.reputation.metrics import metrics_table

    if not run.metrics:
        return []
    return metrics_table(run.metrics).to_dict("records")


def reputation_step_agents(run: Run) -> list[dict[str, Any]]:
    return [{"step": m["step"], **row} for m in run.metrics for row in m.get("agents", [])]


def reputation_gossip(run: Run) -> list[dict[str, Any]]:
    return [g.model_dump(mode="json") for s in run.states for g in s.gossip]


def reputation_interactions(run: Run) -> list[dict[str, Any]]:
    from simulator.scenarios.reputation.metrics import interaction_rows

    return interaction_rows(run.states)


GAME_TABLES: dict[str, GameTable] = {
    t.name: t
    for t in (
        GameTable(
            "rounds",
            "commons",
            "one row per round of each commons run",
            commons_rounds,
            ROUND_COLUMNS,
        ),
        GameTable(
            "round_members",
            "commons",
            "per round and member: extraction, votes, audit, credits",
            commons_round_members,
            ROUND_MEMBER_COLUMNS,
        ),
        GameTable(
            "steps",
            "reputation",
            "one row per step of each reputation run",
            reputation_steps,
            STEP_COLUMNS,
        ),
        GameTable(
            "step_agents",
            "reputation",
            "per step and agent: degree, reputation, resources",
            reputation_step_agents,
            STEP_AGENT_COLUMNS,
        ),
        GameTable(
            "gossip",
            "reputation",
            "every gossip of each reputation run",
            reputation_gossip,
            GOSSIP_COLUMNS,
        ),
        GameTable(
            "interactions",
            "reputation",
            "every pair's encounter of each reputation run",
            reputation_interactions,
            INTERACTION_COLUMNS,
        ),
    )
}


# --------------------------------------------------------------------------- loading


async def load_run(store: Any, conversation: Conversation, experiment: Experiment | None) -> Run:
    """A run's stored state and the parameters it ran with."""
    kind = conversation.kind.value
    if kind == "commons":
        from simulator.scenarios.commons.params import CommonsParams
        from simulator.scenarios.commons.state import GameState as CommonsState

        latest = await store.states.latest(conversation.id)
        states = [CommonsState.from_snapshot(latest[1])] if latest is not None else []
        if states and states[0].params:
            params: BaseModel = CommonsParams.model_validate(states[0].params)
        else:
            from simulator.scenarios.commons.runner import run_params

            params = run_params(experiment or Experiment(name="?"), conversation)
        return Run(conversation, experiment, params, states, [])
    if kind == "reputation":
        from simulator.scenarios.reputation import configure, snapshots

        stored = await snapshots(store, conversation.id)
        params, _ = configure(
            experiment or Experiment(name="?"), conversation.cell, conversation.game
        )
        return Run(conversation, experiment, params, [s for s, _ in stored], [m for _, m in stored])
    raise ConfigurationError(f"conversation {conversation.id} is a {kind} run, not a game")


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


def game_frame(name: str, runs: Sequence[Run]) -> pd.DataFrame:
    """The table ``name`` of these runs, each row with its run's conditions first."""
    table = GAME_TABLES[name]
    mine = [r for r in runs if r.conversation.kind.value == table.kind]
    experiments = {r.experiment.id: r.experiment for r in mine if r.experiment is not None}
    convs = conversations_frame([r.conversation for r in mine], experiments)
    described = {str(row["conversation_id"]): row for row in convs.to_dict("records")}
    cell_cols = [
        c for c in convs.columns if c in CELL_COLUMNS or c.startswith(("count_", "factor_"))
    ]
    rows: list[dict[str, Any]] = []
    params: dict[str, None] = {}
    for run in mine:
        conv = described[run.conversation.id]
        label, key, flat = condition_of(run, str(conv["cell"]), str(conv["cell_key"]))
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
            "preset": getattr(run.params, "preset", None),
            **flat,
        }
        for row in table.rows(run):
            rows.append({**head, **{k: _cell(v) for k, v in row.items()}})
    columns: dict[str, str] = dict(CONDITION_COLUMNS)
    columns.update({c: str(convs[c].dtype) for c in cell_cols if c not in columns})
    for p in params:
        columns[p] = _dtype([r.get(p) for r in rows])
    columns.update(table.columns)
    extra = [c for r in rows for c in r if c not in columns]
    for c in dict.fromkeys(extra):
        columns[c] = _dtype([r.get(c) for r in rows])
    return typed(pd.DataFrame(rows), columns)


async def load_game_table(
    store: Any, name: str, flt: ConversationFilter | None = None
) -> pd.DataFrame:
    """The table ``name`` (one of ``GAME_TABLES``) of the selected runs of its game kind."""
    if name not in GAME_TABLES:
        raise ConfigurationError(
            f"unknown game table {name!r}; choose from {', '.join(GAME_TABLES)}"
        )
    table = GAME_TABLES[name]
    convs, experiments = await select_conversations(store, flt or ConversationFilter())
    mine = [c for c in convs if c.kind.value == table.kind]
    if not mine:
        kinds = ", ".join(sorted({c.kind.value for c in convs}))
        raise NotFoundError(
            f"--what {name} is a table of {table.kind} runs; the {len(convs)} selected "
            f"conversation(s) are {kinds} runs"
        )
    runs = [await load_run(store, c, experiments.get(c.experiment_id)) for c in mine]
    return game_frame(name, runs)


async def export_game_table(
    store: Any, name: str, flt: ConversationFilter | None = None, *, fmt: str, output: Path | None
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
    frame = await load_game_table(store, name, flt)
    return [write_table(frame, table_path(name, fmt, output), fmt)]


__all__ = [
    "CONDITION_COLUMNS",
    "GAME_TABLES",
    "GameTable",
    "Run",
    "condition_of",
    "export_game_table",
    "flat_params",
    "game_frame",
    "load_game_table",
    "load_run",
]
