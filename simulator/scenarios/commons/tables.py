"""The commons kind's tidy tables (``Kind.tables``): ``rounds`` and ``round_members``.

Both come from a run's latest snapshot, which holds every round's record; the analysis layer
pools them over runs with each run's conditions (``simulator export --what rounds``).
Importing this module is cheap: the rules load when rows are asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from simulator.scenarios.commons.params import POLICY_KEYS
from simulator.scenarios.kind import BOOL, FLOAT, INT, STRING, Snapshots, Table

if TYPE_CHECKING:
    from pydantic import BaseModel

    from simulator.domain import Conversation, Experiment
    from simulator.scenarios.commons.state import GameState

CAUSES = ("broke", "voted", "terminated", "collapse")

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
    **{f"eliminated_{cause}": INT for cause in CAUSES},
    **{f"eliminated_{cause}_names": STRING for cause in CAUSES},
    **{f"policy_{key}": FLOAT for key in POLICY_KEYS},
}

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
    **{f"vote_{key}": FLOAT for key in POLICY_KEYS},
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


def latest_state(snapshots: Snapshots) -> GameState | None:
    """The game after its latest stored round (that snapshot holds every round's record)."""
    from simulator.scenarios.commons.state import GameState

    if not snapshots:
        return None
    _, latest = max(snapshots, key=lambda s: s[0])
    return GameState.from_snapshot(dict(latest))


def rounds(snapshots: Snapshots) -> list[dict[str, Any]]:
    """One row per round (the columns of the commons ``rounds.csv``)."""
    from simulator.scenarios.commons.metrics import round_rows

    state = latest_state(snapshots)
    return round_rows(state) if state is not None else []


def round_members(snapshots: Snapshots) -> list[dict[str, Any]]:
    """One row per round and member: extraction, vote, audit, penalty, credits, offspring."""
    from simulator.domain.cells import model_label

    state = latest_state(snapshots)
    if state is None:
        return []
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
            for key, value in rec.votes.get(name, {}).items():
                row[f"vote_{key}"] = value
            rows.append(row)
    return rows


def run_params(
    experiment: Experiment | None, conversation: Conversation, snapshots: Snapshots
) -> BaseModel:
    """The parameters a run played with: as its snapshots stored them, else as it would start."""
    from simulator.domain import Experiment
    from simulator.scenarios.commons.params import CommonsParams
    from simulator.scenarios.commons.runner import run_params as starting_params

    state = latest_state(snapshots)
    if state is not None and state.params:
        return CommonsParams.model_validate(state.params)
    return starting_params(experiment or Experiment(name="?", kind=conversation.kind), conversation)


TABLES: Mapping[str, Table] = {
    "rounds": Table(
        "commons: one row per round of each run",
        rounds,
        ROUND_COLUMNS,
        latest_only=True,
        measure="resource_after_growth",
    ),
    "round_members": Table(
        "commons: per round and member (extraction, votes, audit, credits)",
        round_members,
        ROUND_MEMBER_COLUMNS,
        latest_only=True,
    ),
}

__all__ = ["ROUND_COLUMNS", "ROUND_MEMBER_COLUMNS", "TABLES", "latest_state", "run_params"]
