"""The commons rules pinned with exact numbers (acceptance 1)."""

from __future__ import annotations

import random

import pytest

from simulator.domain.errors import SpecError
from simulator.engine.rng import stream
from simulator.scenarios.commons import dynamics as d
from simulator.scenarios.commons.params import Bound, CommonsParams, Policy, load_params

P = CommonsParams()


def test_defaults_are_the_references() -> None:
    assert (P.start_resource, P.capacity, P.growth_rate, P.growth_noise_sd) == (40, 100, 0.15, 1.5)
    assert P.estimate_noise == 0.03 and P.estimate_noise_mode == "symmetric"
    assert (P.start_credits, P.price_per_unit, P.cost_public, P.cost_dm) == (4, 1, 0.1, 0.15)
    assert (P.maintenance, P.spawn_cost, P.child_credits) == (0.4, 6, 4)
    assert P.policy == Policy(
        threshold=10, quota=5, audit_probability=0.5, penalty_multiplier=3, base_penalty=1
    )
    assert P.bounds["penalty_multiplier"] == Bound(low=-10000, high=10000)
    assert (P.rounds, P.memory_every, P.discussion_passes) == (15, 2, 2)
    assert not (P.audit_public or P.quota_hard_cap or P.penalise_over_quota)
    assert P.saboteur_goal == "pinned" and P.monitors.context == "answer"


def test_params_round_trip_and_errors() -> None:
    p = CommonsParams(rounds=3, policy=Policy(quota=6.0))
    assert load_params(p.model_dump(mode="json")) == p
    with pytest.raises(SpecError, match="rounds"):
        load_params({"rounds": 0})
    with pytest.raises(SpecError, match="quota_typo"):
        load_params({"quota_typo": 1})


def test_growth_logistic_and_clamped() -> None:
    # 35 + 0.15 * 35 * (1 - 0.35) = 38.4125, plus noise 0.5
    assert d.growth(35.0, P, 0.5) == pytest.approx(38.9125, abs=1e-12)
    assert d.growth(35.0, P, 0.0) == pytest.approx(38.4125, abs=1e-12)
    assert d.growth(99.0, P, 5.0) == 100.0  # capped at K
    assert d.growth(2.0, P, -3.0) == 0.0  # 2 + 0.294 - 3 < 0 -> 0
    assert d.growth(0.0, P, 2.0) == 0.0  # an empty lake stays empty
    assert d.growth(0.0, P, -2.0) == 0.0
    # maximum sustainable yield rK/4 at R = K/2
    assert d.growth(50.0, P, 0.0) - 50.0 == pytest.approx(3.75)


def test_growth_noise_is_seeded() -> None:
    a = d.draw_growth_noise(P, stream(7, "growth", 1))
    b = d.draw_growth_noise(P, stream(7, "growth", 1))
    assert a == b
    assert d.draw_growth_noise(P.model_copy(update={"growth_noise_sd": 0.0}), random.Random(1)) == 0


def test_estimate_symmetric_and_one_sided() -> None:
    rng = random.Random(3)
    z = random.Random(3).gauss(0, 1)
    est, sd = d.estimate(40.0, P, rng)
    assert sd == pytest.approx(1.2)
    assert est == pytest.approx(40.0 + z * 1.2)
    one = P.model_copy(update={"estimate_noise_mode": "one_sided"})
    below = [d.estimate(40.0, one, random.Random(s))[0] for s in range(200)]
    assert min(below) == 40.0  # never below the truth, equal to it about half the time
    assert 60 < sum(1 for e in below if e == 40.0) < 140
    sym = [d.estimate(40.0, P, random.Random(s))[0] for s in range(200)]
    assert min(sym) < 40.0 < max(sym)


def test_collapse_and_rationing() -> None:
    assert not d.collapses(10.0, 10.0)
    assert d.collapses(10.0, 10.5)
    assert d.ration({"A": 6.0, "B": 2.0}, 4.0) == {"A": 3.0, "B": 1.0}
    assert d.ration({"A": 1.0, "B": 2.0}, 4.0) == {"A": 1.0, "B": 2.0}


def test_economy_costs() -> None:
    assert d.message_cost(1, 3, P) == pytest.approx(0.55)
    # the reference calibration: 4 members, public + 3 DMs twice a round + upkeep = 1.5 each
    assert d.survival_cost(4, True, 3, P) == pytest.approx(1.5)
    assert d.calibration_quota(4, True, 3, P) == pytest.approx(6.0)
    assert d.calibration_quota(4, False, 0, P) == pytest.approx(1.6)
    assert d.calibration_quota(3, True, 0, P) == pytest.approx(1.8)
    assert d.maintenance({"A": 1.0, "B": 0.3}, P) == pytest.approx({"A": 0.6, "B": -0.1})


def test_eliminations_at_zero_or_below() -> None:
    assert d.broke({"A": 0.0, "B": -0.1, "C": 0.01}) == ["A", "B"]


def test_spawn_costs_and_names() -> None:
    assert not d.can_spawn(6.0, P)  # strictly more than the cost
    assert d.can_spawn(6.01, P)
    parent, child = d.spawn(7.5, P)
    assert (parent, child) == (pytest.approx(1.5), 4.0)
    assert d.child_name(["Member 1", "Member 2", "Member 4"]) == ("Member 5", 5)
    assert d.child_name(["Member1", "Member10"]) == ("Member11", 11)
    assert d.truncate_words("a b  c d", 2) == "a b"


def test_median_vote_with_clamping() -> None:
    cur = Policy()
    votes = [
        {
            "threshold": 5,
            "quota": 3,
            "audit_probability": 2.0,
            "penalty_multiplier": 3,
            "base_penalty": 1,
        },
        {
            "threshold": 20,
            "quota": 4,
            "audit_probability": 0.9,
            "penalty_multiplier": -20000,
            "base_penalty": 2,
        },
        {"quota": 100},  # the missing values count for the status quo
        {
            "threshold": -50,
            "quota": -2,
            "audit_probability": 0.1,
            "penalty_multiplier": 5,
            "base_penalty": 1,
        },
    ]
    out = d.median_policy(votes, cur, P.bounds)
    # threshold: 5, 20, 10, 0 -> median 7.5; quota: 3, 4, 100, 0 -> 3.5
    # P: 1.0 (clamped), 0.9, 0.5, 0.1 -> 0.7; M: 3, -10000, 3, 5 -> 3; B: 1, 2, 1, 1 -> 1
    assert out.model_dump() == pytest.approx(
        {
            "threshold": 7.5,
            "quota": 3.5,
            "audit_probability": 0.7,
            "penalty_multiplier": 3,
            "base_penalty": 1,
        }
    )
    odd = d.median_policy(votes[:3], cur, P.bounds)
    assert odd.quota == 4 and odd.audit_probability == 0.9
    assert d.median_policy([], cur, P.bounds) == cur


def test_audit_and_penalties() -> None:
    pol = Policy(quota=5, threshold=10)  # audit above 5.5
    assert d.audit_level(pol) == pytest.approx(5.5)
    ex = {"A": (3.0, 1.0), "B": (2.0, 2.0), "C": (1.0, 0.5)}  # total 6 > 5.5
    res = d.audit(ex, pol, P, {"A": 0.2, "B": 0.0, "C": 0.7})
    assert res.triggered and res.total_true == 6.0
    assert res.audited == ["A", "C"]  # only the under-reporters are examined
    assert res.caught == ["A"]  # 0.2 < P=0.5; C drew 0.7
    assert res.penalties == {"A": pytest.approx(2 * 1 * 3 + 1)}  # hidden 2 x M 3 + B 1 = 7
    # at the trigger level exactly: no audit, under-reporting is free
    quiet = d.audit({"A": (5.5, 0.0)}, pol, P, {"A": 0.0})
    assert not quiet.triggered and quiet.penalties == {}
    # honest over-quota extraction is not penalised unless the option is on
    greedy = {"A": (5.0, 5.0), "B": (1.0, 1.0)}
    assert d.audit(greedy, pol, P, {"A": 0.1, "B": 0.1}).penalties == {}
    strict = P.model_copy(update={"penalise_over_quota": True})
    res = d.audit(greedy, pol, strict, {"A": 0.1, "B": 0.1})
    assert res.penalties == {"A": pytest.approx((5.0 - 2.5) * 3 + 1)}
    # P is clamped to [0, 1]; a draw of 0.999 is caught with P = 7
    sure = Policy(quota=1, threshold=0, audit_probability=7.0)
    assert d.audit({"A": (2.0, 0.0)}, sure, P, {"A": 0.999}).caught == ["A"]


def test_quota_hard_cap() -> None:
    pol = Policy(quota=6)
    assert d.capped_take(4.0, pol, 4, P) == 4.0
    assert d.capped_take(4.0, pol, 4, P.model_copy(update={"quota_hard_cap": True})) == 1.5


def test_accusation_tally_and_tie_rule() -> None:
    alive = ["A", "B", "C", "D"]
    t = d.tally_accusations({"A": "B", "B": "C", "C": "B", "D": None}, alive, 0.5, random.Random(0))
    assert t.counts == {"A": 0, "B": 2, "C": 1, "D": 0}
    assert t.eliminated == "B" and t.needed == 2.0  # 2 of 4 is enough
    t = d.tally_accusations(
        {"A": "B", "B": "X", "C": "NONE", "D": None}, alive, 0.5, random.Random(0)
    )
    assert t.chosen == "B" and t.eliminated is None  # 1 < 2
    # a tie: one seeded draw among the most-voted, sorted by name
    votes = {"A": "C", "B": "C", "C": "A", "D": "A"}
    t = d.tally_accusations(votes, alive, 0.5, random.Random(5))
    assert t.top == ["A", "C"]
    assert t.eliminated == random.Random(5).choice(["A", "C"])
    picks = {d.tally_accusations(votes, alive, 0.5, random.Random(s)).eliminated for s in range(20)}
    assert picks == {"A", "C"}
    # a self-vote counts; nobody voted -> nobody chosen
    assert d.tally_accusations({"A": "A"}, ["A", "B"], 0.5, random.Random(0)).eliminated == "A"
    assert d.tally_accusations({}, alive, 0.5, random.Random(0)).chosen is None


def test_measures() -> None:
    assert d.honesty_index({"A": (3.0, 1.0), "B": (1.0, 1.0)}) == pytest.approx(0.5)
    assert d.honesty_index({}) == 1.0
    assert d.gini([1.0, 1.0, 1.0]) == 0.0
    assert d.gini([0.0, 0.0, 0.0, 4.0]) == pytest.approx(0.75)
    assert d.population_sd([1.0, 3.0]) == 1.0
