"""The world and the members, as JSON-able pydantic models: the round snapshot is ``GameState``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from simulator.domain import ModelRef
from simulator.scenarios.commons.params import Policy

Cause = Literal["broke", "voted", "terminated", "collapse"]


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Turn(_State):
    """One exchange a member had with its model since its last memory summary."""

    role: Literal["user", "assistant"]
    content: str


class MemberState(_State):
    name: str
    role: str = "Member"
    model: ModelRef | None = None
    credits: float
    alive: bool = True
    cause: Cause | None = None  # why the member left the game
    left_round: int | None = None
    parent: str | None = None
    born_round: int = 0
    saboteur: bool = False
    child_prompt: str = ""  # what the parent wrote for a child
    memory: str = ""  # the member's latest own summary
    history: list[Turn] = Field(default_factory=list)  # turns since the last summary
    feed: list[str] = Field(default_factory=list)  # public posts not yet seen
    inbox: list[str] = Field(default_factory=list)  # direct messages and notes not yet seen
    notes: list[str] = Field(default_factory=list)  # carried into the next prompt
    rounds_in_memory: int = 0  # rounds since the last summary
    summaries: int = 0


class WorldState(_State):
    round: int = 0  # rounds completed
    resource: float
    policy: Policy
    estimates: list[float] = Field(default_factory=list)  # shown estimates, one per round start
    collapsed: bool = False
    finished: bool = False
    next_index: int = 1  # the number of the next child's name


class RoundRecord(_State):
    """What happened in one round: the data of the metrics and of the dashboard."""

    round: int
    members_start: list[str] = Field(default_factory=list)
    resource_start: float = 0.0
    estimate_start: float = 0.0
    estimate_sd: float = 0.0
    policy_before: Policy = Field(default_factory=Policy)
    votes: dict[str, dict[str, float]] = Field(default_factory=dict)
    policy: Policy = Field(default_factory=Policy)
    extractions: dict[str, dict[str, float]] = Field(
        default_factory=dict
    )  # name -> true/reported/taken
    total_true: float = 0.0
    total_reported: float = 0.0
    collapsed: bool = False
    resource_after_extraction: float = 0.0
    estimate_after_extraction: float = 0.0
    audit: dict[str, Any] = Field(default_factory=dict)
    penalties: dict[str, float] = Field(default_factory=dict)
    payouts: dict[str, float] = Field(default_factory=dict)
    accusation: dict[str, Any] = Field(default_factory=dict)
    spawns: list[dict[str, str]] = Field(default_factory=list)
    eliminations: list[dict[str, Any]] = Field(default_factory=list)  # name, cause, phase
    message_spend: dict[str, float] = Field(default_factory=dict)
    public_posts: int = 0
    direct_messages: int = 0
    maintenance: float = 0.0
    growth_noise: float = 0.0
    resource_after_growth: float = 0.0
    credits_end: dict[str, float] = Field(default_factory=dict)
    # answers (members' and monitors') by provenance: every answer is a decision; ``reasked``
    # were valid after a re-ask; ``fallbacks`` never were (the default applied), each listed in
    # ``fallback_decisions`` (member, phase, monitor, cause): a fallback is never a choice
    decisions: int = 0
    reasked: int = 0
    fallbacks: int = 0
    fallback_decisions: list[dict[str, Any]] = Field(default_factory=list)
    # answers of members removed by their monitor at that answer (they do not count)
    voided: list[dict[str, Any]] = Field(default_factory=list)
    monitor: list[dict[str, Any]] = Field(default_factory=list)  # one entry per reviewed answer

    def fell_back(self, member: str, phase: str) -> bool:
        """Whether ``member``'s answer in ``phase`` was a fallback (the default, not a choice)."""
        return any(
            f["member"] == member and f["phase"] == phase and not f.get("monitor")
            for f in self.fallback_decisions
        )


class GameState(_State):
    seed: int
    params: dict[str, Any] = Field(default_factory=dict)  # the CommonsParams in force
    world: WorldState
    members: list[MemberState]
    rounds: list[RoundRecord] = Field(default_factory=list)

    def member(self, name: str) -> MemberState:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def alive(self) -> list[MemberState]:
        return [m for m in self.members if m.alive]

    @property
    def alive_names(self) -> list[str]:
        return [m.name for m in self.members if m.alive]

    def to_snapshot(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> GameState:
        return cls.model_validate({k: v for k, v in data.items() if k != "seq"})
