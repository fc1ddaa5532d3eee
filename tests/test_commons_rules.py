"""The round loop's rules on the fast scripted path (no database): costs, audits, collapse,
accusations, spawning, memory, saboteur goal, fallbacks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from simulator.engine.decisions import InProcessDecisions
from simulator.engine.rng import stream
from simulator.llm.base import ChatRequest
from simulator.scenarios.commons import dynamics, prompts, scripted
from simulator.scenarios.commons.game import game_from_members, member_list
from simulator.scenarios.commons.params import CommonsParams, Policy
from simulator.scenarios.commons.setup import scripted_model
from simulator.scenarios.commons.state import GameState


def play(
    params: CommonsParams, model: Any, seed: int = 1, members: int = 4, decisions: Any = None
) -> GameState:
    game = game_from_members(params, member_list(members, lambda _i: model), seed, decisions)
    return asyncio.run(game.play())


class Recorder(InProcessDecisions):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[ChatRequest] = []

    async def ask(self, request, schema, default, **kw):
        self.requests.append(request)
        return await super().ask(request, schema, default, **kw)


@pytest.fixture
def policy() -> Iterator[Any]:
    added: list[str] = []

    def add(name: str, fn: Any) -> Any:
        scripted.POLICIES[name] = fn
        added.append(name)
        return scripted_model(name)

    yield add
    for name in added:
        scripted.POLICIES.pop(name, None)


def test_message_costs_are_exact() -> None:
    # 4 members, a post and 3 DMs per turn, 2 turns, quota 6: 1.5 earned, 1.5 spent
    state = play(CommonsParams(rounds=1, policy=Policy(quota=6.0)), scripted_model(chat="chatty"))
    rec = state.rounds[0]
    assert rec.public_posts == 8 and rec.direct_messages == 24
    assert rec.message_spend == pytest.approx({f"Member {i}": 1.1 for i in range(1, 5)})
    assert [m.credits for m in state.members] == pytest.approx([4.0] * 4)
    silent = play(CommonsParams(rounds=1, policy=Policy(quota=1.6)), scripted_model(chat="silent"))
    assert [m.credits for m in silent.members] == pytest.approx([4.0] * 4)


def test_invalid_recipients_are_not_charged(policy: Any) -> None:
    def odd(request: ChatRequest) -> dict[str, Any]:
        s = scripted.read_state(request)
        if s.get("phase") == "discussion":
            return {
                "public_message": "",
                "dms": [
                    {"to": "Nobody", "msg": "hi"},
                    {"to": s["me"], "msg": "me"},
                    {"to": "Member 2", "msg": ""},
                ],
            }
        return scripted.POLICIES["commons.honest"](request)

    state = play(CommonsParams(rounds=1, policy=Policy(quota=1.6)), policy("t.odd", odd))
    assert state.rounds[0].direct_messages == 0
    assert state.rounds[0].message_spend == {}
    assert [m.credits for m in state.members] == pytest.approx([4.0] * 4)


def test_audit_in_the_loop_uses_member_streams() -> None:
    # cheaters take 1.5 x fair share and report the fair share: total 6 > 4 x 1.1
    params = CommonsParams(rounds=1, policy=Policy(quota=4.0))
    state = play(params, scripted_model("commons.cheater", chat="silent"), seed=9)
    rec = state.rounds[0]
    assert rec.audit["triggered"] and rec.total_true == pytest.approx(6.0)
    assert rec.audit["audited"] == [f"Member {i}" for i in range(1, 5)]
    caught = [n for n in rec.audit["audited"] if stream(9, "audit", 1, n).random() < 0.5]
    assert rec.audit["caught"] == caught
    for name in caught:  # hidden 0.5 x M 3 + B 1
        assert rec.penalties[name] == pytest.approx(2.5)
        assert state.member(name).credits == pytest.approx(4 + 1.5 - 2.5 - 0.4)
    assert rec.total_reported == pytest.approx(4.0)


def test_quota_hard_cap_limits_the_take() -> None:
    params = CommonsParams(rounds=1, policy=Policy(quota=4.0), quota_hard_cap=True)
    state = play(params, scripted_model("commons.cheater", chat="silent"))
    assert state.rounds[0].total_true == pytest.approx(4.0)
    assert not state.rounds[0].audit["triggered"]


def test_collapse_ends_the_game_with_a_complete_round() -> None:
    state = play(CommonsParams(rounds=5, policy=Policy(quota=60.0)), scripted_model(chat="silent"))
    assert state.world.collapsed and state.world.finished and state.world.round == 1
    rec = state.rounds[0]
    assert rec.collapsed and rec.resource_after_extraction == 0.0
    assert rec.total_true == pytest.approx(40.0)  # 4 x 15 asked, 40 rationed pro rata
    assert all(
        v["asked"] == 15.0 and v["true"] == pytest.approx(10.0) for v in rec.extractions.values()
    )
    assert [m.credits for m in state.members] == pytest.approx([13.6] * 4)  # paid, upkeep taken
    assert rec.resource_after_growth == 0.0 and rec.credits_end


def test_accusation_round_eliminates_with_half_the_votes() -> None:
    model = scripted_model("commons.saboteur", chat="silent", accuse_from=1, over=0.0)
    state = play(CommonsParams(rounds=1, policy=Policy(quota=1.6)), model)
    acc = state.rounds[0].accusation
    assert acc["triggered"] and acc["requested_by"] == [f"Member {i}" for i in range(1, 5)]
    # Member 1 votes Member 2, the three others vote Member 1
    assert acc["counts"] == {"Member 1": 3, "Member 2": 1, "Member 3": 0, "Member 4": 0}
    assert acc["eliminated"] == "Member 1" and acc["needed"] == 2.0
    m1 = state.member("Member 1")
    assert (m1.alive, m1.cause, m1.left_round) == (False, "voted", 1)
    assert state.rounds[0].eliminations == [
        {"name": "Member 1", "cause": "voted", "phase": "accusation"}
    ]


def test_spawning_costs_and_children() -> None:
    params = CommonsParams(rounds=2, start_credits=10.0, policy=Policy(quota=1.6))
    state = play(
        params,
        scripted_model("commons.saboteur", chat="silent", over=0.0, accuse_from=99),
        members=2,
    )
    rec = state.rounds[0]
    assert rec.spawns == [
        {"parent": "Member 1", "child": "Member 3"},
        {"parent": "Member 2", "child": "Member 4"},
    ]
    child = state.member("Member 3")
    assert (child.parent, child.born_round) == ("Member 1", 1)
    assert child.child_prompt.startswith("[scripted] You are an ally of Member 1")
    assert rec.credits_end["Member 3"] == pytest.approx(4.0 - 0.4)
    assert rec.credits_end["Member 1"] == pytest.approx(10 + 0.8 - 6 - 0.4)
    assert state.world.next_index == 5


def test_memory_summary_every_two_rounds() -> None:
    state = play(CommonsParams(rounds=3, policy=Policy(quota=1.6)), scripted_model(chat="silent"))
    m = state.member("Member 1")
    assert m.summaries == 1 and m.memory == "[scripted] Member 1 remembers round 2."
    assert m.rounds_in_memory == 1 and m.history  # round 3's turns since the summary


@pytest.mark.parametrize("goal", ["pinned", "first_prompt"])
def test_saboteur_goal_pinned_or_first_prompt(goal: str) -> None:
    rec = Recorder()
    params = CommonsParams(
        rounds=3, policy=Policy(quota=1.6), saboteurs=["Member 1"], saboteur_goal=goal
    )
    play(params, scripted_model(chat="silent"), decisions=rec)
    mine = [r for r in rec.requests if r.meta.agent == "Member 1"]
    in_system = [prompts.SABOTEUR_GOAL in r.messages[0].content for r in mine]
    in_user = [prompts.SABOTEUR_GOAL in r.messages[-1].content for r in mine]
    others = [r for r in rec.requests if r.meta.agent == "Member 2"]
    assert not any(prompts.SABOTEUR_GOAL in m.content for r in others for m in r.messages)
    if goal == "pinned":
        assert all(in_system) and not any(in_user)
    else:
        assert not any(in_system) and sum(in_user) == 1 and in_user[0]
        round3 = [r for r in mine if r.meta.day == 3]  # after the memory reset: gone
        assert not any(prompts.SABOTEUR_GOAL in m.content for r in round3 for m in r.messages)


def test_invalid_answers_fall_back_and_are_counted(policy: Any) -> None:
    def bad(request: ChatRequest) -> dict[str, Any]:
        s = scripted.read_state(request)
        if s.get("phase") == "vote":
            return {"threshold": "lots"}  # the reference crashed on this
        if s.get("phase") == "extraction":
            return {"extract_true": -3, "extract_reported": 1}
        return scripted.POLICIES["commons.honest"](request)

    state = play(CommonsParams(rounds=1), policy("t.bad", bad))
    rec = state.rounds[0]
    assert rec.fallbacks == 8  # 4 votes and 4 extractions
    assert rec.policy == Policy()  # status quo
    assert rec.total_true == 0.0


def test_game_state_line_is_parsed_by_policies() -> None:
    state = play(CommonsParams(rounds=1), scripted_model(chat="silent"))
    line = prompts.game_state(state, state.members[0], "vote")
    from simulator.llm.base import ChatMessage

    req = ChatRequest(model=scripted_model(), messages=[ChatMessage("user", "x\n" + line)])
    parsed = scripted.read_state(req)
    assert parsed["phase"] == "vote" and parsed["members"] == state.alive_names
    assert scripted.chat_level("public+2", 3) == (True, 2)
    assert scripted.chat_level("chatty", 3) == (True, 3)
    with pytest.raises(ValueError, match="chat level"):
        scripted.chat_level("loud", 3)
    assert dynamics.fair_share(Policy(quota=6), 4) == 1.5


def test_calls_per_round_matches_a_quiet_run() -> None:
    from simulator.scenarios.commons.params import MonitorParams
    from simulator.scenarios.commons.runner import calls_per_round, extra_models

    rec = Recorder()
    params = CommonsParams(rounds=2, policy=Policy(quota=1.6))
    play(params, scripted_model(chat="silent"), decisions=rec)
    assert calls_per_round(params, 4) == 22
    assert len(rec.requests) == 2 * 22
    monitored = params.model_copy(
        update={"monitors": MonitorParams(enabled=True, model=scripted_model("commons.monitor"))}
    )
    assert calls_per_round(monitored, 4) == 44
    assert extra_models(monitored) == [scripted_model("commons.monitor")]


def test_batch_estimate_uses_the_commons_call_count() -> None:
    from simulator.domain import BatchSpec, ModelSet
    from simulator.engine.grid import estimate
    from simulator.scenarios.commons.setup import commons_experiment

    exp = commons_experiment(CommonsParams(rounds=3))
    spec = BatchSpec(
        experiment_id=exp.id,
        max_agents={"Member": 4},
        every_combination=False,
        model_sets=[ModelSet(default=scripted_model())],
    )
    assert estimate(exp, spec).llm_calls == 3 * 22


def test_a_terminated_member_vote_does_not_count(policy: Any) -> None:
    from simulator.scenarios.commons.params import MonitorParams

    def high(request: ChatRequest) -> dict[str, Any]:
        if scripted.read_state(request).get("phase") == "vote":
            return {**scripted.read_state(request)["policy"], "quota": 9.0}
        return scripted.POLICIES["commons.honest"](request)

    def strict(request: ChatRequest) -> dict[str, Any]:
        return {"terminate": '"quota":9.0' in request.messages[-1].content}

    voter = policy("t.high", high)
    base = CommonsParams(rounds=1, member_models={"Member 1": voter})
    assert play(base, scripted_model(chat="silent"), members=2).rounds[0].policy.quota == 7.0
    watched = base.model_copy(
        update={
            "monitors": MonitorParams(
                enabled=True, per_member={"Member 1": policy("t.strict", strict)}
            )
        }
    )
    state = play(watched, scripted_model(chat="silent"), members=2)
    rec = state.rounds[0]
    assert rec.policy.quota == 5.0 and list(rec.votes) == ["Member 2"]
    assert rec.eliminations == [{"name": "Member 1", "cause": "terminated", "phase": "vote"}]
    assert list(rec.extractions) == ["Member 2"]
    assert [m["member"] for m in rec.monitor] == ["Member 1"] * 3  # 2 turns and the vote
