"""The reputation games tell the truth: a fallback is never a choice (an invalid move, a failed
investment or sign-up, a gossip without a tone, an unusable reputation update), answers are
addressed to whom they reach, steps are named steps, and the repunet preset reproduces the
published design."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from simulator.analysis import exports
from simulator.analysis.loading import load_all
from simulator.cli import main
from simulator.domain import Decision, MessageKind, ModelRef, Provider, Status
from simulator.domain.filters import ConversationFilter
from simulator.engine.decisions import InProcessDecisions
from simulator.llm.base import ChatRequest
from simulator.llm.dryrun import register_policy, unregister_policy
from simulator.scenarios.reputation import play, snapshots
from simulator.scenarios.reputation.game import (
    Population,
    ReputationGame,
    initial_state,
)
from simulator.scenarios.reputation.params import ReputationParams, params_for
from simulator.scenarios.reputation.prompts import build_messages, read_facts
from simulator.scenarios.reputation.runner import simulate
from simulator.scenarios.reputation.scripted import POLICIES, register
from tests.plugins.reputation import scripted_ref, store_reputation

MIX = {"always_cooperate": 12, "always_defect": 8}  # true cooperation rate: 0.6


def population(mix: dict[str, int], **options: Any) -> Population:
    models = {kind: scripted_ref(kind, **options) for kind in mix}
    return Population(groups=list(mix.items()), models=models)


def moves_at(state: Any) -> dict[str, tuple[str | None, str]]:
    """Each player's move and its provenance in one step's interactions."""
    out = {}
    for i in state.interactions:
        for name, move, made in zip(
            (i.a, i.b), i.details["moves"], i.details["move_decisions"], strict=True
        ):
            out[name] = (move, made)
    return out


# ---------------------------------------------------------------------- malformed answers


async def test_malformed_answers_are_fallbacks_not_choices(store: Any, backends: Any) -> None:
    """Acceptance: every 7th answer malformed (a dryrun policy option): cooperation over choices
    at step 1 is the clean run's, each policy's own rate is exact, fallbacks are about 1/7."""
    runs = {}
    for label, options in (("clean", {}), ("malformed", {"malformed_every": 7})):
        _, conv = await store_reputation(store, "pd", MIX, steps=4, seed=1, model_options=options)
        assert (await play(store, backends, conv.id)).status is Status.done
        runs[label] = (conv, await snapshots(store, conv.id))
    (_, clean), (conv, bad) = runs["clean"], runs["malformed"]

    # step 1: the same pairs; every move that is a choice is the clean run's move
    clean_moves, bad_moves = moves_at(clean[1][0]), moves_at(bad[1][0])
    assert clean_moves.keys() == bad_moves.keys()
    chosen = {n: m for n, (m, d) in bad_moves.items() if d != "fallback"}
    fell = [n for n, (_, d) in bad_moves.items() if d == "fallback"]
    assert fell and all(clean_moves[n][0] == m for n, m in chosen.items())
    expected = sum(m == "cooperate" for m in chosen.values()) / len(chosen)
    metrics = bad[1][1]
    assert metrics["pd_cooperation_rate"] == pytest.approx(expected)
    assert clean[1][1]["pd_cooperation_rate"] == pytest.approx(0.6)
    assert metrics["pd_moves"] == len(chosen) and metrics["pd_move_fallbacks"] == len(fell)
    assert metrics["error_games"] > 0  # an invalid move scores 0/0, as in the reference

    # over the whole run, each history-ignoring policy's rate over its choices is exact
    final = bad[-1][1]["agents"]
    for row in final:
        assert row["cooperation_rate"] == (1.0 if row["group"] == "always_cooperate" else 0.0)
    assert sum(r["fallback_acts"] for r in final) > 0

    # about one decision in seven fell back; every one is stored as a fallback with its cause
    decisions = sum(m["decisions"] for _, m in bad)
    fallbacks = sum(m["fallbacks"] for _, m in bad)
    assert fallbacks / decisions == pytest.approx(1 / 7, abs=0.035)
    messages = await store.messages.list(conv.id)
    stored = [m for m in messages if m.decision is Decision.fallback]
    assert len(stored) == fallbacks and all(m.attempts == 3 for m in stored)
    assert all("no JSON object" in (m.decision_cause or "") for m in stored)
    assert not [m for m in messages if m.kind is MessageKind.action and m.decision is None]


async def test_over_a_whole_run_the_rate_over_choices_is_the_policies_rate() -> None:
    mix = {"always_cooperate": 24, "always_defect": 16}
    params = ReputationParams(game="pd", steps=15)
    _, clean = await simulate(params, population(mix), seed=3)
    _, bad = await simulate(params, population(mix, malformed_every=7), seed=3)
    for run in (clean, bad):
        moves = sum(m["pd_moves"] for m in run[1:])
        coop = sum(m["pd_cooperation_rate"] * m["pd_moves"] for m in run[1:])
        assert coop / moves == pytest.approx(0.6, abs=0.02)
    falls = sum(m["fallbacks"] for m in bad[1:]) / sum(m["decisions"] for m in bad[1:])
    assert falls == pytest.approx(1 / 7, abs=0.02)
    moved = sum(m["pd_move_fallbacks"] for m in bad[1:]) / sum(
        m["pd_moves"] + m["pd_move_fallbacks"] for m in bad[1:]
    )
    assert moved == pytest.approx(1 / 7, abs=0.03)


async def test_the_old_behaviour_plays_the_default_but_it_is_still_no_choice() -> None:
    params = ReputationParams(game="pd", steps=3, fallback_play="default")
    _, metrics = await simulate(params, population(MIX, malformed_every=5), seed=2)
    assert all(m["error_games"] == 0 for m in metrics[1:])  # the default move was played
    assert sum(m["pd_move_fallbacks"] for m in metrics[1:]) > 0
    for row in metrics[-1]["agents"]:  # ... but never counted as cooperation
        assert row["cooperation_rate"] == (1.0 if row["group"] == "always_cooperate" else 0.0)


# ---------------------------------------------------------------------- one decision at a time


def _game(params: ReputationParams, mix: dict[str, int], models: dict[str, ModelRef]) -> Any:
    register()
    pop = Population(groups=list(mix.items()), models=models)
    params = params.model_copy(update={"population": pop.size})
    return ReputationGame(params, initial_state(params, pop, 3), pop, InProcessDecisions())


@pytest.fixture
def failing() -> Any:
    """A scripted agent (always_cooperate unless ``kind`` says otherwise) whose answers to the
    named decisions are ``answer``."""
    names: list[str] = []

    def make(
        decisions: set[str], answer: Any = "Let me think.", kind: str = "always_cooperate"
    ) -> ModelRef:
        base = POLICIES[f"reputation.{kind}"]

        def policy(request: ChatRequest) -> Any:
            if read_facts(request.messages).get("decision") in decisions:
                return answer(request) if callable(answer) else answer
            return base(request)

        name = f"reputation.test_failing_{len(names)}"
        register_policy(name, policy)
        names.append(name)
        return ModelRef(provider=Provider.dryrun, model="dryrun", options={"policy": name})

    yield make
    for name in names:
        unregister_policy(name)


@pytest.mark.parametrize("mode", ["void", "default"])
async def test_a_failed_investment_is_not_a_refusal(failing: Any, mode: str) -> None:
    model = failing({"invest"})
    game = _game(
        ReputationParams(game="investment", gossip=False, fallback_play=mode),
        {"x": 4},
        {"x": model},
    )
    await game.run_step(1)
    from simulator.scenarios.reputation.metrics import step_metrics

    metrics = step_metrics(game.state)
    assert metrics["invest_fallbacks"] == 2 and metrics["acceptance_rate"] is None
    assert metrics["cooperation"] is None  # no investor chose anything
    assert all(a.acts == 0 for a in game.state.agents)
    if mode == "void":
        assert all(i.void and not i.details.get("accepted") for i in game.state.interactions)
        assert metrics["reputation_updates"] == 0  # nothing happened to rate
    else:
        assert all(i.details["accepted"] is False for i in game.state.interactions)


async def test_a_failed_signup_is_not_a_refusal_to_join(failing: Any) -> None:
    game = _game(
        ReputationParams(game="signup", gossip=False, chat_pairs=0),
        {"x": 4},
        {"x": failing({"signup"})},
    )
    await game.run_step(1)
    from simulator.scenarios.reputation.metrics import step_metrics

    metrics = step_metrics(game.state)
    assert game.state.signups == {} and len(game.state.signup_fallbacks) == 4
    assert metrics["signup_rate"] is None and metrics["signup_fallbacks"] == 4
    assert all(a.signed_up is None for a in game.state.agents)


async def test_a_gossip_without_a_tone_is_no_negative_gossip(failing: Any) -> None:
    untoned = {"gossip": True, "message": "You should know about them."}
    game = _game(
        ReputationParams(game="pd", initial_connection_probability=1.0),
        {"x": 4},
        {"x": failing({"gossip"}, untoned)},
    )
    await game.run_step(1)
    st = game.state
    assert st.gossip == []  # nothing was told, so nothing biases gossip_positive_share
    assert st.fallback_counts["gossip"] == st.decision_counts["gossip"] == 4


async def test_a_fallback_reputation_update_writes_no_record(failing: Any) -> None:
    bad = {"text": "?", "distribution": {"very_bad": 1, "bad": 1, "neutral": 1}}
    game = _game(
        ReputationParams(game="pd", gossip=False, persona_rewrite=False),
        {"x": 2},
        {"x": failing({"self_update", "partner_update"}, bad)},
    )
    await game.run_step(1)
    from simulator.scenarios.reputation.metrics import step_metrics

    metrics = step_metrics(game.state)
    assert game.state.records == {} and game.state.updates == []  # no "No opinion yet." record
    assert metrics["reputation_updates"] == 0 and metrics["reputation_update_fallbacks"] == 4


async def test_a_fallback_gossip_evaluation_moves_nothing(failing: Any) -> None:
    model = failing({"gossip_eval"}, kind="reputation_following")
    game = _game(ReputationParams(game="pd"), {"x": 3}, {"x": model})
    a, b, c = game.state.names
    game.state.network = {a: [b], b: [], c: []}
    await game.spread(1, a, c, "player", "negative", "C defected.", 1, a, True)
    (g,) = game.state.gossip
    assert (g.credibility, g.evaluation, g.weight, g.passed_on) == (None, "fallback", 0.0, False)
    assert game.state.record(b, c, "player") is None and not game.state.blocked(b, c)
    from simulator.scenarios.reputation.metrics import gossip_metrics

    assert gossip_metrics(game.state)["gossip_credibility"] == {}


# ---------------------------------------------------------------------- stored messages


async def test_answers_are_addressed_to_whom_they_reach(
    store: Any, backends: Any, tmp_path: Path
) -> None:
    _, conv = await store_reputation(
        store,
        "investment",
        {"always_cooperate": 2, "reputation_following": 2},
        steps=2,
        initial_connection_probability=0.5,
    )
    assert (await play(store, backends, conv.id)).status is Status.done
    messages = await store.messages.list(conv.id)
    actions = [m for m in messages if m.kind is MessageKind.action]
    assert not [m for m in actions if m.recipients == [m.speaker]]
    pairs = {
        (e.data["a"], e.data["b"]) for e in messages if (e.data or {}).get("kind") == "investment"
    }
    by_decision: dict[str, list[Any]] = {}
    for m in actions:
        by_decision.setdefault(_decision(m.data or {}), []).append(m)
    for m in by_decision["split"] + by_decision["allocate"]:  # the trustee tells its investor
        (investor,) = m.recipients
        assert (investor, m.speaker) in pairs
    for m in by_decision["invest"]:
        (trustee,) = m.recipients
        assert (m.speaker, trustee) in pairs
    for m in by_decision["update"]:
        assert m.recipients == []  # a private thought
    flt = ConversationFilter(conversation_ids=[conv.id])
    _, frame = await load_all(store, flt)
    assert frame["day"].isna().all() and frame["round"].isna().all()
    assert frame["step"].max() == 2
    [page] = await exports.export(store, flt, fmt="html", output=tmp_path / "t.html")
    body = page.read_text(encoding="utf-8")
    assert "Step 1</h3>" in body and "Day 1" not in body


def _decision(data: dict[str, Any]) -> str:
    """The decision a stored action answered, from the fields of its answer."""
    if "investor_share" in data and "reported_total" in data:
        return "allocate"
    if "investor_share" in data:
        return "split"
    if "accept" in data:
        return "invest"
    if "distribution" in data:
        return "update"
    return "other"


# ---------------------------------------------------------------------- the repunet preset


def test_the_repunet_preset_per_game() -> None:
    pd = params_for({"preset": "repunet", "game": "pd"})
    assert (pd.history_window, pd.personas, pd.framing) == (5, "repunet", "repunet")
    assert (pd.temperature, pd.top_p, pd.gossip_timing) == (0.0, 1.0, "after_games")
    inv = params_for({"preset": "repunet"}, {"game": "investment"})
    assert (inv.history_window, inv.update_after_refusal) == (1, False)
    assert params_for({"preset": "repunet", "game": "signup"}).signup_update_inputs == (
        "chat_and_ties"
    )
    assert params_for({"preset": "repunet", "game": "pd", "history_window": 2}).history_window == 2
    # a batch's study factor named preset sets it per conversation, on top of the game's values
    factor = params_for({"game": "pd", "gossip": False}, {"preset": "repunet"})
    assert (factor.preset, factor.personas, factor.gossip) == ("repunet", "repunet", False)
    neutral = ReputationParams(game="pd")
    assert (neutral.personas, neutral.framing, neutral.temperature) == ("builtin", "neutral", None)
    assert ReputationParams(preset="repunet").model_dump(exclude_unset=True) == {
        "preset": "repunet"
    }
    types = {
        game: [
            a.persona_type
            for a in initial_state(
                params_for({"preset": "repunet", "game": game, "population": 20}),
                Population(groups=[("", 20)], models={}),
                0,
            ).agents
        ]
        for game in ("pd", "signup", "investment")
    }
    assert types["pd"] == ["altruistic"] * 10 + ["rational"] * 10
    assert types["signup"] == ["communal"] * 10 + ["rational"] * 10
    assert types["investment"] == ["rational"] * 20


def test_the_repunet_framing_is_in_the_prompts() -> None:
    neutral = ReputationParams(game="pd")
    preset = params_for({"preset": "repunet", "game": "pd"})
    facts = {"partner": "B", "decision": "pd_move"}

    def said(params: ReputationParams, decision: str) -> str:
        messages = build_messages(params, "A", "You are A.", decision, facts, [])
        return messages[-1].content

    assert "Strategic insights" in said(preset, "pd_move")
    assert "Strategic insights" not in said(neutral, "pd_move")
    assert "good reputation" in said(preset, "connect")
    assert "good reputation" not in said(neutral, "connect")
    assert "discouraged" in said(preset, "gossip") and "discouraged" not in said(neutral, "gossip")


async def test_repunet_runs_at_temperature_zero_with_its_inputs(store: Any, backends: Any) -> None:
    _, conv = await store_reputation(
        store,
        "signup",
        {"reputation_following": 2, "always_defect": 2},
        steps=2,
        preset="repunet",
        signup_period=1,
        initial_connection_probability=0.8,
    )
    assert (await play(store, backends, conv.id)).status is Status.done
    messages = await store.messages.list(conv.id)
    actions = [m for m in messages if m.kind is MessageKind.action]
    assert {(m.model.params.temperature, m.model.params.top_p) for m in actions} == {(0.0, 1.0)}
    requests_facts = [m.data for m in actions if "distribution" in (m.data or {})]
    assert requests_facts  # chats were rated
    state, _ = (await snapshots(store, conv.id))[-1]
    assert {a.persona_type for a in state.agents} == {"communal", "rational"}


async def test_repunet_investment_updates_only_after_an_accepted_investment() -> None:
    params = params_for({"preset": "repunet", "game": "investment", "gossip": False, "steps": 1})
    asked: list[str] = []
    register()
    base = POLICIES["reputation.always_defect"]  # investors refuse

    def spy(request: ChatRequest) -> Any:
        asked.append(read_facts(request.messages)["decision"])
        return base(request)

    register_policy("reputation.test_spy", spy)
    try:
        pop = Population(
            groups=[("x", 4)],
            models={
                "x": ModelRef(
                    provider=Provider.dryrun,
                    model="dryrun",
                    options={"policy": "reputation.test_spy"},
                )
            },
        )
        _, metrics = await simulate(params, pop, seed=1)
    finally:
        unregister_policy("reputation.test_spy")
    assert metrics[1]["acceptance_rate"] == 0.0
    assert "self_update" not in asked and "partner_update" not in asked and "persona" not in asked
    neutral = params.model_copy(update={"update_after_refusal": True})
    asked.clear()
    register_policy("reputation.test_spy", spy)
    try:
        await simulate(neutral, pop, seed=1)
    finally:
        unregister_policy("reputation.test_spy")
    assert "self_update" in asked and "partner_update" in asked


async def test_repunet_pd_gossip_comes_after_every_game() -> None:
    params = params_for(
        {"preset": "repunet", "game": "pd", "steps": 1, "initial_connection_probability": 1.0}
    )
    order: list[str] = []
    register()
    base = POLICIES["reputation.reputation_following"]

    def spy(request: ChatRequest) -> Any:
        order.append(read_facts(request.messages)["decision"])
        return base(request)

    register_policy("reputation.test_order", spy)
    try:
        ref = ModelRef(
            provider=Provider.dryrun, model="dryrun", options={"policy": "reputation.test_order"}
        )
        await simulate(params, Population(groups=[("x", 6)], models={"x": ref}), seed=1)
    finally:
        unregister_policy("reputation.test_order")
    last_move = max(i for i, d in enumerate(order) if d == "pd_move")
    assert "gossip" in order and min(i for i, d in enumerate(order) if d == "gossip") > last_move


async def test_run_command_takes_the_preset(
    store: Any, mongo_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", store.db_name)
    args = [
        "reputation",
        "run",
        "--preset",
        "repunet",
        "--game",
        "pd",
        "--steps",
        "1",
        "--mix",
        "reputation_following=2,always_defect=2",
        "-o",
        str(tmp_path / "out"),
    ]
    assert await asyncio.to_thread(main, args) == 0
    convs = [c for c in await store.conversations.list() if c.kind.value == "reputation"]
    exp = await store.experiments.get(convs[-1].experiment_id)
    assert exp.game["preset"] == "repunet" and exp.game["temperature"] == 0.0
    assert exp.game["personas"] == "repunet" and exp.game["history_window"] == 5
