"""The tables and summary of a public-goods run, from its state (the latest snapshot holds every
round's record).

Rates of behaviour are over choices: a contribution that fell back (an unusable answer; it kept
the whole endowment) is counted apart, in ``contribution_fallbacks``, never in the mean
contribution; the pool and the payoffs are what was played, fallbacks included.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from simulator.scenarios.public_goods.state import GameState, RoundRecord


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def round_row(rec: RoundRecord, endowment: int) -> dict[str, Any]:
    """One round: contributions (over choices), the pool, punishment and earnings."""
    chosen = list(rec.chosen().values())
    mean = _mean(chosen)
    fell = [f for f in rec.fallback_decisions]
    return {
        "round": rec.round,
        "members": len(rec.contributions),
        "mean_contribution": mean,
        "contribution_rate": None if mean is None else mean / endowment,
        "min_contribution": min(chosen) if chosen else None,
        "max_contribution": max(chosen) if chosen else None,
        "free_riders": sum(1 for c in chosen if c == 0),
        "full_contributors": sum(1 for c in chosen if c == endowment),
        "pool": rec.pool,
        "multiplied": rec.multiplied,
        "share": rec.share,
        "punishment_points": sum(sum(p.values()) for p in rec.points.values()),
        "punishers": len(rec.points),
        "punishment_spent": sum(rec.spent.values()),
        "punishment_lost": sum(rec.lost.values()),
        "mean_earnings": _mean(list(rec.payoffs.values())),
        "total_earnings": sum(rec.payoffs.values()),
        "messages": len(rec.messages),
        "decisions": rec.decisions,
        "reasked": rec.reasked,
        "fallbacks": rec.fallbacks,
        "contribution_fallbacks": sum(f["decision"] == "contribute" for f in fell),
        "punishment_fallbacks": sum(f["decision"] == "punish" for f in fell),
        "message_fallbacks": sum(f["decision"] == "message" for f in fell),
    }


def round_rows(state: GameState) -> list[dict[str, Any]]:
    endowment = int(state.params.get("endowment", 20))
    return [round_row(r, endowment) for r in state.rounds]


def member_rows(state: GameState) -> list[dict[str, Any]]:
    """One row per round and member: how it appeared, what it contributed (and whether it chose
    it), the points it gave and received, and its earnings."""
    roles = {m.name: m.role for m in state.members}
    earnings = dict.fromkeys(roles, 0.0)
    out = []
    for rec in state.rounds:
        for name, contribution in rec.contributions.items():
            earnings[name] = round(earnings[name] + rec.payoffs.get(name, 0.0), 6)
            out.append(
                {
                    "round": rec.round,
                    "member": name,
                    "role": roles.get(name),
                    "label": rec.labels.get(name),
                    "contribution": contribution,
                    "contribution_decision": rec.contribution_decisions.get(name),
                    "first_stage": rec.first_stage.get(name),
                    "points_given": sum(rec.points.get(name, {}).values()),
                    "points_received": sum(p.get(name, 0) for p in rec.points.values()),
                    "punishment_decision": rec.points_decisions.get(name),
                    "spent": rec.spent.get(name, 0.0),
                    "lost": rec.lost.get(name, 0.0),
                    "payoff": rec.payoffs.get(name),
                    "earnings": earnings[name],
                }
            )
    return out


def run_summary(state: GameState) -> dict[str, Any]:
    rows = round_rows(state)
    means = [r["mean_contribution"] for r in rows if r["mean_contribution"] is not None]
    return {
        "rounds_played": state.round,
        "members": len(state.members),
        "punishment": bool(state.params.get("punishment")),
        "mean_contribution": _mean(means),
        "first_round_contribution": means[0] if means else None,
        "last_round_contribution": means[-1] if means else None,
        "punishment_spent": sum(r["punishment_spent"] for r in rows),
        "punishment_lost": sum(r["punishment_lost"] for r in rows),
        "total_earnings": sum(m.earnings for m in state.members),
        "decisions": sum(r["decisions"] for r in rows),
        "fallbacks": sum(r["fallbacks"] for r in rows),
    }


def latest_state(states: Sequence[tuple[int, Mapping[str, Any]]]) -> GameState | None:
    """The state of the latest snapshot (it holds every round played)."""
    if not states:
        return None
    _, latest = max(states, key=lambda s: s[0])
    return GameState.from_snapshot(dict(latest))


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["round"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_reports(state: GameState, conversation_id: str, out: Path) -> dict[str, Path]:
    """``rounds.csv`` (one row per round), ``members.csv`` (per round and member) and
    ``summary.json``."""
    out.mkdir(parents=True, exist_ok=True)
    summary = out / "summary.json"
    summary.write_text(
        json.dumps(
            {"conversation_id": conversation_id, **run_summary(state)}, indent=2, sort_keys=True
        ),
        encoding="utf-8",
    )
    return {
        "rounds": write_csv(round_rows(state), out / "rounds.csv"),
        "members": write_csv(member_rows(state), out / "members.csv"),
        "summary": summary,
    }


__all__ = [
    "latest_state",
    "member_rows",
    "round_row",
    "round_rows",
    "run_summary",
    "write_csv",
    "write_reports",
]
