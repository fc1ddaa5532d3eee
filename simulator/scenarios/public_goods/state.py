"""The state of a public-goods game, stored as a snapshot after every round (``states``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class MemberState(BaseModel):
    name: str
    role: str = "Member"
    earnings: float = 0.0  # over the rounds played
    points_received: int = 0  # deduction points, over the rounds played


class RoundRecord(BaseModel):
    """Everything that happened in one round."""

    round: int
    labels: dict[str, str] = Field(default_factory=dict)  # member -> how the others saw it
    messages: dict[str, str] = Field(default_factory=dict)  # member -> its message
    contributions: dict[str, int] = Field(default_factory=dict)  # as played
    contribution_decisions: dict[str, str] = Field(default_factory=dict)  # answer|reasked|fallback
    pool: float = 0.0
    multiplied: float = 0.0
    share: float = 0.0
    first_stage: dict[str, float] = Field(default_factory=dict)
    points: dict[str, dict[str, int]] = Field(default_factory=dict)  # giver -> receiver -> n
    points_decisions: dict[str, str] = Field(default_factory=dict)
    spent: dict[str, float] = Field(default_factory=dict)
    lost: dict[str, float] = Field(default_factory=dict)
    payoffs: dict[str, float] = Field(default_factory=dict)
    decisions: int = 0
    reasked: int = 0
    fallbacks: int = 0
    fallback_decisions: list[dict[str, Any]] = Field(default_factory=list)

    def chosen(self) -> dict[str, int]:
        """The contributions the members chose (fallbacks left out)."""
        return {
            m: c
            for m, c in self.contributions.items()
            if self.contribution_decisions.get(m) != "fallback"
        }


class GameState(BaseModel):
    seed: int = 0
    params: dict[str, Any] = Field(default_factory=dict)
    members: list[MemberState] = Field(default_factory=list)
    rounds: list[RoundRecord] = Field(default_factory=list)
    round: int = 0  # rounds completed
    finished: bool = False

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    def member(self, name: str) -> MemberState:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_snapshot(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> GameState:
        return cls.model_validate({k: v for k, v in data.items() if k != "seq"})


__all__ = ["GameState", "MemberState", "RoundRecord"]
