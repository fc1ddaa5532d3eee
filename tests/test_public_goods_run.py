"""The public-goods game stored on the engine: what a run stores, resume without repeated calls,
the command line, a batch varying punishment with its estimate and its tables, and the TUI (the
Game tab's form and the monitor's chart) built from the kind's declarations alone."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Select, Static

from simulator.analysis.game_tables import load_game_table
from simulator.analysis.loading import load_all
from simulator.cli import main
from simulator.db.store import ConversationFilter
from simulator.domain import (
    BatchSpec,
    Decision,
    Message,
    MessageKind,
    ModelSet,
    Status,
    StudyFactor,
)
from simulator.domain.errors import LLMError
from simulator.engine.batch import BatchRunner
from simulator.engine.conversation import prepare_conversation, run_conversation
from simulator.engine.events import MessageStored
from simulator.scenarios.public_goods.metrics import latest_state, round_rows
from simulator.scenarios.public_goods.params import PublicGoodsParams
from simulator.scenarios.public_goods.runner import (
    scripted_members,
    scripted_model,
    scripted_run,
    simulate,
)
from simulator.scenarios.public_goods.scripted import POLICIES
from simulator.scenarios.registry import KINDS
from simulator.tui.editor.game import check_game, field_specs, fields_of, params_model
from simulator.tui.widgets.game_chart import GameChart, point_from_event, points_from_states
from tests.plugins.commons import message_shape

CLASSIC = {"conditional_cooperator": 2, "free_rider": 1, "punisher": 1}


async def stored_run(store: Any, params: PublicGoodsParams, seed: int = 5) -> Any:
    exp, cell = scripted_run(params, CLASSIC, seed=seed)
    await store.experiments.create(exp)
    return await prepare_conversation(store, exp, cell)


async def test_a_stored_run_is_the_in_process_game_with_every_answer_kept(
    store: Any, backends: Any
) -> None:
    params = PublicGoodsParams(rounds=3, punishment=True, communication=True)
    conv = await stored_run(store, params)
    done = await run_conversation(store, backends, conv.id)
    assert done.status is Status.done, done.error
    state = latest_state(await store.states.list(conv.id))
    assert state is not None and state.round == 3 and state.finished
    alone = await simulate(params, scripted_members(CLASSIC), seed=5)
    assert [r.contributions for r in state.rounds] == [r.contributions for r in alone.rounds]
    assert [r.payoffs for r in state.rounds] == [r.payoffs for r in alone.rounds]
    assert [s for s, _ in await store.states.list(conv.id)] == [0, 1, 2, 3]

    messages = await store.messages.list(conv.id)
    actions = [m for m in messages if m.kind is MessageKind.action]
    assert len(actions) == 3 * 4 * 3  # message, contribution, points per member and round
    posts = [m for m in actions if "message" in (m.data or {})]
    assert posts and all(m.recipients is None for m in posts)  # messages are to the group
    private = [m for m in actions if "message" not in (m.data or {})]
    assert all(m.recipients == [] for m in private)  # contributions and points: to the game
    assert all(m.decision is Decision.answer for m in actions)
    system = [m for m in messages if m.kind is MessageKind.system]
    events = [(m.data or {}).get("event") for m in system]
    assert events.count("round_end") == 3 and events.count("contributions") == 3
    told = [m for m in system if (m.data or {}).get("event") == "deductions"]
    assert len(told) == 12 and all(len(m.recipients or []) == 1 for m in told)
    assert all(m.day == m.data["round"] for m in system if m.data.get("event") == "round_end")


async def test_a_failed_run_resumes_without_asking_a_stored_answer_again(
    store: Any, backends: Any, recording_policy: Any
) -> None:
    punisher = POLICIES["public_goods.punisher"]
    fail_at = {"n": 4}  # its 4th answer: the points of round 2

    def flaky(request: Any) -> Any:
        fail_at["n"] -= 1
        if fail_at["n"] == 0:
            raise LLMError("the server went away", retryable=False)
        return json.dumps(punisher(request))

    policy = recording_policy(flaky)
    params = PublicGoodsParams(rounds=3, punishment=True)
    exp, cell = scripted_run(params, CLASSIC, seed=2)
    models = cell.models.model_copy(
        update={"per_role": {**cell.models.per_role, "Punisher": policy.model}}
    )
    cell = cell.model_copy(update={"models": models})
    await store.experiments.create(exp)
    conv = await prepare_conversation(store, exp, cell)
    failed = await run_conversation(store, backends, conv.id)
    assert failed.status is Status.failed and "went away" in (failed.error or "")
    stored = await store.messages.list(conv.id)
    latest = await store.states.latest(conv.id)
    assert latest is not None and 0 < latest[0] < 3 and latest[1]["seq"] < len(stored)
    before = len(policy.requests)
    assert (await run_conversation(store, backends, conv.id)).status is Status.done
    resumed = await store.messages.list(conv.id)
    asked_again = len(policy.requests) - before

    ref = await prepare_conversation(store, exp, cell)
    assert (await run_conversation(store, backends, ref.id)).status is Status.done
    reference = await store.messages.list(ref.id)
    assert message_shape(resumed) == message_shape(reference)
    punisher_answers = [
        m for m in stored if m.kind is MessageKind.action and m.speaker == "Punisher 1"
    ]
    total = [m for m in reference if m.kind is MessageKind.action and m.speaker == "Punisher 1"]
    assert asked_again == len(total) - len(punisher_answers)


def test_the_command_line_runs_reports_and_refuses(
    store: Any,
    mongo_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", store.db_name)
    out = tmp_path / "run"
    code = main(
        [
            "public-goods",
            "run",
            "--rounds",
            "4",
            "--punishment",
            "on",
            "--seed",
            "1",
            "-o",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "mean contribution per round: 7.5 7.8 7.8 8.0" in printed
    rows = list(csv.DictReader((out / "rounds.csv").open()))
    assert [r["round"] for r in rows] == ["1", "2", "3", "4"] and rows[0]["punishers"] == "1"
    summary = json.loads((out / "summary.json").read_text())
    cid = summary["conversation_id"]
    assert f"conversation {cid}: done" in printed and summary["punishment"] is True
    assert main(["public_goods", "report", cid[:8], "-o", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "rounds.csv").read_text() == (out / "rounds.csv").read_text()
    capsys.readouterr()
    fast = tmp_path / "fast"
    assert main(["public-goods", "run", "--fast", "--rounds", "10", "-o", str(fast)]) == 0
    assert "mean contribution per round: 7.5 5.2 3.8" in capsys.readouterr().out
    assert main(["public-goods", "run", "--mix", "saint=4"]) == 2
    assert "'saint' is not a scripted kind" in capsys.readouterr().err
    stored = len(asyncio.run(_experiments(mongo_uri, store.db_name)))
    assert main(["public-goods", "run", "--multiplier", "5"]) == 2  # m >= n: no dilemma
    assert "multiplier: 5 must be below the number of members (4)" in capsys.readouterr().err
    assert len(asyncio.run(_experiments(mongo_uri, store.db_name))) == stored  # nothing stored
    assert main(["commons", "report", cid]) == 2  # a public-goods run, read by its own kind
    assert "'simulator public-goods ...' reads it" in capsys.readouterr().err


async def _experiments(uri: str, db: str) -> list[Any]:
    from simulator.db.mongo import connect_store

    other = await connect_store(uri, db)
    try:
        return list(await other.experiments.list())
    finally:
        await other.close()


async def test_a_batch_varies_punishment_with_an_honest_estimate_and_pooled_tables(
    store: Any, backends: Any
) -> None:
    params = PublicGoodsParams(rounds=3)
    exp, cell = scripted_run(params, CLASSIC)
    exp = exp.model_copy(update={"factors": [StudyFactor(name="punishment", levels=["off", "on"])]})
    await store.experiments.create(exp)
    spec = BatchSpec(
        experiment_id=exp.id,
        max_agents=dict(cell.counts),
        every_combination=False,
        rounds=3,
        repeats=2,
        model_sets=[cell.models],
    )
    runner = BatchRunner(store, backends)
    batch = await runner.start(exp, spec)
    batch = await runner.run(batch.id)
    assert batch.status is Status.done
    convs = await store.conversations.list(ConversationFilter(batch_id=batch.id))
    actions = 0
    for conv in convs:
        messages = await store.messages.list(conv.id)
        actions += sum(m.kind is MessageKind.action for m in messages)
    assert batch.estimate is not None and batch.estimate.llm_calls == actions == 2 * (12 + 24)
    flt = ConversationFilter(batch_id=batch.id)
    rounds = await load_game_table(store, "rounds", flt, kinds=KINDS)
    assert len(rounds) == 4 * 3 and set(rounds["factor_punishment"]) == {"off", "on"}
    last = rounds[rounds["round"] == 3].groupby("factor_punishment")["mean_contribution"].mean()
    assert last["on"] > last["off"]
    members = await load_game_table(store, "members", flt, kinds=KINDS)
    assert len(members) == 4 * 3 * 4 and set(members["contribution_decision"]) == {"answer"}
    # the message tables name a round a round (the kind's clock), not a day
    _, frame = await load_all(store, ConversationFilter(batch_id=batch.id))
    assert len(frame) > 0 and frame["day"].isna().all() and frame["round"].notna().all()


# --------------------------------------------------------------------------- the TUI


def test_the_game_tab_form_and_the_chart_come_from_the_kinds_declarations() -> None:
    fields = {s.name: s for s in fields_of(field_specs(params_model("public_goods")))}
    assert fields["punishment"].kind == "choice" and fields["multiplier"].default == 1.6
    assert fields["endowment"].kind == "int" and "tokens" in fields["endowment"].description
    assert check_game("public_goods", {"punishment": True, "rounds": 5}) == {
        "punishment": True,
        "rounds": 5,
    }
    with pytest.raises(Exception, match="multiplier"):
        check_game("public_goods", {"multiplier": 0.5})
    state = asyncio.run(
        simulate(PublicGoodsParams(rounds=2, punishment=True), scripted_members(CLASSIC))
    )
    points = points_from_states("public_goods", [(2, state.to_snapshot())])
    rows = round_rows(state)
    assert [p.values["contribution"] for p in points] == [r["mean_contribution"] for r in rows]
    assert [p.values["punishment"] for p in points] == [4.0, 0.0] and points[0].total == 2
    end = {"event": "round_end", "round": 2, "rounds": 5, "mean_contribution": 6.0}
    message = Message(
        conversation_id="c", seq=3, speaker="game", role="game", kind="system", data=end
    )
    event = MessageStored("c", "b", message)
    point = point_from_event(event, "public_goods")
    assert point is not None and point.x == 2 and point.values["contribution"] == 6.0
    chart = GameChart("public_goods")
    chart.add(points)
    assert chart.caption().startswith("Round 2/2 · contribution 7.8\nearnings ")


async def test_the_editor_offers_the_kind_and_saves_its_parameters(
    store: Any, tui_settings: Any
) -> None:
    from simulator.tui.app import SimulatorApp
    from tests.plugins.tui import wait_until
    from tests.test_tui_game import choose_kind, open_new_editor, type_into, widget_id

    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = await open_new_editor(pilot)
        editor.query_one("#exp-name", Input).value = "Public goods"
        pane = await choose_kind(pilot, editor, "public_goods")  # offered by the registry
        intro = str(pane.query_one("#game-intro", Static).render())
        assert "Fehr and Gächter" in intro
        pane.query_one(f"#{widget_id('punishment')}", Select).value = "on"
        await type_into(pilot, pane, "rounds", "6")
        await pilot.pause()
        assert pane.problems == {}
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: editor.saved_id is not None, what="saved")
    stored = await store.experiments.get(editor.saved_id)
    assert stored is not None and stored.kind == "public_goods"
    assert stored.game == {"punishment": True, "rounds": 6}


async def test_the_monitor_charts_a_public_goods_run(store: Any, runs_app: Any) -> None:
    from simulator.tui.runs import runs_of
    from simulator.tui.screens.monitor import RunMonitorScreen
    from tests.plugins.tui import wait_library, wait_until
    from tests.plugins.tui_runs import wait_batch

    member = scripted_model("conditional_cooperator", latency_ms=10)
    exp, _ = scripted_run(
        PublicGoodsParams(rounds=3, punishment=True), {"conditional_cooperator": 3}
    )
    await store.experiments.create(exp)
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        registry = runs_of(app)
        spec = BatchSpec(
            experiment_id=exp.id,
            max_agents={"Conditional cooperator": 3},
            every_combination=False,
            rounds=3,
            model_sets=[ModelSet(default=member)],
        )
        batch = await registry.create(exp, spec)
        registry.run(batch.id)
        await app.push_screen(RunMonitorScreen(batch.id))
        monitor = app.screen
        await wait_until(pilot, lambda: monitor.loads >= 1, what="monitor")
        chart = monitor.query_one(GameChart)
        await wait_until(pilot, lambda: chart.display and chart.kind == "public_goods")
        await wait_until(pilot, lambda: len(chart.points) == 3, within=30, what="3 rounds")
        await wait_batch(pilot, batch.id)
        await wait_until(pilot, lambda: "Round 3/3" in chart.caption(), what="caption")
        assert [chart.points[r].values["contribution"] for r in (1, 2, 3)] == [10.0] * 3


async def test_a_member_is_interviewed_in_the_context_it_decided_in(
    store: Any, backends: Any
) -> None:
    """No interview code of its own: the run is replayed read-only through the kind's runner
    and the member's last decision request is its context."""
    from simulator.annotations.interview import interview_context

    conv = await stored_run(store, PublicGoodsParams(rounds=2, punishment=True))
    conv = await run_conversation(store, backends, conv.id)
    messages = await store.messages.list(conv.id)
    agent = next(a for a in conv.agents if a.name == "Free rider 1")
    context = await interview_context(store, conv, agent, messages, day=1)
    assert context.day == 1 and context.messages[0].role == "system"
    asked = context.messages[-2].content
    assert '"decision": "punish"' in asked and "Round 1: you contributed 0" in asked
    assert context.messages[-1].role == "assistant" and '"points"' in context.messages[-1].content
