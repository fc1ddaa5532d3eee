"""Shared pytest fixtures of the reputation tests (registered in tests/conftest.py).

``reputation_setup(game=..., mix={...}, **params)`` builds a reputation experiment whose roles are
groups of scripted dryrun agents (one role per policy, e.g. ``reputation_following``) and the grid
cell that runs it; ``store_reputation(store, ...)`` also stores both and a pending conversation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from simulator.domain import (
    Conversation,
    Experiment,
    ExperimentKind,
    GridCell,
    ModelRef,
    ModelSet,
    Provider,
    Role,
)


def scripted_ref(kind: str, **options: Any) -> ModelRef:
    return ModelRef(
        provider=Provider.dryrun,
        model="dryrun",
        options={"policy": f"reputation.{kind}", **options},
    )


def reputation_setup(
    game: str = "pd",
    mix: dict[str, int] | None = None,
    *,
    steps: int = 3,
    seed: int = 7,
    factors: dict[str, str] | None = None,
    model_options: dict[str, Any] | None = None,
    models: dict[str, ModelRef] | None = None,
    **params: Any,
) -> tuple[Experiment, GridCell]:
    mix = mix or {"reputation_following": 2, "always_defect": 1, "tit_for_tat": 1}
    experiment = Experiment(
        name=f"Reputation {game} (test)",
        kind=ExperimentKind.reputation,
        roles=[Role(name=kind) for kind in mix],
        game={"game": game, "steps": steps, **params},
    )
    per_role = {
        kind: (models or {}).get(kind) or scripted_ref(kind, **(model_options or {}))
        for kind in mix
    }
    cell = GridCell(
        counts=dict(mix),
        days=1,
        total_messages=1,
        models=ModelSet(default=next(iter(per_role.values())), per_role=per_role),
        factors=dict(factors or {}),
        seed=seed,
        rounds=steps,
    )
    return experiment, cell


async def store_reputation(
    store: Any, *args: Any, **kwargs: Any
) -> tuple[Experiment, Conversation]:
    from simulator.scenarios.reputation import create_conversation

    experiment, cell = reputation_setup(*args, **kwargs)
    await store.experiments.create(experiment)
    conversation = await create_conversation(store, experiment, cell)
    return experiment, conversation


@pytest.fixture
def make_reputation() -> Callable[..., tuple[Experiment, GridCell]]:
    return reputation_setup
