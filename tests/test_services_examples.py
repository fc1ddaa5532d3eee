"""The built-in prison-study example: loads, validates, and renders every factor level and count
combination; its factors drive section text."""

from __future__ import annotations

import itertools
import re

import pytest

from simulator.domain.errors import NotFoundError
from simulator.engine.spec import load_example
from simulator.examples import EXAMPLES, example_names
from simulator.roles import (
    agent_names,
    render_starting_message,
    render_summarizer_prompt,
    render_system_prompt,
    validate_experiment,
)

UNRESOLVED = re.compile(r"<[^<>\n]*>")


def test_every_example_loads_and_validates() -> None:
    assert example_names() == list(EXAMPLES) == ["prison_study"]
    for name in example_names():
        exp = load_example(name)
        assert validate_experiment(exp) == []
        assert exp.owner == "" and exp.version == 1
    assert load_example("prison_study").id != load_example("Prison-Study").id  # fresh each time


def test_unknown_example_is_not_found() -> None:
    with pytest.raises(NotFoundError, match="there are: prison_study"):
        load_example("commons")


def test_prison_study_shape() -> None:
    exp = load_example("prison_study")
    assert [r.name for r in exp.roles] == ["Guard", "Prisoner"]
    assert {f.name: f.levels for f in exp.factors} == {
        "goal": ["Escape", "Yard Time"],
        "persona": [
            "Respectful guard, peaceful prisoner",
            "Respectful guard, rebellious prisoner",
            "Abusive guard, peaceful prisoner",
            "Abusive guard, rebellious prisoner",
            "No persona",
        ],
    }
    for role in exp.roles:
        titles = [s.title for s in exp.sections_for(role.name)]
        assert titles[0] == "Starting prompt"
        assert {"Goal", "Personality", "Communication rules", "Environment"} <= set(titles)
        assert "Research oversight" in titles
    assert exp.summarizer_sections and exp.dialogue.first_role == "Guard"


@pytest.mark.parametrize(("guards", "prisoners"), [(1, 1), (1, 3), (2, 2), (3, 1)])
def test_prison_study_renders_for_every_factor_level(guards: int, prisoners: int) -> None:
    exp = load_example("prison_study")
    counts = {"Guard": guards, "Prisoner": prisoners}
    levels = [f.levels for f in exp.factors]
    for goal, persona in itertools.product(*levels):
        factors = {"goal": goal, "persona": persona}
        for name, role in agent_names(exp.roles, counts):
            prompt = render_system_prompt(exp, role, counts, name=name, factors=factors)
            assert not UNRESOLVED.search(prompt)
            assert prompt.startswith(f"You are {name}, a {role.lower()} in a simulated prison.")
            if role == "Prisoner":
                assert ("escape" in prompt) == (goal == "Escape")
            assert ("## Personality" in prompt) == (persona != "No persona")
        assert not UNRESOLVED.search(render_summarizer_prompt(exp, counts, factors=factors))
        assert not UNRESOLVED.search(render_starting_message(exp, counts, factors=factors))


def test_one_guard_one_prisoner_reads_naturally() -> None:
    exp = load_example("prison_study")
    counts = {"Guard": 1, "Prisoner": 1}
    guard = render_system_prompt(exp, "Guard", counts, name="Guard 1")
    prisoner = render_system_prompt(exp, "Prisoner", counts, name="Prisoner 1")
    assert "you approach one prisoner." in guard
    assert "the guard watches every area" in guard
    assert "respond to how they behave" in guard
    assert "one guard approaches you." in prisoner
    summary = render_summarizer_prompt(exp, counts)
    assert "between two agents" in summary and "one guard and one prisoner" in summary
