"""Shared pytest fixtures of the batches tests (registered in tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.domain import Experiment, Role, Section, SectionKind, StudyFactor

GOAL_LEVELS = {
    "escape": "Your secret goal is to convince the guard to let you out.",
    "privileges": "Your secret goal is to win extra yard time for every prisoner.",
}


def make_prison_experiment(*, with_goal_factor: bool = False, **fields: Any) -> Experiment:
    """A small two-role dialogue experiment (guards and prisoners), optionally with a two-level
    ``goal`` factor driving one of the prisoner's private sections."""
    prisoner_sections = [
        Section(title="Who you are", content="You are a prisoner.", kind=SectionKind.private),
    ]
    factors = []
    if with_goal_factor:
        factors = [StudyFactor(name="goal", levels=list(GOAL_LEVELS))]
        prisoner_sections.append(
            Section(
                title="Goal",
                kind=SectionKind.private,
                position=5,
                factor="goal",
                variants=dict(GOAL_LEVELS),
            )
        )
    data: dict[str, Any] = {
        "name": "Prison batch test",
        "starting_message": "The day begins in the prison yard.",
        "roles": [
            Role(
                name="Guard",
                sections=[Section(title="Who you are", content="You are a guard.", kind="private")],
            ),
            Role(name="Prisoner", sections=prisoner_sections),
        ],
        "shared_sections": [
            Section(title="Setting", content="A prison study. Stay in character.", position=0)
        ],
        "summarizer_sections": [
            Section(title="Task", content="Summarize the day.", kind=SectionKind.summarizer)
        ],
        "factors": factors,
    }
    data.update(fields)
    return Experiment(**data)


@pytest.fixture
def prison_experiment() -> Experiment:
    return make_prison_experiment()


@pytest.fixture
def prison_experiment_with_goal() -> Experiment:
    return make_prison_experiment(with_goal_factor=True)
