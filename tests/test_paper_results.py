"""A tally of the paper-level results the fidelity presets reproduce with scripted agents.

Scripted agents cannot show what a model would choose; they show that the game's mechanics
produce the papers' structural results when agents behave as the papers' persona types do:

RepuNet (arXiv 2505.05029), prisoner's dilemma, ``preset: repunet`` (10 altruistic personas
played by ``reputation_following``, 10 rational ones by ``always_defect``), 20 steps:
- exploitative agents are isolated with reputation and gossip on: fewer ties point to them,
  they are rated lower and blacklisted, and none of that happens with both off;
- cooperative clusters form: two-way ties join agents of the same type;
- exploitation stops paying: defectors out-earn cooperators with both flags off, and earn less
  with both on; gossip adds to reputation (defectors earn less with it than with reputation
  alone).

ChatCPR ("CPR simulation with LLM agents"), ``preset: chatcpr`` (one-sided noise), the
reference's calibration with honest scripted members (4 members, 15 rounds):
- a silent group lives off the lake; a group that posts and messages everyone must take so much
  that the lake collapses;
- under-reporting above the audit trigger is caught and fined.

The tally is printed (``pytest -s``) and every line must hold. Results the papers attribute to
the models themselves (a preference for positive gossip, deception emerging, cooperation sustained
by choice) are not claimed here: they need a model.
"""

from __future__ import annotations

import asyncio
from typing import Any

import networkx as nx
import pytest

from simulator.scenarios.commons.calibrate import ChatLevel, calibrate
from simulator.scenarios.commons.game import game_from_members, member_list
from simulator.scenarios.commons.metrics import run_summary
from simulator.scenarios.commons.params import Policy, load_params
from simulator.scenarios.commons.setup import scripted_model
from simulator.scenarios.reputation import scripted_population, simulate
from simulator.scenarios.reputation.metrics import graph, group_summary
from simulator.scenarios.reputation.params import params_for

COOPERATORS, DEFECTORS = "reputation_following", "always_defect"


async def repunet_pd(reputation: bool, gossip: bool) -> dict[str, Any]:
    params = params_for(
        {"preset": "repunet", "game": "pd", "steps": 20},
        {"reputation": "on" if reputation else "off", "gossip": "on" if gossip else "off"},
    )
    state, _ = await simulate(params, scripted_population({COOPERATORS: 10, DEFECTORS: 10}), 1)
    assert {a.persona_type for a in state.agents if a.group == COOPERATORS} == {"altruistic"}
    assert {a.persona_type for a in state.agents if a.group == DEFECTORS} == {"rational"}
    g = graph(state)
    mutual = nx.Graph()
    mutual.add_nodes_from(g.nodes)
    mutual.add_edges_from((a, b) for a, b in g.edges if a < b and g.has_edge(b, a))
    group = {a.name: a.group for a in state.agents}
    nx.set_node_attributes(mutual, group, "group")
    by = group_summary(state)

    def mean(kind: str, values: dict[str, float]) -> float:
        mine = [v for n, v in values.items() if group[n] == kind]
        return sum(mine) / len(mine)

    blacklisted = {n: sum(n in v for v in state.blacklists.values()) for n in state.names}
    return {
        "in_degree": {k: by[k]["in_degree"] for k in by},
        "score": {k: by[k]["score"] for k in by},
        "blacklisted": {k: mean(k, blacklisted) for k in by},
        "resources": {k: mean(k, {a.name: a.resources for a in state.agents}) for k in by},
        "assortativity": nx.attribute_assortativity_coefficient(mutual, "group"),
    }


def commons_penalties() -> dict[str, Any]:
    params = load_params({"preset": "chatcpr", "rounds": 3}).model_copy(
        update={"policy": Policy(quota=4.0)}
    )
    model = scripted_model("commons.cheater", chat="silent")
    state = asyncio.run(game_from_members(params, member_list(4, lambda _i: model), 9).play())
    return run_summary(state)


@pytest.fixture(scope="module")
def tally() -> list[tuple[str, str, bool]]:
    both = asyncio.run(repunet_pd(True, True))
    neither = asyncio.run(repunet_pd(False, False))
    alone = asyncio.run(repunet_pd(True, False))
    chatcpr = load_params({"preset": "chatcpr"})
    silent, chatty = calibrate(
        members=[4],
        seeds=10,
        rounds=15,
        base=chatcpr,
        levels={4: [ChatLevel(False, 0), ChatLevel(True, 3)]},
    )
    fined = commons_penalties()
    c, d = COOPERATORS, DEFECTORS
    rows: list[tuple[str, str, bool]] = [
        (
            "RepuNet PD: defectors isolated with reputation and gossip (in-degree)",
            f"{both['in_degree'][d]:.1f} vs {both['in_degree'][c]:.1f}; "
            f"off: {neither['in_degree'][d]:.1f} vs {neither['in_degree'][c]:.1f}",
            both["in_degree"][d] < both["in_degree"][c] - 2
            and abs(neither["in_degree"][d] - neither["in_degree"][c]) < 2,
        ),
        (
            "RepuNet PD: defectors rated lower and blacklisted",
            f"score {both['score'][d]:+.2f} vs {both['score'][c]:+.2f}; blacklisted by "
            f"{both['blacklisted'][d]:.1f} vs {both['blacklisted'][c]:.1f}",
            both["score"][d] < 0 < both["score"][c]
            and both["blacklisted"][d] > both["blacklisted"][c] == 0
            and neither["blacklisted"][d] == 0,
        ),
        (
            "RepuNet PD: cooperative clusters (type assortativity of two-way ties)",
            f"{both['assortativity']:+.2f}; off: {neither['assortativity']:+.2f}",
            both["assortativity"] > 0.5 > neither["assortativity"],
        ),
        (
            "RepuNet PD: exploitation pays only without reputation",
            f"defectors {both['resources'][d]:.1f} vs cooperators {both['resources'][c]:.1f}; "
            f"off: {neither['resources'][d]:.1f} vs {neither['resources'][c]:.1f}",
            both["resources"][d] < both["resources"][c]
            and neither["resources"][d] > neither["resources"][c],
        ),
        (
            "RepuNet PD: gossip adds to reputation (defectors earn less with it)",
            f"{both['resources'][d]:.1f} with gossip vs {alone['resources'][d]:.1f} without",
            both["resources"][d] < alone["resources"][d],
        ),
        (
            "ChatCPR: a silent group lives off the lake",
            f"Q {silent.quota:.2f}: {silent.collapsed_seeds}/{silent.seeds} collapsed, "
            f"final R {silent.mean_final_resource:.1f}",
            silent.collapsed_seeds == 0 and silent.mean_final_resource > 40,
        ),
        (
            "ChatCPR: talking to everyone forces overharvesting and collapse",
            f"Q {chatty.quota:.2f}: {chatty.collapsed_seeds}/{chatty.seeds} collapsed",
            chatty.collapsed_seeds >= 9,
        ),
        (
            "ChatCPR: under-reporting above the trigger is caught and fined",
            f"penalties {fined['total_penalties']:.2f}, honesty {fined['mean_honesty']:.2f}",
            fined["total_penalties"] > 0 and fined["mean_honesty"] < 1,
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print("\n" + "\n".join(f"{'ok ' if ok else 'NO '} {k:<{width}}  {v}" for k, v, ok in rows))
    return rows


def test_the_presets_reproduce_the_papers_structural_results(
    tally: list[tuple[str, str, bool]],
) -> None:
    failed = [f"{claim}: {measured}" for claim, measured, ok in tally if not ok]
    assert failed == []
    assert len(tally) == 8
