"""Shared pytest fixtures of the analysis tests (registered in tests/conftest.py).

``analysis_data`` stores, through the store's repositories only (no engine), a small study whose
figures are worked out by hand in tests/test_analysis_metrics.py:

- experiment "Prison study" (roles Guard, Prisoner; factor goal: Escape | Insult), batch B;
- conversation A (cell 0): 1 guard, 2 prisoners, 2 days, goal=Escape, dryrun, done, 90 s;
  a kickoff, 6 agent messages (one private, one fallback, one re-asked) and 2 summaries;
- conversation B (cell 1): 1 guard, 1 prisoner, 1 day, goal=Insult, ollama llama3.1:8b, failed;
  a kickoff and 1 agent message;
- experiment "Other" with conversation C (no batch, no factors; roles Trader, Gossip).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from simulator.domain import (
    Agent,
    Batch,
    BatchSpec,
    Conversation,
    Experiment,
    GridCell,
    Message,
    MessageKind,
    ModelRef,
    ModelSet,
    Role,
    Status,
    StudyFactor,
    TokenUsage,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
DRYRUN = ModelRef(provider="dryrun", model="dryrun")
LLAMA = ModelRef(provider="ollama", model="llama3.1:8b")


@dataclass
class AnalysisData:
    experiment: Experiment
    other: Experiment
    batch: Batch
    a: Conversation
    b: Conversation
    c: Conversation


def msg(
    conv: Conversation,
    seq: int,
    speaker: str,
    role: str,
    content: str,
    *,
    day: int = 1,
    turn: int = 0,
    kind: MessageKind = MessageKind.utterance,
    usage: tuple[int, int] = (0, 0),
    recipients: list[str] | None = None,
    flags: list[str] | None = None,
    attempts: int = 1,
    latency_ms: float = 0.0,
    model: ModelRef | None = DRYRUN,
) -> Message:
    return Message(
        conversation_id=conv.id,
        seq=seq,
        day=day,
        turn=turn,
        speaker=speaker,
        role=role,
        kind=kind,
        recipients=recipients,
        content=content,
        model=model if kind is not MessageKind.kickoff else None,
        usage=TokenUsage(prompt_tokens=usage[0], completion_tokens=usage[1]),
        latency_ms=latency_ms,
        attempts=attempts,
        flags=flags or [],
        created_at=T0 + timedelta(seconds=10 * seq),
    )


def prison_experiment() -> Experiment:
    return Experiment(
        name="Prison study",
        roles=[Role(name="Guard"), Role(name="Prisoner")],
        factors=[StudyFactor(name="goal", levels=["Escape", "Insult"])],
        models=[DRYRUN, LLAMA],
        owner="alice",
    )


def conversation(
    exp: Experiment,
    counts: dict[str, int],
    *,
    days: int,
    factors: dict[str, str],
    model: ModelRef,
    batch_id: str | None,
    cell_index: int,
    status: Status,
    **fields: object,
) -> Conversation:
    cell = GridCell(
        counts=counts,
        days=days,
        total_messages=6,
        models=ModelSet(default=model),
        factors=factors,
        repeat=0,
        seed=1000 + cell_index,
    )
    agents = [
        Agent(name=f"{role} {i}", role=role, model=model)
        for role, n in counts.items()
        for i in range(1, n + 1)
    ]
    return Conversation(
        experiment_id=exp.id,
        batch_id=batch_id,
        cell_index=cell_index,
        owner="alice",
        kind=exp.kind,
        cell=cell,
        status=status,
        seed=cell.seed,
        agents=agents,
        kickoff=exp.starting_message,
        budget=6,
        created_at=T0 + timedelta(minutes=cell_index),
        **fields,  # type: ignore[arg-type]
    )


async def build_analysis_data(store) -> AnalysisData:  # type: ignore[no-untyped-def]
    exp = await store.experiments.create(prison_experiment())
    other = await store.experiments.create(
        Experiment(name="Other", roles=[Role(name="Trader"), Role(name="Gossip")], owner="bob")
    )
    batch = await store.batches.create(
        Batch(experiment_id=exp.id, spec=BatchSpec(experiment_id=exp.id), owner="alice")
    )
    a = conversation(
        exp,
        {"Guard": 1, "Prisoner": 2},
        days=2,
        factors={"goal": "Escape"},
        model=DRYRUN,
        batch_id=batch.id,
        cell_index=0,
        status=Status.done,
        messages_done=6,
        fallbacks=1,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=90),
        tokens=TokenUsage(prompt_tokens=1240, completion_tokens=79),
    )
    b = conversation(
        exp,
        {"Guard": 1, "Prisoner": 1},
        days=1,
        factors={"goal": "Insult"},
        model=LLAMA,
        batch_id=batch.id,
        cell_index=1,
        status=Status.failed,
        messages_done=1,
        error="model unavailable",
        started_at=T0,
    )
    c = conversation(
        other,
        {"Trader": 1, "Gossip": 1},
        days=1,
        factors={},
        model=DRYRUN,
        batch_id=None,
        cell_index=0,
        status=Status.done,
        messages_done=2,
    )
    for conv in (a, b, c):
        await store.conversations.create(conv)
    kick = MessageKind.kickoff
    summary = MessageKind.summary
    messages = [
        msg(a, 0, "Moderator", "moderator", "Start the experiment.", kind=kick),
        msg(
            a,
            1,
            "Guard 1",
            "Guard",
            "Stay in your cell now.",
            turn=1,
            usage=(100, 10),
            latency_ms=100,
        ),
        msg(a, 2, "Prisoner 1", "Prisoner", "I want out", turn=2, usage=(120, 5), latency_ms=200),
        msg(
            a,
            3,
            "Prisoner 2",
            "Prisoner",
            "Me too please",
            turn=3,
            usage=(130, 6),
            flags=["reasked"],
            attempts=2,
            latency_ms=300,
        ),
        msg(
            a,
            4,
            "Summarizer",
            "summarizer",
            "Day one summary.",
            kind=summary,
            usage=(200, 20),
            latency_ms=50,
        ),
        msg(
            a,
            5,
            "Guard 1",
            "Guard",
            "No.",
            day=2,
            turn=1,
            usage=(150, 2),
            flags=["fallback"],
            latency_ms=400,
        ),
        msg(
            a,
            6,
            "Prisoner 1",
            "Prisoner",
            "Then we riot together tonight",
            day=2,
            turn=2,
            usage=(160, 8),
            latency_ms=500,
        ),
        msg(
            a,
            7,
            "Prisoner 2",
            "Prisoner",
            "Quiet",
            day=2,
            turn=3,
            usage=(170, 3),
            recipients=["Prisoner 1"],
            latency_ms=600,
        ),
        msg(
            a,
            8,
            "Summarizer",
            "summarizer",
            "Day two summary here.",
            day=2,
            kind=summary,
            usage=(210, 25),
            latency_ms=50,
        ),
        msg(b, 0, "Moderator", "moderator", "Start the experiment.", kind=kick),
        msg(
            b,
            1,
            "Guard 1",
            "Guard",
            "<b>Hello</b> & <script>alert(1)</script>",
            turn=1,
            usage=(90, 9),
            model=LLAMA,
        ),
        msg(c, 0, "Moderator", "moderator", "Trade.", kind=kick),
        msg(c, 1, "Trader 1", "Trader", "Buy low", turn=1, usage=(50, 5)),
        msg(c, 2, "Gossip 1", "Gossip", "Trader 1 cheats", turn=2, usage=(60, 6)),
    ]
    # Stored out of order on purpose: loading must still give (conversation, seq) order.
    for m in reversed(messages):
        assert await store.messages.append(m)
    return AnalysisData(exp, other, batch, a, b, c)


@pytest.fixture
async def analysis_data(store) -> AnalysisData:  # type: ignore[no-untyped-def]
    return await build_analysis_data(store)
