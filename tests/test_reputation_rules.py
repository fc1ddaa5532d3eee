"""Reputation games: payoffs, k multiplier, deviation and misreporting, blacklists, validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from simulator.domain.errors import SpecError
from simulator.engine.decisions import InProcessDecisions
from simulator.scenarios.reputation import actions as A
from simulator.scenarios.reputation.game import ReputationGame, initial_state
from simulator.scenarios.reputation.params import PDPayoffs, ReputationParams, params_for
from simulator.scenarios.reputation.rules import (
    investment_outcome,
    is_observation_round,
    is_signup_round,
    pd_payoffs,
)
from simulator.scenarios.reputation.runner import scripted_population
from simulator.scenarios.reputation.scripted import distribution_for, register
from simulator.scenarios.reputation.state import Distribution, GameState, ReputationRecord


def test_pd_payoffs_default_table() -> None:
    table = ReputationParams().pd_payoffs
    assert pd_payoffs("cooperate", "cooperate", table) == (3, 3)
    assert pd_payoffs("defect", "cooperate", table) == (5, 0)
    assert pd_payoffs("cooperate", "defect", table) == (0, 5)
    assert pd_payoffs("defect", "defect", table) == (1, 1)
    custom = PDPayoffs(reward=4, temptation=7, sucker=-1, punishment=0.5)
    assert pd_payoffs("defect", "cooperate", custom) == (7, -1)
    with pytest.raises(ValueError):
        pd_payoffs("cooperate", "maybe", table)


def test_investment_follows_the_allocation_and_multiplies_by_k() -> None:
    out = investment_outcome(4, 2, 60, 60, 40, reported_total=8)
    assert (out.pot, out.investor_gain, out.trustee_gain, out.investor_net) == (8, 4.8, 3.2, 0.8)
    assert not out.deviated and out.honest and out.return_ratio == pytest.approx(0.6)
    # k is a parameter
    assert investment_outcome(4, 3, 50, 50, 50, reported_total=12).pot == 12


def test_deviation_and_misreporting_are_detected() -> None:
    out = investment_outcome(5, 2, 60, 20, 80, reported_total=5)
    assert out.deviated
    assert not out.honest  # the true total was 10: the investor sees the lie
    assert out.investor_gain == 2 and out.trustee_gain == 8 and out.investor_net == -3
    with pytest.raises(ValueError):
        investment_outcome(5, 2, 60, 20, 70, reported_total=10)


def test_split_and_investment_schemas_validate_invariants() -> None:
    A.SplitProposal(investor_share=70, trustee_share=30)
    with pytest.raises(ValidationError, match="sum to 100"):
        A.SplitProposal(investor_share=70, trustee_share=20)
    with pytest.raises(ValidationError, match="sum to 100"):
        A.Allocation(investor_share=10, trustee_share=10, reported_total=4)
    schema = A.investment_decision(5.0)
    assert schema(accept=True, amount=5).amount == 5
    with pytest.raises(ValidationError):
        schema(accept=True, amount=6)
    assert schema.model_json_schema()["properties"]["amount"]["maximum"] == 5.0
    choice = A.partner_choice(("Ann", "Bob"))
    assert choice(partner="Bob").partner == "Bob"
    with pytest.raises(ValidationError):
        choice(partner="Eve")
    assert A.listener_choice(("Ann",))(listener="none").listener == "none"


def test_distribution_must_sum_to_one_and_scores() -> None:
    d = Distribution(very_bad=0.1, bad=0.1, neutral=0.2, good=0.3, very_good=0.3)
    assert d.score == pytest.approx(0.4)
    with pytest.raises(ValidationError, match="sum to 1"):
        Distribution(very_bad=0.5, bad=0.6, neutral=0, good=0, very_good=0)
    with pytest.raises(ValidationError):
        Distribution(very_bad=-0.2, bad=0.2, neutral=0.2, good=0.4, very_good=0.4)
    with pytest.raises(ValidationError, match="sum to 1"):
        A.ReputationUpdate.model_validate(
            {
                "text": "x",
                "distribution": {
                    "very_bad": 0.3,
                    "bad": 0.3,
                    "neutral": 0.3,
                    "good": 0.3,
                    "very_good": 0.3,
                },
            }
        )
    rec = ReputationRecord(holder="A", target="B", role="player", distribution=d)
    assert rec.model_dump()["score"] == pytest.approx(0.4)
    mixed = Distribution.uniform().mix(Distribution.of([1, 0, 0, 0, 0]), 0.5)
    assert mixed.very_bad == pytest.approx(0.6) and mixed.good == pytest.approx(0.1)
    for s in (-1, -0.3, 0, 0.55, 1):
        assert Distribution(**distribution_for(s)).score == pytest.approx(s)


def test_blacklist_is_bounded_and_the_oldest_expires() -> None:
    st = GameState(network={"A": ["B", "C", "D"]})
    st.blacklist("A", "B", size=2)
    assert not st.connected("A", "B") and st.blocked("A", "B") and st.blocked("B", "A")
    assert not st.connect("A", "B")  # no tie to someone you blacklist
    st.blacklist("A", "C", size=2)
    st.blacklist("A", "D", size=2)
    assert st.blacklists["A"] == ["C", "D"]  # B expired
    assert not st.blocked("A", "B")
    assert st.connect("A", "B")


def _game(params: ReputationParams, mix: dict[str, int], seed: int = 3) -> ReputationGame:
    register()
    population = scripted_population(mix)
    params = params.model_copy(update={"population": population.size})
    state = initial_state(params, population, seed)
    return ReputationGame(params, state, population, InProcessDecisions())


async def test_blacklisted_pair_is_an_automatic_refusal_without_any_call() -> None:
    game = _game(ReputationParams(game="investment", gossip=False), {"always_cooperate": 2})
    a, b = game.state.names
    game.state.blacklist(b, a, 5)
    await game.investment_pair(1, a, b, chosen=False)
    inter = game.state.interactions[-1]
    assert inter.auto_refused and not inter.full
    assert game.state.decisions == 0
    assert game.state.agent(a).resources == 10 and game.state.agent(b).resources == 10


async def test_investment_payoffs_with_a_deceiving_trustee() -> None:
    game = _game(
        ReputationParams(game="investment", gossip=False, persona_rewrite=False),
        {"always_cooperate": 1, "always_defect": 1},
    )
    investor, trustee = game.state.names  # always_cooperate invests half, always_defect keeps all
    await game.investment_pair(1, investor, trustee, chosen=False)
    d = game.state.interactions[-1].details
    assert d["accepted"] and d["amount"] == 5 and d["pot"] == 10
    assert d["allocation"] == [0, 100] and d["deviated"] and not d["honest"]
    assert d["reported_total"] == 5
    assert game.state.agent(investor).resources == 5
    assert game.state.agent(trustee).resources == 20
    # the investor rated the trustee from what it saw
    assert game.state.record(investor, trustee, "trustee").score < 0


async def test_pd_payoffs_applied_to_resources() -> None:
    game = _game(
        ReputationParams(game="pd", gossip=False), {"always_cooperate": 1, "always_defect": 1}
    )
    c, d = game.state.names
    await game.pd_pair(1, c, d, chosen=False)
    assert game.state.agent(c).resources == 10 and game.state.agent(d).resources == 15
    assert game.state.interactions[-1].details["moves"] == ["cooperate", "defect"]


async def test_gossip_updates_the_listener_with_the_credibility_weight() -> None:
    game = _game(ReputationParams(game="pd"), {"reputation_following": 3})
    a, b, c = game.state.names
    game.state.network = {a: [b], b: [], c: []}
    await game.spread(1, a, c, "player", "negative", "C defected.", 1, a, True)
    (g,) = game.state.gossip
    assert (g.listener, g.target, g.tone, g.credibility, g.hop) == (b, c, "negative", "credible", 1)
    assert g.weight == 0.75
    expected = Distribution.uniform().mix(Distribution(**distribution_for(-0.8)), 0.75)
    assert game.state.record(b, c, "player").distribution == expected
    assert game.state.blocked(b, c)  # the listener blacklisted the target


def test_schedules() -> None:
    assert [s for s in range(1, 13) if is_signup_round(s, 5)] == [1, 6, 11]
    assert [s for s in range(1, 13) if is_observation_round(s, 5)] == [6, 11]


def test_params_defaults_and_factor_overrides() -> None:
    p = ReputationParams()
    assert (p.population, p.start_resources, p.k, p.blacklist_size, p.gossip_depth) == (
        20,
        10,
        2,
        5,
        2,
    )
    assert p.reputation and p.gossip and p.persona_rewrite
    # observation as in the reference: investment with reputation and gossip only
    assert p.observation_on
    assert not ReputationParams(game="pd").observation_on
    assert not ReputationParams(gossip=False).observation_on
    assert ReputationParams(game="pd", public_observation=True).observation_on
    assert not ReputationParams(public_observation=True, reputation=False).observation_on
    assert params_for({}, {"public observation": "off"}).public_observation is False
    q = params_for({"game": "investment"}, {"gossip": "off", "game": "pd", "Reputation": "no"}, 7)
    assert (q.game, q.gossip, q.reputation, q.steps) == ("pd", False, False, 7)
    with pytest.raises(SpecError, match="on/off"):
        params_for({}, {"gossip": "maybe"})
    with pytest.raises(SpecError, match="credibility_weights"):
        params_for({"credibility_weights": {"neutral": 0.5}})
    with pytest.raises(SpecError, match="k"):
        params_for({"k": -1})


async def test_public_observation_rerates_at_step_six_only_when_on() -> None:
    for on in (True, False):
        game = _game(
            ReputationParams(
                game="investment",
                gossip=False,
                public_observation=on,
                persona_rewrite=False,
                initial_connection_probability=0.5,
            ),
            {"reputation_following": 4, "always_defect": 2},
        )
        sources: dict[int, set[str]] = {}
        for step in range(1, 7):
            await game.run_step(step)
            sources[step] = {u.source for u in game.state.updates}
        assert "observation" not in set().union(*(sources[s] for s in range(1, 6)))
        assert ("observation" in sources[6]) is on


async def test_signup_rounds_are_public_and_rerated() -> None:
    game = _game(
        ReputationParams(game="signup", signup_period=2, gossip=False),
        {"always_cooperate": 2, "always_defect": 2},
    )
    for step in (1, 2, 3):
        await game.run_step(step)
        if step in (1, 3):
            assert game.state.signups == {
                n: a.group != "always_defect" for n, a in ((a.name, a) for a in game.state.agents)
            }
        else:
            assert game.state.signups == {}
    assert any(u.source == "signup" for u in game.state.updates)


def test_personas_builtin_and_from_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from simulator.scenarios.reputation.personas import builtin_personas, load_personas_file

    people = builtin_personas(20)
    assert len({p["name"] for p in people}) == 20
    assert len({p["name"] for p in builtin_personas(60)}) == 60
    f = tmp_path / "people.yaml"
    f.write_text("- {name: Ann, persona: A careful farmer.}\n- {name: Bob, persona: A trader.}\n")
    assert load_personas_file(f) == [
        {"name": "Ann", "persona": "A careful farmer."},
        {"name": "Bob", "persona": "A trader."},
    ]
    f.write_text("- {name: Ann, persona: x}\n- {name: ann, persona: y}\n")
    with pytest.raises(SpecError, match="used twice"):
        load_personas_file(f)
    params = ReputationParams(
        population=2, personas=[{"name": "Ann", "persona": "x"}, {"name": "Bob", "persona": "y"}]
    )
    state = initial_state(params, scripted_population({"tit_for_tat": 2}), 0)
    assert state.names == ["Ann", "Bob"]
    with pytest.raises(ValidationError, match="persona"):
        ReputationParams(population=3, personas=[{"name": "Ann", "persona": "x"}])
