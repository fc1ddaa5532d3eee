"""The commons game on the engine's Journal: determinism, SIGKILL resume, fork (acceptance 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.domain import MessageKind, Status
from simulator.engine.conversation import run_conversation
from simulator.scenarios.commons import fork_conversation
from simulator.scenarios.commons.params import CommonsParams, MonitorParams, Policy
from simulator.scenarios.commons.setup import (
    commons_cell,
    commons_experiment,
    load_state,
    scripted_model,
    start_run,
)
from tests.plugins.commons import message_shape, saboteur_params
from tests.workers.harness import worker


async def play(
    store: Any, backends: Any, params: CommonsParams, *, seed: int = 5, latency_ms: int = 0
) -> Any:
    exp = commons_experiment(params)
    model = scripted_model("commons.honest", chat="public+1", latency_ms=latency_ms)
    conv = await start_run(store, exp, commons_cell(4, model=model, seed=seed))
    return exp, conv


def strip_seq(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in snapshot.items() if k != "seq"}


async def test_same_seed_same_run(store: Any, backends: Any) -> None:
    params = saboteur_params(rounds=3)
    runs = []
    for _ in range(2):
        _, conv = await play(store, backends, params)
        done = await run_conversation(store, backends, conv.id)
        assert done.status is Status.done, done.error
        runs.append(conv.id)
    a, b = [await store.messages.list(c) for c in runs]
    assert message_shape(a) == message_shape(b)
    sa, sb = [await store.states.list(c) for c in runs]
    assert [s for s, _ in sa] == [0, 1, 2, 3]
    assert [strip_seq(x) for _, x in sa] == [strip_seq(x) for _, x in sb]
    state = await load_state(store, runs[0])
    assert state.world.round == 3 and state.world.finished
    # every answer is a stored structured action with its validated data
    actions = [m for m in a if m.kind is MessageKind.action]
    assert actions and all(m.data is not None for m in actions)
    # a different seed draws a different lake
    _, other = await play(store, backends, params, seed=6)
    await run_conversation(store, backends, other.id)
    s_other = await load_state(store, other.id)
    assert s_other.rounds[0].resource_after_growth != state.rounds[0].resource_after_growth


async def test_sigkill_mid_round_then_resume_equals_uninterrupted(
    store: Any, backends: Any, mongo_uri: str, tmp_path: Path
) -> None:
    params = saboteur_params(rounds=2)
    # the uninterrupted reference, in this process
    _, ref = await play(store, backends, params, latency_ms=5)
    assert (await run_conversation(store, backends, ref.id)).status is Status.done
    reference = await store.messages.list(ref.id)
    boundaries = {s: x["seq"] for s, x in await store.states.list(ref.id)}
    kill_at = boundaries[1] + 7  # inside round 2

    _, conv = await play(store, backends, params, latency_ms=5)
    where = {"uri": mongo_uri, "db": store.db_name, "target": conv.id}
    where |= {"data_dir": tmp_path / "data"}
    # killed after message kill_at, and holding before round 2 ends: the kill lands in round 2
    hold_at = min(kill_at + 3, boundaries[2] - 1)
    print(f"round 2 spans messages {boundaries[1]}..{boundaries[2]} of {len(reference)}")
    async with worker("commons", hold_at=hold_at, **where) as w:
        await w.kill_after(kill_at)
    stored = await store.messages.list(conv.id)
    latest = await store.states.latest(conv.id)
    assert latest is not None
    assert boundaries[1] <= latest[1]["seq"] < len(stored) < len(reference), (
        "the kill should land inside a round"
    )
    # resume in a fresh worker process
    async with worker("commons", **where) as w:
        assert await w.finish() == "done"
    resumed = await store.messages.list(conv.id)
    assert message_shape(resumed) == message_shape(reference)
    assert [s for s, _ in await store.states.list(conv.id)] == [0, 1, 2]
    assert strip_seq((await store.states.latest(conv.id))[1]) == strip_seq(
        (await store.states.latest(ref.id))[1]
    )


async def test_fork_at_round_3_shares_rounds_1_to_3(store: Any, backends: Any) -> None:
    params = CommonsParams(rounds=5, policy=Policy(quota=3.0))
    _, parent = await play(store, backends, params)
    assert (await run_conversation(store, backends, parent.id)).status is Status.done
    parent_msgs = await store.messages.list(parent.id)
    parent_snaps = dict(await store.states.list(parent.id))
    cut = parent_snaps[3]["seq"]

    # unchanged: the fork replays the parent's rounds 4-5 exactly
    same = await fork_conversation(store, parent.id, 3)
    assert (same.parent_id, same.forked_at) == (parent.id, 3)
    assert (await run_conversation(store, backends, same.id)).status is Status.done
    assert message_shape(await store.messages.list(same.id)) == message_shape(parent_msgs)

    # with changes: more rounds, monitors, another model for Member 2
    monitors = MonitorParams(enabled=True, model=scripted_model("commons.monitor"))
    cheater = scripted_model("commons.cheater", chat="public")
    fork = await fork_conversation(
        store, parent.id, 3, rounds=7, monitors=monitors, member_models={"Member 2": cheater}
    )
    assert fork.id != parent.id and fork.forked_at == 3 and fork.cell.rounds == 7
    assert next(a for a in fork.agents if a.name == "Member 2").model == cheater
    assert (await run_conversation(store, backends, fork.id)).status is Status.done
    fork_msgs = await store.messages.list(fork.id)
    assert message_shape(fork_msgs[:cut]) == message_shape(parent_msgs[:cut])
    assert message_shape(fork_msgs[cut:]) != message_shape(parent_msgs[cut:])
    assert {m.day for m in fork_msgs[cut:] if m.day} == {4, 5, 6, 7}
    monitor_days = {m.day for m in fork_msgs if m.role == "monitor"}
    assert monitor_days == {4, 5, 6, 7}  # monitors only from the fork point on
    fork_snaps = dict(await store.states.list(fork.id))
    assert sorted(fork_snaps) == list(range(8))
    for r in (1, 2, 3):
        assert fork_snaps[r]["rounds"] == parent_snaps[r]["rounds"]
        assert fork_snaps[r]["world"] == parent_snaps[r]["world"]
    final = await load_state(store, fork.id)
    assert final.params["rounds"] == 7 and final.params["monitors"]["enabled"]
    r5 = final.rounds[4].extractions["Member 2"]
    assert r5["true"] > r5["reported"]  # Member 2 now cheats
    # the parent is untouched
    assert len(await store.messages.list(parent.id)) == len(parent_msgs)


async def test_fork_rejects_a_round_not_played(store: Any, backends: Any) -> None:
    import pytest

    from simulator.domain.errors import ConfigurationError

    _, conv = await play(store, backends, CommonsParams(rounds=2))
    await run_conversation(store, backends, conv.id)
    with pytest.raises(ConfigurationError, match="completed 2 round"):
        await fork_conversation(store, conv.id, 3)


async def test_failed_mid_round_resumes_without_repeating_calls(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    from simulator.domain.errors import LLMError
    from simulator.scenarios.commons.scripted import POLICIES

    honest = POLICIES["commons.honest"]
    fail_at = {"n": 30}

    def flaky(request: Any) -> Any:
        fail_at["n"] -= 1
        if fail_at["n"] == 0:
            raise LLMError("the server went away", retryable=False)
        return honest(request)

    policy = recording_policy(flaky)
    params = CommonsParams(rounds=3, policy=Policy(quota=3.0))
    exp = commons_experiment(params)
    conv = await start_run(store, exp, commons_cell(3, model=policy.model, seed=8))
    failed = await run_conversation(store, backends, conv.id)
    assert failed.status is Status.failed and "went away" in (failed.error or "")
    stored = await store.messages.list(conv.id)
    latest = await store.states.latest(conv.id)
    assert latest is not None and latest[1]["seq"] < len(stored)  # inside a round
    calls_before = len(policy.requests)
    done = await run_conversation(store, backends, conv.id)
    assert done.status is Status.done, done.error
    resumed = await store.messages.list(conv.id)
    # the reference: the same run, uninterrupted
    ref = await start_run(store, exp, commons_cell(3, model=policy.model, seed=8))
    calls_resumed = len(policy.requests) - calls_before
    assert (await run_conversation(store, backends, ref.id)).status is Status.done
    reference = await store.messages.list(ref.id)
    assert message_shape(resumed) == message_shape(reference)
    # no stored answer was asked again: the resumed run made exactly the missing calls
    answered = sum(1 for m in stored if m.kind is MessageKind.action)
    total = sum(1 for m in reference if m.kind is MessageKind.action)
    assert calls_resumed == total - answered


async def test_run_parameters_override_the_experiments(store: Any, backends: Any) -> None:
    exp = commons_experiment(CommonsParams(rounds=5))
    own = CommonsParams(rounds=2, policy=Policy(quota=2.0), audit_public=True)
    conv = await start_run(store, exp, commons_cell(2, seed=1), params=own)
    assert conv.game == own.model_dump(mode="json")
    assert (await run_conversation(store, backends, conv.id)).status is Status.done
    state = await load_state(store, conv.id)
    assert state.world.round == 2 and state.rounds[0].policy_before.quota == 2.0
    assert CommonsParams.model_validate(state.params) == own
    stored = await store.experiments.get(exp.id)
    assert stored.game["rounds"] == 5  # the experiment is untouched
    fork = await fork_conversation(store, conv.id, 1, rounds=3)
    assert fork.game is not None and fork.game["rounds"] == 3 and fork.game["audit_public"]
