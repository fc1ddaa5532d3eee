"""The editor's Game tab and the run monitor's game chart.

- the form is generated from the kinds' parameter models (groups, fixed-key mappings, YAML for
  richer values), values go in and out of ``Experiment.game`` with defaults left unstored, and
  each validation problem lands under the field it belongs to;
- through the real app: a commons experiment's parameters set in the editor (an invalid value
  shown in place, then fixed) and saved as set; a reputation experiment (pd, gossip off); a
  dialogue experiment has no Game tab;
- a commons dryrun batch in the run monitor: the chart receives its rounds as they end.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from textual.widgets import Input, Select, Static, TabbedContent, TextArea

from simulator.db.mongo import connect_store
from simulator.db.store import ConversationFilter
from simulator.domain import BatchSpec, ModelSet
from simulator.domain.errors import SpecError
from simulator.domain.models import ExperimentKind, Message
from simulator.engine.events import ConversationStarted, MessageStored
from simulator.llm.dryrun import policy_for, register_policy, unregister_policy
from simulator.scenarios.commons.chart import round_end_point
from simulator.scenarios.commons.params import CommonsParams, Policy
from simulator.scenarios.commons.setup import commons_experiment, scripted_model
from simulator.scenarios.registry import KINDS
from simulator.scenarios.reputation.runner import StepEnded
from simulator.settings import Settings
from simulator.tui.app import SimulatorApp
from simulator.tui.editor.game import (
    FieldSpec,
    GamePane,
    Heading,
    check_game,
    field_specs,
    fields_of,
    format_value,
    get_path,
    params_model,
    parse_value,
    set_value,
    unset_value,
    validate_game,
)
from simulator.tui.runs import runs_of
from simulator.tui.screens.dialogs import MessageDialog
from simulator.tui.screens.editor import EditorScreen
from simulator.tui.screens.monitor import RunMonitorScreen
from simulator.tui.widgets.game_chart import (
    GameChart,
    GamePoint,
    point_from_event,
    points_from_states,
)
from simulator.tui.widgets.transcript import TranscriptView
from tests.plugins.tui import (
    FIXED_TIME,
    app_on_fresh_database,
    sample_experiment,
    settle,
    wait_library,
    wait_until,
)
from tests.plugins.tui_runs import wait_batch
from tests.plugins.waiting import DEADLINE_S

COMMONS, REPUTATION = ExperimentKind.commons, ExperimentKind.reputation


def specs(kind: ExperimentKind) -> dict[str, FieldSpec]:
    return {s.name: s for s in fields_of(field_specs(params_model(kind)))}


# --------------------------------------------------------------------------- the form, pure


def test_the_form_follows_the_parameter_models() -> None:
    commons = field_specs(params_model(COMMONS))
    headings = [i.name for i in commons if isinstance(i, Heading)]
    assert headings == ["policy", "monitors"]
    c = specs(COMMONS)
    assert c["rounds"].kind == "int" and c["rounds"].default == 15
    assert c["policy.quota"].kind == "float" and c["policy.quota"].default == 5.0
    assert c["estimate_noise_mode"].choices == (
        ("symmetric", "symmetric"),
        ("one_sided", "one_sided"),
    )
    assert c["saboteurs"].kind == "list"
    assert c["monitors.enabled"].choices == (("on", True), ("off", False))
    for name in ("bounds", "member_models", "monitors.model", "monitors.per_member"):
        assert c[name].kind == "yaml", name
    assert c["rounds"].description == "rounds to play (unless collapse)"

    r = specs(REPUTATION)
    assert r["game"].choices == (("investment", "investment"), ("pd", "pd"), ("signup", "signup"))
    assert r["public_observation"].choices[0] == ("auto", None)  # null: the reference's rule
    assert r["chat_pairs"].kind == "int" and r["chat_pairs"].default is None
    assert r["credibility_weights.neutral"].kind == "float"
    assert r["credibility_weights.neutral"].default == 0.5
    assert r["pd_payoffs.temptation"].default == 5.0
    assert r["personas"].kind == "yaml"


def test_values_in_and_out_of_the_game_dict() -> None:
    r = specs(REPUTATION)
    game: dict[str, Any] = {}
    # A key of a fixed-key mapping brings the other keys at their defaults (all are required).
    set_value(game, r["credibility_weights.neutral"], 0.6)
    assert game["credibility_weights"] == {
        "very_uncredible": 0.0,
        "uncredible": 0.25,
        "neutral": 0.6,
        "credible": 0.75,
        "very_credible": 1.0,
    }
    set_value(game, r["pd_payoffs.reward"], 4.0)
    assert get_path(game, ("pd_payoffs", "reward")) == 4.0
    unset_value(game, r["credibility_weights.neutral"])  # back to the default mapping: gone
    unset_value(game, r["pd_payoffs.reward"])  # an empty group goes too
    assert game == {}

    c = specs(COMMONS)
    assert parse_value(c["rounds"], " 12 ") == (True, 12)
    assert parse_value(c["rounds"], "") == (False, None)
    with pytest.raises(ValueError, match=r"'1\.5' is not a whole number"):
        parse_value(c["rounds"], "1.5")
    with pytest.raises(ValueError, match="'lots' is not a number"):
        parse_value(c["policy.quota"], "lots")
    with pytest.raises(ValueError, match="not a finite number"):
        parse_value(c["policy.quota"], "inf")
    assert parse_value(c["saboteurs"], "Member 1, Member 3,") == (True, ["Member 1", "Member 3"])
    # YAML fields show their default, and the default typed back is not stored.
    shown = format_value(c["bounds"], c["bounds"].default)
    assert shown.splitlines()[1] == "quota: {low: 0.0, high: 1000.0}"
    assert parse_value(c["bounds"], shown) == (False, None)
    with pytest.raises(ValueError, match=r"not valid YAML \(line 1, column 28: expected"):
        parse_value(c["member_models"], "Member 1: {provider: ollama")


def test_each_problem_is_shown_under_its_field() -> None:
    c = fields_of(field_specs(params_model(COMMONS)))
    fields, general = validate_game(
        COMMONS,
        {
            "rounds": 0,
            "policy": {"audit_probability": "x"},
            "bounds": {"quota": {"low": 3, "high": 1}},
            "member_models": {"Member 1": {"provider": "nope"}},
        },
        c,
    )
    assert general == []
    assert fields["rounds"] == "Input should be greater than or equal to 1"
    assert fields["policy.audit_probability"].startswith("Input should be a valid number")
    assert fields["bounds"] == "quota: bound low 3.0 is above high 1.0"
    assert fields["member_models"].startswith("Member 1.provider: Input should be")

    r = fields_of(field_specs(params_model(REPUTATION)))
    weights = {
        "very_uncredible": 0,
        "uncredible": 0.25,
        "neutral": 1.5,
        "credible": 0.75,
        "very_credible": 1,
    }
    # A whole-model check (no location) goes to the field its message names.
    fields, general = validate_game(REPUTATION, {"credibility_weights": weights}, r)
    assert fields == {
        "credibility_weights.neutral": "credibility weight of neutral must be within 0..1, got 1.5"
    }
    assert validate_game(REPUTATION, {"game": "pd", "rounds": 4}, r) == ({}, [])


def test_saving_checks_through_load_params_and_stores_what_was_set() -> None:
    assert check_game(COMMONS, {"policy": {"quota": 3}, "rounds": 5}) == {
        "rounds": 5,
        "policy": {"quota": 3.0},
    }
    assert check_game(REPUTATION, {"game": "pd", "gossip": False}) == {
        "game": "pd",
        "gossip": False,
    }
    with pytest.raises(SpecError, match=r"commons parameters: rounds: Input should be greater"):
        check_game(COMMONS, {"rounds": 0})
    with pytest.raises(SpecError, match=r"game\.population"):
        check_game(REPUTATION, {"population": 1})


# --------------------------------------------------------------------------- the chart, pure


def test_chart_points_from_snapshots_and_events() -> None:
    snapshot = {
        "params": {"rounds": 5, "start_credits": 4.0},
        "members": [{"name": "Member 1", "born_round": 0}, {"name": "Member 5", "born_round": 2}],
        "rounds": [
            {
                "round": 1,
                "resource_start": 40.0,
                "resource_after_growth": 41.5,
                "credits_end": {"Member 1": 4.6},
            },
            {"round": 2, "resource_after_growth": 40.0, "credits_end": {"Member 1": 5.1}},
        ],
    }
    points = points_from_states("commons", [(0, {"rounds": []}), (2, snapshot)])
    assert [(p.x, p.values["resource"], p.members, p.total) for p in points] == [
        (0, 40.0, {"Member 1": 4.0}, 5),  # the start: founding members only
        (1, 41.5, {"Member 1": 4.6}, 5),
        (2, 40.0, {"Member 1": 5.1}, 5),
    ]
    states = [
        (0, {"params": {"steps": 3}, "metrics": {"cooperation": None, "edges": 70}}),
        (1, {"params": {"steps": 3}, "metrics": {"cooperation": 0.5, "edges": 72}}),
    ]
    rep = points_from_states("reputation", states)
    assert [(p.x, p.values["cooperation"], p.values["ties"], p.total) for p in rep] == [
        (0, None, 70.0, 3),
        (1, 0.5, 72.0, 3),
    ]
    assert points_from_states("dialogue", states) == []

    def stored(data: dict[str, Any]) -> MessageStored:
        message = Message(
            conversation_id="c", seq=9, speaker="system", role="system", kind="system", data=data
        )
        return MessageStored("c", "b", message)

    round_end = {"event": "round_end", "round": 3, "resource": 38.0, "credits": {"Member 2": 3.5}}
    metrics = {"cooperation": 0.75, "edges": 80, "density": 0.21}
    assert point_from_event(stored(round_end), "commons") == GamePoint(
        3, {"resource": 38.0}, {"Member 2": 3.5}
    )
    point = point_from_event(StepEnded("c", "b", 4, 10, metrics), "reputation")
    assert point is not None and point.values["ties"] == 80.0 and point.total == 10
    assert point_from_event(stored({"event": "growth"}), "commons") is None
    assert point_from_event(ConversationStarted("c", "b"), "reputation") is None
    assert point_from_event(stored(round_end), "dialogue") is None  # no chart
    assert round_end_point({"event": "growth"}) is None


# --------------------------------------------------------------------------- the editor's Game tab


async def open_new_editor(pilot: Any) -> EditorScreen:
    app = pilot.app
    await wait_library(pilot)
    await pilot.press("n")
    await wait_until(pilot, lambda: isinstance(app.screen, EditorScreen), what="editor")
    await settle(pilot)
    return app.screen  # type: ignore[no-any-return]


async def choose_kind(pilot: Any, editor: EditorScreen, kind: str) -> GamePane:
    editor.query_one("#exp-kind", Select).value = kind
    await wait_until(pilot, lambda: editor.draft.kind.value == kind, what=f"kind {kind}")
    await wait_until(pilot, lambda: game_tab(editor).display, what="the Game tab shown")
    await pilot.press("f7")
    pane = editor.query_one(GamePane)
    await wait_until(
        pilot,
        lambda: (
            editor.query_one(TabbedContent).active == "tab-game"
            and pane.shown is not None
            and pane.shown.value == kind
        ),
        what="the Game tab's form",
    )
    await settle(pilot)
    return pane


def game_tab(editor: EditorScreen) -> Any:
    return editor.query_one(TabbedContent).get_tab("tab-game")


async def type_into(pilot: Any, pane: GamePane, name: str, text: str) -> None:
    """Type ``text`` into the field of parameter ``name`` (replacing its value)."""
    field = pane.query_one(f"#{widget_id(name)}", Input)
    field.focus()
    field.value = text
    await settle(pilot)


def widget_id(name: str) -> str:
    return "game-" + name.replace(".", "-")


def error_under(pane: GamePane, name: str) -> str:
    widget = pane.query_one(f"#{widget_id(name)}-error", Static)
    return str(widget.render()) if widget.display else ""


async def test_commons_parameters_set_in_the_editor_shown_in_place_and_saved(
    store: Any, tui_settings: Settings
) -> None:
    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = await open_new_editor(pilot)
        assert not game_tab(editor).display  # a dialogue experiment: no Game tab
        editor.query_one("#exp-name", Input).value = "Fishery"
        pane = await choose_kind(pilot, editor, "commons")
        intro = str(pane.query_one("#game-intro", Static).render())
        assert "Models tab (F5)" in intro and "Role A 1" in intro

        # A bad value is explained under its field at once, and saving is refused, naming it.
        await type_into(pilot, pane, "rounds", "0")
        assert error_under(pane, "rounds") == "Input should be greater than or equal to 1"
        await type_into(pilot, pane, "policy.quota", "lots")
        assert error_under(pane, "policy.quota") == "'lots' is not a number"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, MessageDialog), what="refusal")
        message = app.screen.message
        assert "Game tab (F7)" in message and "policy.quota" in message
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is editor)

        # Fixed, and the rest set: quota, a saboteur, monitors with their model.
        await type_into(pilot, pane, "policy.quota", "3.5")
        assert error_under(pane, "policy.quota") == ""
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, MessageDialog), what="refusal")
        assert "rounds: Input should be greater than or equal to 1" in app.screen.message
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is editor)
        await type_into(pilot, pane, "rounds", "6")
        assert error_under(pane, "rounds") == ""
        await type_into(pilot, pane, "saboteurs", "Member 1")
        pane.query_one(f"#{widget_id('monitors.enabled')}", Select).value = "on"
        pane.query_one(f"#{widget_id('monitors.context')}", Select).value = "full"
        monitor_model = pane.query_one(f"#{widget_id('monitors.model')}", TextArea)
        monitor_model.focus()
        monitor_model.insert("{provider: dryrun, model: dryrun, options: {policy: commons.monitor")
        await settle(pilot)
        assert error_under(pane, "monitors.model").startswith("not valid YAML (line 1")
        monitor_model.insert("}}")
        await settle(pilot)
        assert error_under(pane, "monitors.model") == ""
        help_text = str(pane.query_one("#game-help", Static).render())
        assert help_text.startswith("monitors.model: monitor model for every member")
        assert pane.problems == {} and pane.general == []

        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: editor.saved_id is not None, what="saved")
        assert not editor.dirty

    stored = await store.experiments.get(editor.saved_id)
    assert stored is not None and stored.kind is ExperimentKind.commons
    game = stored.game
    assert game["monitors"]["model"]["options"] == {"policy": "commons.monitor"}
    game["monitors"].pop("model")
    assert game == {
        "rounds": 6,
        "policy": {"quota": 3.5},
        "saboteurs": ["Member 1"],
        "monitors": {"enabled": True, "context": "full"},
    }


async def test_reputation_parameters_pd_without_gossip(store: Any, tui_settings: Settings) -> None:
    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = await open_new_editor(pilot)
        editor.query_one("#exp-name", Input).value = "Trust"
        pane = await choose_kind(pilot, editor, "reputation")
        pane.query_one(f"#{widget_id('game')}", Select).value = "pd"
        pane.query_one(f"#{widget_id('gossip')}", Select).value = "off"
        await settle(pilot)
        await type_into(pilot, pane, "credibility_weights.neutral", "1.5")
        assert error_under(pane, "credibility_weights.neutral") == (
            "credibility weight of neutral must be within 0..1, got 1.5"
        )
        await type_into(pilot, pane, "credibility_weights.neutral", "")
        assert error_under(pane, "credibility_weights.neutral") == ""
        assert editor.draft.game == {"game": "pd", "gossip": False}

        # Another kind and back: each kind keeps its own parameters.
        editor.query_one("#exp-kind", Select).value = "commons"
        await wait_until(pilot, lambda: editor.draft.kind is ExperimentKind.commons)
        assert editor.draft.game == {}
        editor.query_one("#exp-kind", Select).value = "reputation"
        await wait_until(pilot, lambda: editor.draft.kind is ExperimentKind.reputation)
        assert editor.draft.game == {"game": "pd", "gossip": False}
        await wait_until(pilot, lambda: pane.shown is ExperimentKind.reputation, what="form")
        assert pane.query_one(f"#{widget_id('gossip')}", Select).value == "off"

        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: editor.saved_id is not None, what="saved")

    stored = await store.experiments.get(editor.saved_id)
    assert stored is not None and stored.kind is ExperimentKind.reputation
    assert stored.game == {"game": "pd", "gossip": False}


async def test_a_dialogue_experiment_has_no_game_tab(store: Any, tui_settings: Settings) -> None:
    await store.experiments.create(sample_experiment())
    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, EditorScreen), what="editor")
        editor: EditorScreen = app.screen  # type: ignore[assignment]
        await settle(pilot)
        assert not game_tab(editor).display
        await pilot.press("f7")
        await settle(pilot)
        assert editor.query_one(TabbedContent).active == "tab-experiment"
        assert not editor.dirty


# --------------------------------------------------------------------------- the monitor's chart


@pytest.fixture
def held_from_round_3() -> Iterator[threading.Event]:
    """A commons member policy (``commons.held``) that answers like ``commons.honest`` but holds
    every call from round 3 on until the returned event is set (the run's own thread waits)."""
    gate = threading.Event()
    KINDS.prepare("commons")  # its scripted policies plugged in (this test may run alone)
    honest = policy_for(scripted_model())
    assert honest is not None

    async def held(request: Any) -> Any:
        if request.meta.day >= 3:
            await asyncio.to_thread(gate.wait, DEADLINE_S)  # bounded: never a stuck thread
        answer = honest(request)
        return await answer if inspect.isawaitable(answer) else answer

    register_policy("commons.held", held)
    try:
        yield gate
    finally:
        gate.set()
        unregister_policy("commons.held")


async def test_the_monitor_charts_a_commons_run_round_by_round(
    store: Any, runs_app: Any, held_from_round_3: threading.Event
) -> None:
    member = scripted_model("commons.held", chat="public", latency_ms=15)
    exp = commons_experiment(CommonsParams(rounds=4), name="Lake", owner="alice")
    exp = exp.model_copy(update={"models": [member]})
    await store.experiments.create(exp)
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        registry = runs_of(app)
        spec = BatchSpec(
            experiment_id=exp.id,
            max_agents={"Member": 3},
            every_combination=False,
            rounds=4,
            model_sets=[ModelSet(default=member)],
        )
        batch = await registry.create(exp, spec)
        registry.run(batch.id)
        await app.push_screen(RunMonitorScreen(batch.id))
        monitor = app.screen
        await wait_until(pilot, lambda: monitor.loads >= 1, what="monitor")
        chart = monitor.query_one(GameChart)
        await wait_until(pilot, lambda: chart.display and chart.kind == "commons", what="chart")
        # Round 3 is held: the chart shows the two rounds played while the run goes on.
        await wait_until(
            pilot,
            lambda: sorted(chart.points) == [0, 1, 2] and "Round 2/4" in chart.caption(),
            what="the start and rounds 1-2 charted",
        )
        drawn = chart.draws
        assert registry.is_running(batch.id)
        held_from_round_3.set()
        await wait_batch(pilot, batch.id)
        await wait_until(
            pilot,
            lambda: sorted(chart.points) == [0, 1, 2, 3, 4] and "Round 4/4" in chart.caption(),
            what="all 4 rounds charted",
        )
        assert chart.draws > drawn
        # The transcript's separators name the kind's clock: rounds, never days.
        view = monitor.query_one("#monitor-transcript", TranscriptView)
        await wait_until(
            pilot,
            lambda: any("Round 4" in line for line in view.plain_lines()),
            what="the transcript's round 4",
        )
        separators = [line.strip("─ ") for line in view.plain_lines() if "───" in line]
        assert separators == ["Before round 1", "Round 1", "Round 2", "Round 3", "Round 4"]
        assert view.clock == "round"

        conv = (await store.conversations.list(ConversationFilter(batch_id=batch.id)))[0]
        latest = await store.states.latest(conv.id)
        assert latest is not None
        records = latest[1]["rounds"]
        assert chart.xs[-4:] == [1, 2, 3, 4] and set(chart.xs) <= {0, 1, 2, 3, 4}
        assert "Round 4/4" in chart.caption()
        assert [chart.points[r["round"]].values["resource"] for r in records] == [
            r["resource_after_growth"] for r in records
        ]
        assert chart.points[4].members == records[-1]["credits_end"]
        assert set(chart.points[4].members) == {"Member 1", "Member 2", "Member 3"}
        # A game has no agent-message budget: rows and totals show counts, not "n/20".
        run = registry.runs.get(batch.id)
        assert run is not None and run.messages_budget == 0
        assert all(row.budget == 0 for row in run.rows.values())


async def test_the_monitor_charts_cooperation_and_ties_of_a_reputation_run(
    store: Any, runs_app: Any
) -> None:
    from tests.plugins.reputation import reputation_setup

    mix = {"reputation_following": 3, "always_defect": 1}
    experiment, cell = reputation_setup("pd", mix, steps=3, model_options={"latency_ms": 5})
    experiment = experiment.model_copy(update={"owner": "alice"})
    await store.experiments.create(experiment)
    app = runs_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_library(pilot)
        registry = runs_of(app)
        spec = BatchSpec(
            experiment_id=experiment.id,
            model_sets=[cell.models],
            max_agents=mix,
            every_combination=False,
            rounds=3,
        )
        batch = await registry.create(experiment, spec)
        registry.run(batch.id)
        await app.push_screen(RunMonitorScreen(batch.id))
        monitor = app.screen
        await wait_until(pilot, lambda: monitor.loads >= 1, what="monitor")
        chart = monitor.query_one(GameChart)
        await wait_batch(pilot, batch.id)
        await wait_until(pilot, lambda: 3 in chart.points and "Step 3/3" in chart.caption())

        conv = (await store.conversations.list(ConversationFilter(batch_id=batch.id)))[0]
        stored = dict(await store.states.list(conv.id))
        for step in (1, 2, 3):
            metrics = stored[step]["metrics"]
            assert chart.points[step].values["cooperation"] == metrics["cooperation"]
            assert chart.points[step].values["ties"] == metrics["edges"]


# --------------------------------------------------------------------------- snapshot


@pytest.fixture
def game_snapshot_app(tui_settings: Settings, mongo_uri: str) -> Iterator[SimulatorApp]:
    """The app on a fresh database holding one commons experiment with fixed id and dates."""

    async def populate(uri: str, db: str) -> None:
        store = await connect_store(uri, db)
        try:
            params = CommonsParams(rounds=6, policy=Policy(quota=3.5), saboteurs=["Member 1"])
            exp = commons_experiment(params, name="Fishery", owner="alice")
            game = exp.game
            exp = exp.model_copy(
                update={
                    "id": "c" * 32,
                    "game": check_game(COMMONS, game),
                    "created_at": FIXED_TIME,
                    "updated_at": FIXED_TIME,
                }
            )
            await store.experiments.create(exp)
        finally:
            await store.close()

    yield from app_on_fresh_database(mongo_uri, populate)


def test_game_tab_snapshot(snap_compare: Any, game_snapshot_app: SimulatorApp) -> None:
    """The commons Game tab at 100x30: a stored value, the defaults, a problem under its field."""

    async def run_before(pilot: Any) -> None:
        app = pilot.app
        await wait_library(pilot)
        app.sub_title = "alice · MongoDB at test server"  # the port differs on every run
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, EditorScreen), what="editor")
        await pilot.press("f7")
        pane = app.screen.query_one(GamePane)
        await wait_until(pilot, lambda: pane.shown is COMMONS, what="the form")
        await type_into(pilot, pane, "start_resource", "-5")
        assert error_under(pane, "start_resource") == "Input should be greater than or equal to 0"
        app.screen.set_focus(None)  # no blinking cursor in the picture
        await settle(pilot)

    assert snap_compare(game_snapshot_app, terminal_size=(100, 30), run_before=run_before)
