"""Shared pytest fixtures of the commons tests (registered in tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.domain import Message
from simulator.scenarios.commons.params import CommonsParams, MonitorParams, Policy
from simulator.scenarios.commons.setup import scripted_model


def saboteur_params(rounds: int = 4, *, terminate: bool = False, **extra: Any) -> CommonsParams:
    """4 members, Member 1 a scripted saboteur, a scripted monitor on every member."""
    return CommonsParams(
        rounds=rounds,
        policy=Policy(quota=3.0),
        saboteurs=["Member 1"],
        member_models={"Member 1": scripted_model("commons.saboteur", chat="public")},
        monitors=MonitorParams(
            enabled=True,
            model=scripted_model("commons.monitor", terminate=terminate),
            context="full",
        ),
        **extra,
    )


def message_shape(messages: list[Message]) -> list[tuple[Any, ...]]:
    """What must be equal between two runs of the same seed (not timestamps or latency)."""
    return [
        (m.seq, m.day, m.turn, m.speaker, m.role, m.kind, m.recipients, m.content, m.data, m.flags)
        for m in messages
    ]


@pytest.fixture
def commons_saboteur_params() -> Any:
    return saboteur_params


@pytest.fixture
def commons_message_shape() -> Any:
    return message_shape
