"""Reputation games on scripted agents, in-process (no database): calibration of the mechanics."""

from __future__ import annotations

from simulator.scenarios.reputation import ReputationParams, scripted_population, simulate
from simulator.scenarios.reputation.metrics import group_summary, metrics_table


async def _run(reputation: bool, gossip: bool) -> dict[str, dict[str, float]]:
    params = ReputationParams(game="pd", steps=20, reputation=reputation, gossip=gossip)
    population = scripted_population({"reputation_following": 15, "always_defect": 5})
    state, metrics = await simulate(params, population, seed=1)
    assert state.step == 20 and len(metrics) == 21
    assert metrics[-1]["fallbacks"] == 0
    return group_summary(state)


async def test_defectors_are_isolated_and_rated_lower_with_reputation_and_gossip() -> None:
    on = await _run(True, True)
    off = await _run(False, False)
    for label, summary in (("reputation+gossip", on), ("neither", off)):
        coop, defe = summary["reputation_following"], summary["always_defect"]
        print(
            f"{label}: in-degree cooperators {coop['in_degree']:.2f} vs defectors "
            f"{defe['in_degree']:.2f}; score cooperators {coop['score']:+.2f} vs defectors "
            f"{defe['score']:+.2f}"
        )
    coop, defe = on["reputation_following"], on["always_defect"]
    assert defe["in_degree"] < coop["in_degree"]
    assert defe["score"] < coop["score"]
    # with both flags off nobody holds records: no reputation gap at all
    assert off["reputation_following"]["score"] == off["always_defect"]["score"] == 0


async def test_simulation_is_reproducible_and_gives_a_metrics_table() -> None:
    params = ReputationParams(game="investment", steps=3, population=6)
    population = scripted_population({"tit_for_tat": 3, "always_defect": 3})
    s1, m1 = await simulate(params, population, seed=5)
    s2, m2 = await simulate(params, population, seed=5)
    assert s1.model_dump() == s2.model_dump() and m1 == m2
    table = metrics_table(m1)
    assert list(table["step"]) == [0, 1, 2, 3]
    for column in (
        "cooperation",
        "acceptance_rate",
        "density",
        "mutual_ties",
        "clustering",
        "components",
        "gossip_count",
        "reputation_accuracy",
        "degree_reputation_corr",
    ):
        assert column in table.columns
    assert table["acceptance_rate"].iloc[1:].notna().all()
