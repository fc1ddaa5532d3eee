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

from typing import Any

import pytest

from simulator.domain.errors import SpecError
from simulator.domain.models import ExperimentKind, Message
from simulator.engine.events import ConversationStarted, MessageStored
from simulator.scenarios.reputation.runner import StepEnded
from simulator.tui.editor.game import (
    FieldSpec,
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
from simulator.tui.widgets.game_chart import (
    GamePoint,
    commons_point,
    point_from_event,
    points_from_states,
)

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
        "params": {"rounds": 5},
        "rounds": [
            {"round": 1, "resource_after_growth": 41.5, "credits_end": {"Member 1": 4.6}},
            {"round": 2, "resource_after_growth": 40.0, "credits_end": {"Member 1": 5.1}},
        ],
    }
    points = points_from_states("commons", [(0, {"rounds": []}), (2, snapshot)])
    assert [(p.x, p.values["resource"], p.credits, p.total) for p in points] == [
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
    assert point_from_event(stored(round_end)) == GamePoint(
        3, {"resource": 38.0}, {"Member 2": 3.5}
    )
    point = point_from_event(StepEnded("c", "b", 4, 10, metrics))
    assert point is not None and point.values["ties"] == 80.0 and point.total == 10
    assert point_from_event(stored({"event": "growth"})) is None
    assert point_from_event(ConversationStarted("c", "b")) is None
    assert commons_point({"event": "growth"}) is None
