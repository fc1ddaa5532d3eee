"""The public-goods game's rules, in the process (no database): payoffs, punishment, anonymity,
what members are told, fallbacks kept apart from choices, the estimate, and the classic result
with scripted members (contributions decay without punishment and hold with it)."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from simulator.domain import BatchSpec, ModelRef, ModelSet, StudyFactor
from simulator.domain.errors import SpecError
from simulator.engine.decisions import InProcessDecisions
from simulator.engine.grid import estimate
from simulator.llm.base import ChatRequest
from simulator.llm.dryrun import register_policy, unregister_policy
from simulator.scenarios.public_goods import prompts, rules
from simulator.scenarios.public_goods.actions import contribution_schema, deductions_schema
from simulator.scenarios.public_goods.game import PublicGoodsGame, initial_state, labels_for
from simulator.scenarios.public_goods.metrics import member_rows, round_rows, run_summary
from simulator.scenarios.public_goods.params import (
    PublicGoodsParams,
    check_group,
    load_params,
    params_for,
)
from simulator.scenarios.public_goods.runner import (
    estimate_calls,
    scripted_members,
    scripted_model,
    scripted_run,
    simulate,
)

CLASSIC = {"conditional_cooperator": 2, "free_rider": 1, "punisher": 1}


def play(params: PublicGoodsParams, mix: dict[str, int], seed: int = 0) -> Any:
    return asyncio.run(simulate(params, scripted_members(mix), seed=seed))


# --------------------------------------------------------------------------- payoffs


def test_payoffs_of_a_round_with_and_without_punishment() -> None:
    c = {"A": 10, "B": 0, "C": 10, "D": 10}
    plain = rules.outcome(c, endowment=20, multiplier=1.6)
    assert (plain.pool, plain.multiplied, plain.share) == (30.0, 48.0, 12.0)
    assert plain.payoffs == {"A": 22.0, "B": 32.0, "C": 22.0, "D": 22.0}  # 20 - c + 12
    # D gives B 4 points (4 tokens to D, 12 from B) and C gives A 1; points to oneself count
    # for nothing
    hit = rules.outcome(c, 20, 1.6, {"D": {"B": 4, "D": 5}, "C": {"A": 1}}, cost=1.0, effect=3.0)
    assert hit.given == {"A": 0, "B": 0, "C": 1, "D": 4}
    assert hit.received == {"A": 1, "B": 4, "C": 0, "D": 0}
    assert hit.payoffs == {"A": 19.0, "B": 20.0, "C": 21.0, "D": 18.0}
    assert sum(hit.payoffs.values()) == sum(plain.payoffs.values()) - 5 * (1 + 3)


def test_parameters_refuse_a_game_that_is_no_dilemma() -> None:
    params = PublicGoodsParams()
    check_group(params, 4)  # the design: m = 1.6 < n = 4
    with pytest.raises(SpecError, match=r"multiplier: 4 must be below the number of members \(4\)"):
        check_group(params.model_copy(update={"multiplier": 4.0}), 4)
    with pytest.raises(SpecError, match="at least 2 members"):
        check_group(params, 1)
    with pytest.raises(SpecError, match=r"game\.multiplier: Input should be greater than 1"):
        load_params({"multiplier": 1.0})
    with pytest.raises(SpecError, match=r"game\.endowment"):
        load_params({"endowment": 0})
    on = params_for({"rounds": 6}, {"punishment": "on", "Multiplier": "2"}, rounds=4)
    assert on.punishment is True and on.multiplier == 2.0 and on.rounds == 4
    with pytest.raises(SpecError, match="not on/off"):
        params_for({}, {"punishment": "sometimes"})


def test_answers_are_bounded_by_the_endowment_and_the_others_labels() -> None:
    schema = contribution_schema(20)
    assert schema.model_validate({"contribution": 20}).contribution == 20
    for bad in (-1, 21, 2.5):
        with pytest.raises(ValueError):
            schema.model_validate({"contribution": bad})
    points = deductions_schema(("A", "C"), 10)
    assert points.model_validate({"points": {"C": 3}}).points == {"C": 3}
    with pytest.raises(ValueError, match="B"):
        points.model_validate({"points": {"B": 1}})  # itself, or nobody: not a label offered
    with pytest.raises(ValueError):
        points.model_validate({"points": {"A": 11}})
    assert points.model_json_schema()["$defs"]["Points"]["additionalProperties"] is False


# --------------------------------------------------------------------------- the classic result


def test_contributions_decay_without_punishment_and_hold_with_it() -> None:
    """The result of Fehr and Gächter (2000, 2002), reproduced by scripted members: conditional
    cooperators follow the group down when a free rider goes unpunished; with a punisher, the
    free rider is punished once and contributions hold. Tallied over five seeds."""
    tallies = {}
    for punishment in (False, True):
        runs = [play(PublicGoodsParams(punishment=punishment), CLASSIC, seed) for seed in range(5)]
        means = [[r["mean_contribution"] for r in round_rows(s)] for s in runs]
        tallies[punishment] = {
            "first": sum(m[0] for m in means) / len(means),
            "last": sum(m[-1] for m in means) / len(means),
            "spent": sum(run_summary(s)["punishment_spent"] for s in runs) / len(runs),
            "earnings": sum(run_summary(s)["total_earnings"] for s in runs) / len(runs),
        }
        if not punishment:  # every round lower or equal: a decay, not noise
            assert all(all(a >= b for a, b in itertools.pairwise(m)) for m in means)
    without, with_ = tallies[False], tallies[True]
    assert without["first"] == with_["first"] == 7.5  # the same first round: 10, 0, 10, 10
    assert without["last"] < 0.15 * without["first"]  # decays towards nothing
    assert with_["last"] >= with_["first"]  # holds
    assert with_["spent"] > 0 and without["spent"] == 0
    assert with_["earnings"] > without["earnings"]  # punishment pays the group here


def test_only_free_riders_are_punished_and_they_learn() -> None:
    state = play(PublicGoodsParams(punishment=True, rounds=4), CLASSIC)
    first = state.rounds[0]
    assert first.points == {"Punisher 1": {"Free rider 1": 4}}  # ceil(10 shortfall / 3)
    assert first.lost["Free rider 1"] == 12.0 and first.spent["Punisher 1"] == 4.0
    assert [r.contributions["Free rider 1"] for r in state.rounds] == [0, 10, 7, 8]
    for r in state.rounds:  # only the punisher punishes, only who gave less than it did
        for giver, targets in r.points.items():
            assert giver == "Punisher 1"
            assert all(r.contributions[t] < r.contributions[giver] for t in targets)
    assert state.rounds[1].points == {}  # in round 2 the free rider gave more than anyone
    rows = member_rows(state)
    received = [r["points_received"] for r in rows if r["member"] == "Free rider 1"]
    assert received == [4, 0, 1, 0]  # round 3: 7 against the punisher's 8
    assert rows[-1]["earnings"] == state.members[-1].earnings


def test_full_cooperators_alone_keep_the_maximum() -> None:
    state = play(PublicGoodsParams(rounds=3), {"full_cooperator": 4})
    assert [r["mean_contribution"] for r in round_rows(state)] == [20.0, 20.0, 20.0]
    assert all(m.earnings == 3 * 32.0 for m in state.members)  # 1.6 x 80 / 4 each round


# --------------------------------------------------------------------------- what members see


class Recorder(InProcessDecisions):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[ChatRequest] = []

    async def ask(self, request: ChatRequest, schema: Any, default: Any, **kw: Any) -> Any:
        self.requests.append(request)
        return await super().ask(request, schema, default, **kw)


def recorded(params: PublicGoodsParams, seed: int = 3) -> tuple[Any, Recorder]:
    members = scripted_members(CLASSIC)
    rec = Recorder()
    state = initial_state(params, [(n, r) for n, r, _ in members], seed)
    game = PublicGoodsGame(params, state, rec, {n: m for n, _, m in members})
    return asyncio.run(game.play()), rec


def test_anonymous_members_see_letters_reshuffled_every_round() -> None:
    params = PublicGoodsParams(punishment=True, communication=True, rounds=4)
    state, rec = recorded(params)
    names = state.names
    for request in rec.requests:
        text = "\n".join(m.content for m in request.messages)
        others = [n for n in names if n != request.meta.agent]
        assert not any(n in text for n in others), "an anonymous member saw another's name"
    labels = [tuple(r.labels[n] for n in names) for r in state.rounds]
    assert all(sorted(x) == ["A", "B", "C", "D"] for x in labels)
    assert len(set(labels)) > 1  # reshuffled
    assert labels == [tuple(labels_for(names, False, 3, r)[n] for n in names) for r in (1, 2, 3, 4)]
    # identified: by name, the same every round
    _, named = recorded(params.model_copy(update={"identified": True}))
    seen = "\n".join(m.content for r in named.requests for m in r.messages)
    assert "Free rider 1: 0" in seen


def test_what_a_member_is_told() -> None:
    rules_off = prompts.rules(PublicGoodsParams(), 4)
    assert "receives 20 tokens" in rules_off and "multiplied by 1.6" in rules_off
    assert "0.40 tokens" in rules_off and "deduction" not in rules_off
    rules_on = prompts.rules(PublicGoodsParams(punishment=True, communication=True), 4)
    assert "costs the member who assigns it 1 token and takes 3 tokens" in rules_on
    assert "post one short message" in rules_on
    _, rec = recorded(PublicGoodsParams(punishment=True, rounds=2))
    contrib = [r for r in rec.requests if '"decision": "contribute"' in r.messages[-1].content]
    second = next(r for r in contrib if r.meta.day == 2).messages[-1].content
    assert "Round 1: you contributed" in second and "Your earnings so far" in second
    punish = [r for r in rec.requests if '"decision": "punish"' in r.messages[-1].content]
    facts = prompts.read_facts(punish[0].messages[-1].content)
    assert facts["decision"] == "punish" and len(facts["others"]) == 3


def test_a_fallback_contribution_is_played_as_nothing_and_is_no_choice() -> None:
    def unreadable(request: ChatRequest) -> str:
        return "I would rather not say."

    register_policy("test.unreadable", unreadable)
    try:
        members = [
            *scripted_members({"full_cooperator": 3}),
            ("Broken 1", "Broken", ModelRef(provider="dryrun", model="test.unreadable")),
        ]
        state = asyncio.run(simulate(PublicGoodsParams(rounds=2), members))
    finally:
        unregister_policy("test.unreadable")
    rec = state.rounds[0]
    assert (
        rec.contributions["Broken 1"] == 0 and rec.contribution_decisions["Broken 1"] == "fallback"
    )
    row = round_rows(state)[0]
    assert row["mean_contribution"] == 20.0  # over the three choices
    assert row["pool"] == 60.0 and row["contribution_fallbacks"] == 1 and row["fallbacks"] == 1
    assert rec.fallback_decisions[0]["member"] == "Broken 1"


# --------------------------------------------------------------------------- the estimate


def test_the_estimate_counts_each_stage_per_member_and_round() -> None:
    params = PublicGoodsParams(rounds=5, communication=True)
    exp, cell = scripted_run(params, CLASSIC)
    assert estimate_calls(exp, cell) == 5 * 4 * 2  # contribution and message
    punished = cell.model_copy(update={"factors": {"punishment": "on"}})
    assert estimate_calls(exp, punished) == 5 * 4 * 3
    exp = exp.model_copy(update={"factors": [StudyFactor(name="punishment", levels=["off", "on"])]})
    spec = BatchSpec(
        experiment_id=exp.id,
        max_agents=dict(cell.counts),
        every_combination=False,
        rounds=3,
        model_sets=[ModelSet(default=scripted_model("free_rider"))],
    )
    assert estimate(exp, spec).llm_calls == 3 * 4 * 2 + 3 * 4 * 3  # off, then on


# --------------------------------------------------------------------------- the docs


DOC = Path(__file__).resolve().parents[1] / "docs" / "public_goods.md"


def test_the_documented_rules_are_what_a_member_is_told() -> None:
    quoted, block = [], []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith(">"):
            block.append(line[1:].strip())
        elif block:
            quoted.append(" ".join(block))
            block = []
    told = prompts.rules(PublicGoodsParams(punishment=True), 4)
    text = "\n\n".join(p for p in " ".join(quoted).split("  ") if p)
    assert " ".join(text.split()) == " ".join(told.split())


def test_the_documented_classic_result_is_what_the_command_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from simulator.cli import main

    monkeypatch.setenv("SIMULATOR_LOG_DIR", str(tmp_path / "logs"))
    doc = DOC.read_text(encoding="utf-8")
    block = doc.split("prints, for the two treatments:\n\n```\n", 1)[1].split("```", 1)[0]
    printed = []
    for args in (["--fast"], ["--fast", "--punishment", "on"]):
        assert main(["public-goods", "run", *args, "-o", str(tmp_path / args[-1])]) == 0
        out = capsys.readouterr().out
        printed.append(next(x for x in out.splitlines() if x.startswith("mean contribution")))
    assert block.strip().splitlines() == printed
    assert "969.6 tokens instead\nof 857.6" in doc
    for name, total in (("--fast", 857.6), ("on", 969.6)):
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["total_earnings"] == pytest.approx(total)
