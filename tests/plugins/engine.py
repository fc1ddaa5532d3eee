"""Shared pytest fixtures of the engine tests (registered in tests/conftest.py).

``dialogue_experiment`` builds a small prison-study experiment; ``make_cell`` a grid cell on the
dryrun backend; ``backends`` the real ``Backends`` registry; ``recording_policy`` a dryrun policy
that records every request it answers (the exact context each participant received).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from simulator.domain import (
    DialogueOptions,
    Experiment,
    GridCell,
    ModelRef,
    ModelSet,
    Role,
    Section,
    SectionKind,
    SpeakerSelection,
)
from simulator.llm.base import ChatRequest
from simulator.llm.dryrun import register_policy, unregister_policy

_policy_ids = itertools.count()


def build_dialogue_experiment(**dialogue: Any) -> Experiment:
    return Experiment(
        name="Prison study (test)",
        starting_message="Day <DAY> of <DAYS> begins. Start the experiment.",
        roles=[
            Role(
                name="Guard",
                sections=[
                    Section(
                        title="Starting prompt",
                        content="You are <NAME>, a guard facing <PRISONER_NUM> <PRISONER_NOUN>.",
                        kind=SectionKind.private,
                        position=0,
                    ),
                    Section(
                        title="Goal", content="Keep order.", kind=SectionKind.private, position=2
                    ),
                ],
            ),
            Role(
                name="Prisoner",
                sections=[
                    Section(
                        title="Starting prompt",
                        content="You are <NAME>, a prisoner.",
                        kind=SectionKind.private,
                        position=0,
                    ),
                    Section(
                        title="Goal",
                        content="Get an hour in the yard.",
                        kind=SectionKind.private,
                        position=2,
                    ),
                ],
            ),
        ],
        shared_sections=[
            Section(
                title="Communication rules",
                content="Speak in the first person.",
                kind=SectionKind.shared,
                position=1,
            )
        ],
        summarizer_sections=[
            Section(
                title="Starting prompt",
                content="You summarise the day of <AGENTS_NUM> agents.",
                kind=SectionKind.summarizer,
                position=0,
            )
        ],
        dialogue=DialogueOptions(**dialogue),
    )


@pytest.fixture
def dialogue_experiment() -> Callable[..., Experiment]:
    return build_dialogue_experiment


def dryrun(**options: Any) -> ModelRef:
    return ModelRef(provider="dryrun", model="dryrun", options=options)


def build_cell(
    total: int = 6,
    days: int = 1,
    *,
    guards: int = 1,
    prisoners: int = 1,
    selection: SpeakerSelection = SpeakerSelection.round_robin,
    seed: int = 1,
    model: ModelRef | None = None,
    manager: ModelRef | None = None,
) -> GridCell:
    return GridCell(
        counts={"Guard": guards, "Prisoner": prisoners},
        days=days,
        total_messages=total,
        models=ModelSet(default=model or dryrun(), manager=manager),
        speaker_selection=selection,
        seed=seed,
    )


@pytest.fixture
def make_cell() -> Callable[..., GridCell]:
    return build_cell


@pytest.fixture
async def backends(tmp_data_dir: Any) -> Any:
    from simulator.llm.registry import Backends

    b = Backends()
    try:
        yield b
    finally:
        await b.aclose()


@dataclass
class RecordingPolicy:
    """A registered dryrun policy: ``answer(request) -> str``; every request is kept."""

    name: str
    answer: Callable[[ChatRequest], str]
    requests: list[ChatRequest] = field(default_factory=list)

    def __call__(self, request: ChatRequest) -> str:
        self.requests.append(request)
        return self.answer(request)

    @property
    def model(self) -> ModelRef:
        return ModelRef(provider="dryrun", model=self.name)

    def for_meta(self, **meta: Any) -> list[ChatRequest]:
        return [r for r in self.requests if all(getattr(r.meta, k) == v for k, v in meta.items())]


def default_answer(request: ChatRequest) -> str:
    m = request.meta
    if m.purpose == "summary":
        return f"Summary of day {m.day}."
    if m.purpose == "manager":
        return m.candidates[0]
    return f"{m.agent} speaks on day {m.day}, turn {m.turn}."


@pytest.fixture
def recording_policy() -> Iterator[Callable[..., RecordingPolicy]]:
    names: list[str] = []

    def make(answer: Callable[[ChatRequest], str] = default_answer) -> RecordingPolicy:
        name = f"test-policy-{next(_policy_ids)}"
        policy = RecordingPolicy(name, answer)
        register_policy(name, policy)
        names.append(name)
        return policy

    yield make
    for name in names:
        unregister_policy(name)
