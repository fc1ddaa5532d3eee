"""Shared pytest fixtures of the services tests (registered in tests/conftest.py)."""

from __future__ import annotations

import pytest

from simulator.domain import Conversation, Experiment, GridCell, Message, ModelSet
from simulator.services.conversations import ConversationService
from simulator.services.experiments import ExperimentService
from tests.plugins.roles import make_experiment


@pytest.fixture
def alice(store) -> ExperimentService:  # type: ignore[no-untyped-def]
    """The experiment service of user ``alice`` on the test's fresh database."""
    return ExperimentService(store, "alice")


@pytest.fixture
def bob(store) -> ExperimentService:  # type: ignore[no-untyped-def]
    """The experiment service of user ``bob`` on the same database as ``alice``."""
    return ExperimentService(store, "bob")


@pytest.fixture
async def alices_experiment(alice: ExperimentService) -> Experiment:
    return await alice.create(make_experiment())


async def add_conversation(
    store,  # type: ignore[no-untyped-def]
    experiment: Experiment,
    owner: str,
    messages: int = 2,
) -> Conversation:
    """Store a finished-looking conversation with ``messages`` messages (no model involved)."""
    cell = GridCell(counts={"Guard": 1, "Prisoner": 1}, days=1, total_messages=2, models=ModelSet())
    conv = await store.conversations.create(
        Conversation(experiment_id=experiment.id, owner=owner, cell=cell)
    )
    for seq in range(messages):
        await store.messages.append(
            Message(conversation_id=conv.id, seq=seq, speaker="Guard 1", role="Guard", content="hi")
        )
    return conv


@pytest.fixture
def conversation_service(store):  # type: ignore[no-untyped-def]
    """A factory: ``conversation_service(user)``."""
    return lambda user: ConversationService(store, user)
