"""A scripted reputation run killed with SIGKILL in the middle of a step, then resumed, equals the
uninterrupted run with the same seed (messages, snapshots, metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.domain import Status
from simulator.scenarios.reputation import create_conversation, play
from tests.plugins.reputation import reputation_setup
from tests.workers.harness import worker


def shape(messages: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (m.seq, m.day, m.turn, m.speaker, m.kind, m.content, m.raw, m.data, m.flags, m.recipients)
        for m in messages
    ]


async def test_sigkill_mid_step_then_resume_equals_the_uninterrupted_run(
    store: Any, backends: Any, mongo_uri: str, tmp_path: Path
) -> None:
    def setup(**options: float) -> Any:
        return reputation_setup(
            "pd",
            {"reputation_following": 3, "always_defect": 1, "tit_for_tat": 2},
            steps=3,
            seed=23,
            initial_connection_probability=0.6,
            model_options=options,
        )

    # the reference runs without the artificial latency (it changes no answer)
    ref_experiment, ref_cell = setup()
    await store.experiments.create(ref_experiment)
    reference = await create_conversation(store, ref_experiment, ref_cell)
    assert (await play(store, backends, reference.id)).status is Status.done
    ref_states = dict(await store.states.list(reference.id))
    seq1, seq2 = ref_states[1]["seq"], ref_states[2]["seq"]
    target = (seq1 + seq2) // 2  # kill inside step 2

    experiment, cell = setup(latency_ms=15)
    await store.experiments.create(experiment)
    conv = await create_conversation(store, experiment, cell)
    where = {"uri": mongo_uri, "db": store.db_name, "target": conv.id}
    where |= {"data_dir": tmp_path / "data"}
    # killed after message `target`, and holding before step 2 ends: the kill lands in step 2
    async with worker("reputation", hold_at=min(target + 3, seq2 - 1), **where) as w:
        await w.kill_after(target)

    stored = await store.messages.list(conv.id)
    latest = await store.states.latest(conv.id)
    assert latest is not None and latest[0] == 1, "killed outside step 2"
    assert seq1 < len(stored) < seq2, (seq1, len(stored), seq2)
    print(f"killed after {len(stored)} messages (step 2 spans {seq1}..{seq2})")

    resumed = await play(store, backends, conv.id)
    assert resumed.status is Status.done, resumed.error
    assert shape(await store.messages.list(conv.id)) == shape(
        await store.messages.list(reference.id)
    )
    states = dict(await store.states.list(conv.id))
    assert sorted(states) == sorted(ref_states) == [0, 1, 2, 3]
    for step in states:
        assert states[step] == ref_states[step], f"snapshot {step} differs"
    final = await store.conversations.get(conv.id)
    ref_final = await store.conversations.get(reference.id)
    assert final.messages_done == ref_final.messages_done and final.fallbacks == ref_final.fallbacks
