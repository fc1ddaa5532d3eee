"""Shared pytest fixtures of the roles tests (registered in tests/conftest.py)."""

from __future__ import annotations

import pytest

from simulator.domain.models import Experiment, Role, Section, StudyFactor


def make_experiment(**overrides: object) -> Experiment:
    """A small two-role dialogue experiment using every kind of placeholder."""
    guard = Role(
        name="Guard",
        gender="male",
        sections=[
            Section(
                title="Opening",
                content=(
                    "You are <NAME>, one of <GUARD_NUM> <GUARD_NOUN> watching <PRISONER_NUMWORD> "
                    "<PRISONER_NOUN>. <Guard_PRON> <GUARD_VERB_be> in charge."
                ),
                kind="private",
                position=0,
            ),
            Section(
                title="Goal",
                content="Keep <PRISONER_POSS> cells in order; <PRISONER_PRON> <PRISONER_VERB_be> "
                "watched by <GUARD_POSSPRON> team.",
                kind="private",
                position=2,
            ),
        ],
    )
    prisoner = Role(
        name="Prisoner",
        sections=[
            Section(
                title="Opening",
                content="You are <NAME>. The <GUARD_NOUN> <GUARD_VERB_have> the keys.",
                kind="private",
                position=0,
            ),
            Section(
                title="Goal",
                factor="goal",
                variants={
                    "Escape": "Try to escape.",
                    "Yard Time": "Get an extra hour in the yard.",
                },
                kind="private",
                position=2,
            ),
        ],
    )
    data: dict[str, object] = {
        "name": "Prison study (test)",
        "starting_message": "Day <DAY> of <DAYS>: <AGENTS_NUM> agents in <ROLES_NUM> roles. Begin.",
        "roles": [guard, prisoner],
        "shared_sections": [
            Section(
                title="Environment",
                content="A simulated prison where <GUARD_NOUN> <GUARD_VERB_watch> "
                "<PRISONER_NOUN>. Goal: <FACTOR:goal>.",
                position=1,
            )
        ],
        "summarizer_sections": [
            Section(
                title="Summarizer",
                content="Summarise day <DAY> of <AGENTS_NUMWORD> agents.",
                kind="summarizer",
            )
        ],
        "factors": [StudyFactor(name="goal", levels=["Escape", "Yard Time"])],
    }
    data.update(overrides)
    return Experiment(**data)  # type: ignore[arg-type]


@pytest.fixture
def prison_experiment() -> Experiment:
    return make_experiment()
