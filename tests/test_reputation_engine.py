"""Reputation conversations through the engine's journal on the embedded MongoDB."""

from __future__ import annotations

import itertools
from typing import Any

from simulator.domain import MessageKind, Status
from simulator.engine.journal import FALLBACK, REASKED
from simulator.llm.base import ChatRequest
from simulator.llm.dryrun import register_policy, unregister_policy
from simulator.scenarios.reputation import fork, play, snapshots
from simulator.scenarios.reputation.prompts import read_facts
from simulator.scenarios.reputation.scripted import POLICIES
from tests.plugins.reputation import scripted_ref, store_reputation

TREATMENTS = list(itertools.product([True, False], [True, False]))


async def test_every_game_and_treatment_stores_snapshots_and_metrics(
    store: Any, backends: Any
) -> None:
    mix = {"reputation_following": 2, "always_defect": 1, "tit_for_tat": 1}
    seen: dict[tuple[str, bool, bool], dict[str, Any]] = {}
    for game in ("investment", "pd", "signup"):
        for reputation, gossip in TREATMENTS:
            factors = {
                "reputation": "on" if reputation else "off",
                "gossip": "on" if gossip else "off",
            }
            _, conv = await store_reputation(
                store,
                game,
                mix,
                steps=3,
                factors=factors,
                signup_period=2,
                initial_connection_probability=0.6,
            )
            done = await play(store, backends, conv.id)
            assert done.status is Status.done, done.error
            stored = await snapshots(store, conv.id)
            assert [s.step for s, _ in stored] == [0, 1, 2, 3]
            last, metrics = stored[-1]
            assert last.finished and metrics["step"] == 3 and metrics["game"] == game
            assert metrics["fallbacks"] == 0
            for key in (
                "cooperation",
                "density",
                "mutual_ties",
                "clustering",
                "components",
                "gossip_count",
                "reputation_accuracy",
                "agents",
            ):
                assert key in metrics
            assert all(m["decisions"] > 0 for _, m in stored[1:])
            if not reputation:
                assert last.records == {}
            if not gossip:
                assert all(m["gossip_count"] == 0 for _, m in stored)
            messages = await store.messages.list(conv.id)
            assert [m.seq for m in messages] == list(range(len(messages)))
            assert sum(m.kind is MessageKind.action for m in messages) == sum(
                m["decisions"] for _, m in stored
            )
            seen[(game, reputation, gossip)] = metrics
    assert len(seen) == 12
    assert (
        seen[("pd", True, True)]["gossip_count"] + seen[("investment", True, True)]["gossip_count"]
        > 0
    )
    assert seen[("signup", True, True)]["signup_rate"] is not None  # step 3 is a sign-up round


def _bad_distribution(request: ChatRequest) -> dict[str, Any]:
    facts = read_facts(request.messages)
    if facts.get("decision") in ("self_update", "partner_update"):
        return {
            "text": "sloppy",
            "distribution": {
                "very_bad": 0.5,
                "bad": 0.5,
                "neutral": 0.5,
                "good": 0,
                "very_good": 0,
            },
        }
    return POLICIES["reputation.always_cooperate"](request)


async def test_a_distribution_not_summing_to_one_is_reasked_then_defaulted(
    store: Any, backends: Any
) -> None:
    register_policy("reputation.test_sloppy", _bad_distribution)
    try:
        _, conv = await store_reputation(
            store,
            "pd",
            {"sloppy": 2},
            steps=1,
            gossip=False,
            persona_rewrite=False,
            models={"sloppy": scripted_ref("test_sloppy")},
        )
        assert (await play(store, backends, conv.id)).status is Status.done
    finally:
        unregister_policy("reputation.test_sloppy")
    messages = await store.messages.list(conv.id)
    updates = [
        m for m in messages if m.kind is MessageKind.action and "distribution" in (m.data or {})
    ]
    assert len(updates) == 4  # self and partner, for both players
    for m in updates:
        assert REASKED in m.flags and FALLBACK in m.flags
        assert m.attempts == 3  # the first answer and two re-asks
        assert '"neutral": 0.5' in (m.raw or "")
        assert m.data["distribution"]["neutral"] == 0.2  # the default: no opinion
    ((state, metrics),) = (await snapshots(store, conv.id))[-1:]
    assert metrics["fallbacks"] == 4
    assert all(r.score == 0 for r in state.records.values())
    conv_after = await store.conversations.get(conv.id)
    assert conv_after.fallbacks == 4


async def test_fork_at_a_step_with_gossip_off(store: Any, backends: Any) -> None:
    _, conv = await store_reputation(
        store,
        "pd",
        {"reputation_following": 3, "always_defect": 1},
        steps=3,
        initial_connection_probability=0.8,
    )
    await play(store, backends, conv.id)
    original = await snapshots(store, conv.id)
    child = await fork(store, conv.id, 1, factors={"gossip": "off"})
    assert child.parent_id == conv.id and child.forked_at == 1
    done = await play(store, backends, child.id)
    assert done.status is Status.done, done.error
    forked = await snapshots(store, child.id)
    assert [s.step for s, _ in forked] == [0, 1, 2, 3]
    # identical up to the fork, then no gossip
    assert forked[1][0].model_dump() == original[1][0].model_dump()
    assert all(m["gossip_count"] == 0 for _, m in forked[2:])
    msgs = await store.messages.list(child.id)
    assert [m.seq for m in msgs] == list(range(len(msgs)))


async def test_a_batch_grids_over_games_and_treatments(store: Any, backends: Any) -> None:
    from simulator.db.store import ConversationFilter
    from simulator.domain import BatchSpec, StudyFactor
    from simulator.engine.batch import BatchRunner
    from tests.plugins.reputation import reputation_setup

    experiment, cell = reputation_setup("pd", {"reputation_following": 3, "always_defect": 1})
    experiment = experiment.model_copy(
        update={
            "factors": [
                StudyFactor(name="game", levels=["pd", "investment"]),
                StudyFactor(name="gossip", levels=["on", "off"]),
            ]
        }
    )
    await store.experiments.create(experiment)
    spec = BatchSpec(
        experiment_id=experiment.id,
        model_sets=[cell.models],
        max_agents={"reputation_following": 3, "always_defect": 1},
        every_combination=False,
        rounds=2,
        seed=3,
    )
    from simulator.engine.events import EventBus
    from simulator.scenarios.reputation import StepEnded

    bus = EventBus()
    steps: list[StepEnded] = []
    bus.subscribe(lambda e: steps.append(e) if isinstance(e, StepEnded) else None)
    runner = BatchRunner(store, backends, bus)
    batch = await runner.start(experiment, spec)
    ended = await runner.run(batch.id)
    assert ended.status is Status.done
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    assert len(convs) == 4
    assert sorted((e.conversation_id, e.step) for e in steps) == sorted(
        (c.id, n) for c in convs for n in (1, 2)
    )
    assert all(
        e.batch_id == batch.id and e.steps == 2 and "cooperation" in e.metrics for e in steps
    )
    for conv in convs:
        assert conv.status is Status.done, conv.error
        stored = await snapshots(store, conv.id)
        assert [s.step for s, _ in stored] == [0, 1, 2]
        last, _ = stored[-1]
        assert last.game == conv.cell.factors["game"] and len(last.agents) == 4
        assert [a.name for a in conv.agents] == last.names  # personas, not "always_defect 1"
        if conv.cell.factors["gossip"] == "off":
            assert all(m["gossip_count"] == 0 for _, m in stored)


async def test_the_conversations_own_game_parameters_win(store: Any, backends: Any) -> None:
    from simulator.scenarios.reputation import create_conversation
    from tests.plugins.reputation import reputation_setup

    experiment, cell = reputation_setup(
        "investment", {"reputation_following": 3, "always_defect": 1}, steps=2
    )
    await store.experiments.create(experiment)
    conv = await create_conversation(store, experiment, cell)
    own = {**experiment.game, "game": "pd", "gossip": False}
    await store.conversations.set_fields(conv.id, game=own)
    assert (await play(store, backends, conv.id)).status is Status.done
    stored = await snapshots(store, conv.id)
    assert {s.game for s, _ in stored} == {"pd"}
    assert all(m["gossip_count"] == 0 for _, m in stored)
