"""The reputation kind's tidy tables and figures (``Kind.tables``, ``Kind.figures``).

Tables, from every step's snapshot (step 0 included): ``steps`` (one row per step, its scalar
metrics), ``step_agents`` (per step and agent), ``gossip`` (every gossip) and ``interactions``
(every pair's encounter): the columns of the reputation ``metrics.csv``, ``agents.csv``,
``gossip.csv`` and ``interactions.csv``. Figures of one step: the ``network`` and the
``heatmap`` of reputation scores. Importing this module is cheap: the rules (and networkx) load
when rows or figures are asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from simulator.scenarios.kind import (
    BOOL,
    FLOAT,
    INT,
    STRING,
    Network,
    NetworkNode,
    ScoreMatrix,
    SnapshotFigure,
    Snapshots,
    Table,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from simulator.domain import Conversation, Experiment
    from simulator.scenarios.reputation.state import GameState

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


def _in_order(snapshots: Snapshots) -> list[Mapping[str, Any]]:
    return [data for _, data in sorted(snapshots, key=lambda s: s[0])]


def _state(data: Mapping[str, Any]) -> GameState:
    from simulator.scenarios.reputation.runner import load_state

    return load_state(dict(data))


def _metrics(snapshots: Snapshots) -> list[dict[str, Any]]:
    """Each step's metrics: as stored with its snapshot, else measured from its state."""
    from simulator.scenarios.reputation.metrics import step_metrics

    return [data.get("metrics") or step_metrics(_state(data)) for data in _in_order(snapshots)]


def steps(snapshots: Snapshots) -> list[dict[str, Any]]:
    """One row per step (step 0 included) with its scalar metrics."""
    from simulator.scenarios.reputation.metrics import step_rows

    return step_rows(_metrics(snapshots))


def step_agents(snapshots: Snapshots) -> list[dict[str, Any]]:
    """One row per step and agent: degree, reputation, resources."""
    return [{"step": m["step"], **row} for m in _metrics(snapshots) for row in m.get("agents", [])]


def gossip(snapshots: Snapshots) -> list[dict[str, Any]]:
    """Every gossip of the run."""
    return [g.model_dump(mode="json") for data in _in_order(snapshots) for g in _state(data).gossip]


def interactions(snapshots: Snapshots) -> list[dict[str, Any]]:
    """Every pair's encounter, its numbers flattened into columns."""
    from simulator.scenarios.reputation.metrics import interaction_rows

    return interaction_rows([_state(data) for data in _in_order(snapshots)])


def run_params(
    experiment: Experiment | None, conversation: Conversation, snapshots: Snapshots
) -> BaseModel:
    """The parameters a run played with (its own or the experiment's, factors and steps
    applied)."""
    from simulator.domain import Experiment
    from simulator.scenarios.reputation.runner import configure

    params, _ = configure(
        experiment or Experiment(name="?", kind=conversation.kind),
        conversation.cell,
        conversation.game,
    )
    return params


def network(step: int, data: Mapping[str, Any]) -> Network:
    """The network after a step: agents by group, each with its reputation score."""
    from simulator.scenarios.reputation.metrics import agent_score, graph

    state = _state(data)
    ties = graph(state)
    return Network(
        title=f"Reputation network after step {state.step} ({ties.number_of_edges()} ties)",
        nodes=tuple(
            NetworkNode(a.name, a.group or "agents", agent_score(state, a.name))
            for a in state.agents
        ),
        edges=tuple((a, b) for a, b in ties.edges),
        layout_seed=state.seed,
    )


def heatmap(step: int, data: Mapping[str, Any]) -> ScoreMatrix:
    """Every reputation record after a step: who holds what score of whom."""
    state = _state(data)
    return ScoreMatrix(
        title=f"Reputation scores after step {state.step}",
        names=tuple(a.name for a in state.agents),
        scores=tuple((r.holder, r.target, r.score) for r in state.records.values()),
        scale="reputation score\n−1 very bad · 0 neutral · 1 very good",
    )


TABLES: Mapping[str, Table] = {
    "steps": Table(
        "reputation: one row per step of each run", steps, STEP_COLUMNS, measure="cooperation"
    ),
    "step_agents": Table(
        "reputation: per step and agent (degree, reputation, resources)",
        step_agents,
        STEP_AGENT_COLUMNS,
    ),
    "gossip": Table("reputation: every gossip", gossip, GOSSIP_COLUMNS),
    "interactions": Table("reputation: every pair's encounter", interactions, INTERACTION_COLUMNS),
}

FIGURES: Mapping[str, SnapshotFigure] = {
    "network": SnapshotFigure(
        "the reputation network of one run after a step (--step), with legends", network
    ),
    "heatmap": SnapshotFigure(
        "the reputation scores of one run after a step (--step), with a colour bar", heatmap
    ),
}

__all__ = [
    "FIGURES",
    "GOSSIP_COLUMNS",
    "INTERACTION_COLUMNS",
    "STEP_AGENT_COLUMNS",
    "STEP_COLUMNS",
    "TABLES",
    "heatmap",
    "network",
    "run_params",
]
