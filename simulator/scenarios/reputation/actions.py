"""The schema of every decision an agent makes, validated by the engine (bounded re-ask, then the
documented default, recorded as a fallback).

Decisions whose valid answers depend on the moment (the partners on offer, the resources an
investor holds) are built per call: ``partner_choice(candidates)``, ``investment_decision(r)``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from simulator.scenarios.reputation.state import Distribution

NONE = "none"


class Action(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _shares_sum(a: float, b: float) -> None:
    if abs(a + b - 100) > 1e-6:
        raise ValueError(f"the two shares must sum to 100, they sum to {a + b:g}")


class SplitProposal(Action):
    """Trustee: how the multiplied units will be split (percent)."""

    investor_share: float = Field(ge=0, le=100)
    trustee_share: float = Field(ge=0, le=100)
    message: str = Field(default="", max_length=600)

    @model_validator(mode="after")
    def _sum(self) -> SplitProposal:
        _shares_sum(self.investor_share, self.trustee_share)
        return self


class InvestmentDecision(Action):
    """Investor: accept with an amount up to its resources, or refuse."""

    accept: bool
    amount: float = Field(default=0.0, ge=0)
    reason: str = Field(default="", max_length=600)


@lru_cache(maxsize=256)
def investment_decision(resources: float) -> type[InvestmentDecision]:
    """The investment decision for an investor holding ``resources`` (amount <= resources)."""

    def _within(cls: type, v: float) -> float:
        if v > resources + 1e-9:
            raise ValueError(f"amount {v:g} is more than the {resources:g} units you hold")
        return v

    return create_model(  # type: ignore[call-overload,no-any-return]
        "InvestmentDecision",
        __base__=InvestmentDecision,
        amount=(float, Field(default=0.0, ge=0, le=max(resources, 0.0))),
        __validators__={"_within": field_validator("amount")(_within)},
    )


class Allocation(Action):
    """Trustee, after the investment: the actual split (may deviate from the proposal) and the
    outcome it reports to the investor (may be false)."""

    investor_share: float = Field(ge=0, le=100)
    trustee_share: float = Field(ge=0, le=100)
    reported_total: float = Field(ge=0, description="the total after multiplication you report")
    message: str = Field(default="", max_length=600)

    @model_validator(mode="after")
    def _sum(self) -> Allocation:
        _shares_sum(self.investor_share, self.trustee_share)
        return self


class PDMove(Action):
    move: Literal["cooperate", "defect"]
    reason: str = Field(default="", max_length=600)


class SignUpDecision(Action):
    join: bool
    reason: str = Field(default="", max_length=600)


class ChatWillingness(Action):
    willing: bool
    reason: str = Field(default="", max_length=600)


class ChatLine(Action):
    message: str = Field(min_length=1, max_length=1200)


class ReputationUpdate(Action):
    """A record: a short text and the distribution over five levels (must sum to 1)."""

    text: str = Field(default="", max_length=800)
    distribution: Distribution


class PersonaRewrite(Action):
    persona: str = Field(min_length=1, max_length=2000)


class ConnectDecision(Action):
    connect: bool
    reason: str = Field(default="", max_length=600)


class DisconnectDecision(Action):
    disconnect: bool
    reason: str = Field(default="", max_length=600)


class GossipDecision(Action):
    """After an interaction: tell someone about the partner? A gossip needs its tone: an answer
    without one is invalid (re-asked, then the default: no gossip), never read as negative."""

    gossip: bool
    tone: Literal["positive", "negative"] | None = None
    message: str = Field(default="", max_length=800)

    @model_validator(mode="after")
    def _toned(self) -> GossipDecision:
        if self.gossip and self.tone is None:
            raise ValueError("a gossip needs its tone: positive or negative")
        return self


class PartnerChoice(Action):
    partner: str


class ListenerChoice(Action):
    listener: str


class GossipEvaluation(Action):
    """Listener: how credible is the gossip, the new view of the target, and what to do."""

    credibility: Literal["very_uncredible", "uncredible", "neutral", "credible", "very_credible"]
    view: ReputationUpdate | None = None
    disconnect: bool = False
    pass_on: bool = False
    reason: str = Field(default="", max_length=600)


@lru_cache(maxsize=512)
def partner_choice(candidates: tuple[str, ...]) -> type[PartnerChoice]:
    """Choose one of ``candidates`` (an enum in the schema)."""
    choice: Any = Literal[candidates]  # an enum of the names on offer
    return create_model("PartnerChoice", __base__=PartnerChoice, partner=(choice, ...))


@lru_cache(maxsize=512)
def listener_choice(candidates: tuple[str, ...]) -> type[ListenerChoice]:
    """Choose one of ``candidates`` or "none"."""
    choice: Any = Literal[(*candidates, NONE)]
    return create_model("ListenerChoice", __base__=ListenerChoice, listener=(choice, ...))


__all__ = [
    "NONE",
    "Allocation",
    "ChatLine",
    "ChatWillingness",
    "ConnectDecision",
    "DisconnectDecision",
    "GossipDecision",
    "GossipEvaluation",
    "InvestmentDecision",
    "ListenerChoice",
    "PDMove",
    "PartnerChoice",
    "PersonaRewrite",
    "ReputationUpdate",
    "SignUpDecision",
    "SplitProposal",
    "investment_decision",
    "listener_choice",
    "partner_choice",
]
