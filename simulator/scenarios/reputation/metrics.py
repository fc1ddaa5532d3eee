"""Per-step metrics of a reputation run, the metrics table, and plots (matplotlib, Agg).

``step_metrics(state)`` reads one step's snapshot: cooperation (PD cooperation rate; investment
acceptance, invested share, return ratio, honest reports; sign-up rate), network (density, mutual
ties, clustering, components, degrees, degree-reputation correlation), gossip (count, tone,
credibility, hops) and reputation accuracy (correlation of the records others hold about an agent
with its actual cooperation so far).

A fallback is never a choice: every rate of behaviour (cooperation, acceptance, sign-up, honesty,
fairness, chat, credibility) is over the agents' own choices, and beside it stands how many
decisions fell back (``pd_move_fallbacks``, ``invest_fallbacks``, ``signup_fallbacks``,
``fallback_rate``, ``fallbacks_<decision>`` per decision). A reputation update that fell back
changes no record, so ``reputation_updates`` counts real updates only.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import networkx as nx

from simulator.scenarios.reputation.state import GameState


def _mean(values: Iterable[float]) -> float | None:
    vals = [float(v) for v in values]
    return sum(vals) / len(vals) if vals else None


def correlation(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson correlation; None with fewer than 3 points or no variance."""
    if len(xs) != len(ys) or len(xs) < 3:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    if sx < 1e-12 or sy < 1e-12:
        return None
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / (sx * sy), 6)


def graph(state: GameState) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(state.names)
    for src, outs in state.network.items():
        g.add_edges_from((src, dst) for dst in outs if dst != src)
    return g


def agent_score(state: GameState, name: str, roles: Sequence[str] | None = None) -> float:
    """The agent's reputation: the mean score over every holder and role (self-view included)."""
    roles = roles or sorted({r.role for r in state.records.values()}) or ["player"]
    scores = [
        state.score(name, r)
        for r in roles
        if any(rec.target == name and rec.role == r for rec in state.records.values())
    ]
    return sum(scores) / len(scores) if scores else 0.0


def _peer_score(state: GameState, name: str) -> float | None:
    roles = sorted({r.role for r in state.records.values() if r.target == name})
    vals = [v for r in roles if (v := state.peer_score(name, r)) is not None]
    return sum(vals) / len(vals) if vals else None


FALLBACK = "fallback"


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def cooperation_metrics(state: GameState) -> dict[str, Any]:
    inter = state.interactions
    out: dict[str, Any] = {
        "pairs": len(inter),
        "auto_refusals": sum(i.auto_refused for i in inter),
        "void_pairs": sum(i.void for i in inter),
    }
    if state.game == "pd":
        chosen: list[str] = []
        fallbacks = 0
        for i in inter:
            made = i.details.get("move_decisions") or ["answer", "answer"]
            for move, decision in zip(i.details.get("moves", []), made, strict=False):
                if decision == FALLBACK:
                    fallbacks += 1
                elif move is not None:
                    chosen.append(move)
        rate = _rate(chosen.count("cooperate"), len(chosen))
        out.update(
            pd_cooperation_rate=rate,
            cooperation=rate,
            games=sum(1 for i in inter if i.full),
            error_games=sum(1 for i in inter if i.details.get("error")),
            pd_moves=len(chosen),
            pd_move_fallbacks=fallbacks,
            pd_fallback_rate=_rate(fallbacks, len(chosen) + fallbacks),
        )
    elif state.game == "investment":
        decided = [
            i for i in inter if not i.void and i.details.get("invest_decision") != FALLBACK
        ]  # auto-refusals stay: a blacklist is an earlier choice
        invest_fallbacks = sum(1 for i in inter if i.details.get("invest_decision") == FALLBACK)
        accepted = [i for i in decided if i.details.get("accepted")]
        allocated = [i for i in accepted if i.details.get("allocation_decision") != FALLBACK]
        shares = [
            i.details["amount"] / i.details["investor_resources"]
            for i in accepted
            if i.details.get("investor_resources")
        ]
        acts = len(decided) + len(allocated)
        good = len(accepted) + sum(1 for i in allocated if i.details.get("trustee_fair"))
        out.update(
            acceptance_rate=_rate(len(accepted), len(decided)),
            invested_share=_mean(shares),
            return_ratio=_mean(i.details["return_ratio"] for i in allocated),
            honest_rate=_mean(1.0 if i.details.get("honest") else 0.0 for i in allocated),
            deviation_rate=_mean(1.0 if i.details.get("deviated") else 0.0 for i in allocated),
            cooperation=_rate(good, acts),
            invest_fallbacks=invest_fallbacks,
            invest_fallback_rate=_rate(invest_fallbacks, len(decided) + invest_fallbacks),
            split_fallbacks=sum(1 for i in inter if i.details.get("split_decision") == FALLBACK),
            allocation_fallbacks=len(accepted) - len(allocated),
        )
    else:
        chosen_signups = [j for n, j in state.signups.items() if n not in state.signup_fallbacks]
        rate = _rate(sum(chosen_signups), len(chosen_signups))
        chats = [i for i in inter if not i.auto_refused and not i.void]
        out.update(
            signup_rate=rate,
            cooperation=rate,
            signup_fallbacks=len(state.signup_fallbacks),
            signup_fallback_rate=_rate(
                len(state.signup_fallbacks), len(chosen_signups) + len(state.signup_fallbacks)
            )
            if state.signups or state.signup_fallbacks
            else None,
            chat_rate=_rate(sum(i.full for i in chats), len(chats)),
        )
    return out


def network_metrics(state: GameState) -> dict[str, Any]:
    g = graph(state)
    mutual = nx.Graph()
    mutual.add_nodes_from(g.nodes)
    mutual.add_edges_from((a, b) for a, b in g.edges if a < b and g.has_edge(b, a))
    in_deg = dict(g.in_degree())
    scores = {n: agent_score(state, n) for n in state.names}
    names = state.names
    return {
        "edges": g.number_of_edges(),
        "density": round(nx.density(g), 6) if len(g) > 1 else 0.0,
        "mutual_ties": mutual.number_of_edges(),
        "clustering": round(nx.average_clustering(mutual), 6) if len(mutual) else 0.0,
        "components": nx.number_weakly_connected_components(g) if len(g) else 0,
        "largest_component": max((len(c) for c in nx.weakly_connected_components(g)), default=0),
        "blacklist_entries": sum(len(v) for v in state.blacklists.values()),
        "degree_reputation_corr": correlation(
            [float(in_deg[n]) for n in names], [scores[n] for n in names]
        ),
    }


def gossip_metrics(state: GameState) -> dict[str, Any]:
    g = state.gossip
    evaluated = [r for r in g if r.evaluation != FALLBACK]
    cred = Counter(r.credibility for r in evaluated)
    hops = Counter(r.hop for r in g)
    return {
        "gossip_count": len(g),
        # the tone is the gossiper's choice: a gossip without one is never stored
        "gossip_positive_share": (sum(r.tone == "positive" for r in g) / len(g)) if g else None,
        "gossip_credibility": dict(sorted(cred.items())),
        "gossip_hops": {str(k): v for k, v in sorted(hops.items())},
        "gossip_eval_fallbacks": len(g) - len(evaluated),
        "gossip_mean_weight": _mean(r.weight for r in evaluated),
        "gossip_truthful_share": _mean(
            1.0 if r.truthful else 0.0 for r in g if r.truthful is not None
        ),
    }


def agent_rows(state: GameState) -> list[dict[str, Any]]:
    g = graph(state)
    return [
        {
            "name": a.name,
            "group": a.group,
            "resources": a.resources,
            "in_degree": g.in_degree(a.name),
            "out_degree": g.out_degree(a.name),
            "score": round(agent_score(state, a.name), 6),
            "peer_score": _peer_score(state, a.name),
            "cooperation_rate": (a.cooperative_acts / a.acts) if a.acts else None,
            "fallback_acts": a.fallback_acts,
            "persona_type": a.persona_type,
            "blacklisted_by": sum(a.name in v for v in state.blacklists.values()),
        }
        for a in state.agents
    ]


def step_metrics(state: GameState) -> dict[str, Any]:
    """Everything measured at the end of ``state.step`` (JSON-able)."""
    agents = agent_rows(state)
    pairs = [
        (r["peer_score"], r["cooperation_rate"])
        for r in agents
        if r["peer_score"] is not None and r["cooperation_rate"] is not None
    ]
    resources = [a.resources for a in state.agents]
    return {
        "step": state.step,
        "game": state.game,
        **cooperation_metrics(state),
        **network_metrics(state),
        **gossip_metrics(state),
        "reputation_updates": len(state.updates),
        "reputation_update_fallbacks": sum(
            n for d, n in state.fallback_counts.items() if d in UPDATE_DECISIONS
        ),
        "reputation_accuracy": correlation([p[0] for p in pairs], [p[1] for p in pairs]),
        "mean_resources": _mean(resources),
        "decisions": state.decisions,
        "reasked": state.reasked,
        "fallbacks": state.fallbacks,
        "fallback_rate": _rate(state.fallbacks, state.decisions),
        "fallbacks_by_decision": dict(sorted(state.fallback_counts.items())),
        "decisions_by_decision": dict(sorted(state.decision_counts.items())),
        "agents": agents,
    }


#: The decisions that update a reputation record.
UPDATE_DECISIONS = frozenset(
    {"self_update", "partner_update", "observation_update", "signup_update"}
)

SCALAR_SKIP = {
    "agents",
    "gossip_credibility",
    "gossip_hops",
    "fallbacks_by_decision",
    "decisions_by_decision",
}


def metrics_table(metrics: Sequence[dict[str, Any]]) -> Any:
    """One row per step (pandas DataFrame) with the scalar metrics; credibility levels and hops
    become ``credibility_<level>`` / ``hop_<n>`` columns."""
    import pandas as pd

    return pd.DataFrame(step_rows(metrics))


def step_rows(metrics: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of ``metrics_table`` (the kind's ``steps`` table)."""
    rows = []
    asked = sorted({d for m in metrics for d in (m.get("decisions_by_decision") or {})})
    for m in metrics:
        row = {k: v for k, v in m.items() if k not in SCALAR_SKIP}
        for level, n in (m.get("gossip_credibility") or {}).items():
            row[f"credibility_{level}"] = n
        for hop, n in (m.get("gossip_hops") or {}).items():
            row[f"hop_{hop}"] = n
        fell = m.get("fallbacks_by_decision") or {}
        for decision in asked:  # 0, not missing, for a decision asked in the run
            row[f"fallbacks_{decision}"] = fell.get(decision, 0)
        rows.append(row)
    return rows


def group_summary(state: GameState, by: str = "group") -> dict[str, dict[str, float]]:
    """Mean in-degree and reputation score per agent group (e.g. cooperators vs defectors), or
    per persona type (``by="persona_type"``: the repunet personas' altruistic vs rational)."""
    out: dict[str, dict[str, float]] = {}
    rows = agent_rows(state)
    for group in sorted({r[by] for r in rows}):
        mine = [r for r in rows if r[by] == group]
        out[group] = {
            "agents": len(mine),
            "in_degree": sum(r["in_degree"] for r in mine) / len(mine),
            "score": sum(r["score"] for r in mine) / len(mine),
        }
    return out


# --------------------------------------------------------------------------- plots


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_cooperation(metrics: Sequence[dict[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [m["step"] for m in metrics if m["step"] > 0]
    for key in ("cooperation", "density"):
        ys = [m.get(key) for m in metrics if m["step"] > 0]
        ax.plot(steps, [y if y is not None else float("nan") for y in ys], marker="o", label=key)
    ax.set_xlabel("step")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("Cooperation and network density over steps")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_network(state: GameState, path: Path, seed: int = 0) -> Path:
    plt = _pyplot()
    g = graph(state)
    groups = sorted({a.group for a in state.agents})
    palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    color = {grp: palette[i % len(palette)] for i, grp in enumerate(groups)}
    fig, ax = plt.subplots(figsize=(6, 6))
    pos = nx.spring_layout(g, seed=seed)
    sizes = [200 + 60 * g.in_degree(n) for n in g.nodes]
    nx.draw_networkx(
        g,
        pos,
        ax=ax,
        node_size=sizes,
        font_size=6,
        arrowsize=8,
        width=0.6,
        node_color=[color[state.agent(n).group] for n in g.nodes],
    )
    ax.set_title(f"Network after step {state.step} ({g.number_of_edges()} ties)")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_reputation_heatmap(state: GameState, path: Path) -> Path:
    plt = _pyplot()
    names = state.names
    index = {n: i for i, n in enumerate(names)}
    grid = [[float("nan")] * len(names) for _ in names]
    for rec in state.records.values():
        i, j = index.get(rec.holder), index.get(rec.target)
        if i is not None and j is not None:
            prev = grid[i][j]
            grid[i][j] = rec.score if math.isnan(prev) else (prev + rec.score) / 2
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(grid, cmap="RdYlGn", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.set_xlabel("target")
    ax.set_ylabel("holder")
    ax.set_title(f"Reputation scores after step {state.step}")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


__all__ = [
    "agent_rows",
    "correlation",
    "graph",
    "group_summary",
    "interaction_rows",
    "metrics_table",
    "plot_cooperation",
    "plot_network",
    "plot_reputation_heatmap",
    "record_rows",
    "step_metrics",
    "write_reports",
]


def record_rows(states: Sequence[GameState]) -> list[dict[str, Any]]:
    """The history of every reputation record (one row per update, all steps)."""
    rows = []
    for s in states:
        for rec in s.updates:
            row = rec.model_dump(mode="json", exclude={"distribution"})
            row.update(rec.distribution.model_dump())
            rows.append(row)
    return rows


def interaction_rows(states: Sequence[GameState]) -> list[dict[str, Any]]:
    """Every pair's encounter, with its numbers flattened into columns."""
    rows = []
    for s in states:
        for i in s.interactions:
            row = i.model_dump(mode="json", exclude={"details"})
            for key, value in i.details.items():
                row[key] = json.dumps(value) if isinstance(value, (list, dict)) else value
            rows.append(row)
    return rows


def write_reports(
    states: Sequence[GameState],
    metrics: Sequence[dict[str, Any]],
    out: Path,
    network_steps: Sequence[int] | None = None,
) -> dict[str, Path]:
    """metrics.csv (one row per step), agents.csv (per agent and step), records.csv (every
    reputation update), gossip.csv, interactions.csv, cooperation.png,
    network_step<N>.png for each chosen step (default: the last) and reputation_heatmap.png."""
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    files["metrics"] = out / "metrics.csv"
    metrics_table(metrics).to_csv(files["metrics"], index=False)
    files["agents"] = out / "agents.csv"
    pd.DataFrame(
        [{"step": m["step"], **row} for m in metrics for row in m.get("agents", [])]
    ).to_csv(files["agents"], index=False)
    files["records"] = out / "records.csv"
    pd.DataFrame(record_rows(states)).to_csv(files["records"], index=False)
    files["gossip"] = out / "gossip.csv"
    pd.DataFrame([g.model_dump(mode="json") for s in states for g in s.gossip]).to_csv(
        files["gossip"], index=False
    )
    files["interactions"] = out / "interactions.csv"
    pd.DataFrame(interaction_rows(states)).to_csv(files["interactions"], index=False)
    files["cooperation_plot"] = plot_cooperation(metrics, out / "cooperation.png")
    by_step = {s.step: s for s in states}
    chosen = list(network_steps) if network_steps else [max(by_step)]
    for step in chosen:
        if step not in by_step:
            from simulator.domain.errors import NotFoundError

            raise NotFoundError(f"no snapshot after step {step} (steps: 0..{max(by_step)})")
        files[f"network_step{step}"] = plot_network(
            by_step[step], out / f"network_step{step}.png", seed=by_step[step].seed
        )
    files["reputation_heatmap"] = plot_reputation_heatmap(
        by_step[max(by_step)], out / "reputation_heatmap.png"
    )
    return files
