"""The state of a reputation run, as JSON-able pydantic models: one ``GameState`` per step snapshot.

A snapshot holds the current world (agents, resources, reputation records, network, blacklists)
plus what happened during its step (interactions, reputation updates, gossip, sign-ups). The whole
history of records is the union of the snapshots' ``updates``; nothing is repeated between steps.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

LEVELS = ("very_bad", "bad", "neutral", "good", "very_good")
Source = Literal["initial", "direct", "gossip", "observation", "signup"]
Tone = Literal["positive", "negative"]
TOLERANCE = 0.01


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Distribution(_State):
    """A belief over five reputation levels; the probabilities must sum to 1 (within 0.01)."""

    very_bad: float = Field(ge=0, le=1)
    bad: float = Field(ge=0, le=1)
    neutral: float = Field(ge=0, le=1)
    good: float = Field(ge=0, le=1)
    very_good: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> Distribution:
        total = sum(self.values())
        if not math.isclose(total, 1.0, abs_tol=TOLERANCE):
            raise ValueError(f"the five probabilities must sum to 1, they sum to {total:.3f}")
        return self

    def values(self) -> list[float]:
        return [self.very_bad, self.bad, self.neutral, self.good, self.very_good]

    @property
    def score(self) -> float:
        """very good + good - bad - very bad, in -1..1."""
        return round(self.very_good + self.good - self.bad - self.very_bad, 6)

    @classmethod
    def uniform(cls) -> Distribution:
        """No opinion."""
        return cls(very_bad=0.2, bad=0.2, neutral=0.2, good=0.2, very_good=0.2)

    @classmethod
    def of(cls, values: list[float]) -> Distribution:
        return cls(**dict(zip(LEVELS, values, strict=True)))

    def mix(self, other: Distribution, weight: float) -> Distribution:
        """(1 - weight) * self + weight * other, renormalised."""
        vals = [
            (1 - weight) * a + weight * b
            for a, b in zip(self.values(), other.values(), strict=True)
        ]
        total = sum(vals) or 1.0
        return Distribution.of([round(v / total, 6) for v in vals])


class ReputationRecord(_State):
    """What ``holder`` thinks of ``target`` in ``role`` (holder == target: self-reputation)."""

    holder: str
    target: str
    role: str
    text: str = ""
    distribution: Distribution = Field(default_factory=Distribution.uniform)
    step: int = 0
    source: Source = "direct"
    previous_score: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_derived(cls, data: Any) -> Any:
        # the stored score is derived from the distribution: recomputed, never trusted
        if isinstance(data, dict) and "score" in data:
            data = {k: v for k, v in data.items() if k != "score"}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def score(self) -> float:
        return self.distribution.score

    @property
    def key(self) -> str:
        return record_key(self.holder, self.target, self.role)


def record_key(holder: str, target: str, role: str) -> str:
    return f"{holder}|{target}|{role}"


class AgentState(_State):
    name: str
    persona: str  # the original persona, never rewritten
    learned: str  # the current persona (rewritten when persona_rewrite is on)
    group: str = ""  # the experiment role the agent belongs to (selects its model)
    persona_type: str = ""  # the persona's type (repunet: altruistic, communal, rational)
    resources: float = 0.0
    signed_up: bool | None = None
    # behaviour so far (for reputation accuracy): cooperative acts / acts, over the agent's own
    # choices; a move, investment or sign-up the engine defaulted is a fallback act, not an act
    acts: int = 0
    cooperative_acts: int = 0
    fallback_acts: int = 0
    chat_attempts: int = 0  # sign-up chats this agent was paired for (not blacklisted)
    chat_successes: int = 0  # ... that took place (both willing)
    last_moves: dict[str, str] = Field(default_factory=dict)  # partner -> partner's last move vs me
    games: list[str] = Field(default_factory=list)  # short lines about the agent's own past games
    gossip_heard: int = 0  # gossip this agent received as a listener
    gossip_doubted: int = 0  # ... of which it judged (very) uncredible


class Interaction(_State):
    """One pair's encounter in a step."""

    step: int
    game: str
    a: str  # investor / player 1 / first chatter
    b: str  # trustee / player 2 / second chatter
    chosen: bool = False  # a picked b among its connections (else random)
    auto_refused: bool = False  # blacklisted pair
    full: bool = False  # the interaction completed (invests accepted, game played, chat held)
    void: bool = False  # an unusable answer left it undecided (an error game, no investment)
    details: dict[str, Any] = Field(default_factory=dict)


class GossipRecord(_State):
    step: int
    gossiper: str
    listener: str
    target: str
    role: str
    tone: Tone
    message: str = ""
    credibility: str | None = "neutral"  # None: the listener's evaluation was a fallback
    evaluation: str = "answer"  # the evaluation's provenance (answer, reasked, fallback)
    weight: float = 0.0
    hop: int = 1
    passed_on: bool = False
    disconnected: bool = False
    truthful: bool | None = None  # the gossiper's own experience agrees with the tone
    score_before: float | None = None
    score_after: float | None = None


class GameState(_State):
    step: int = 0  # steps completed
    game: str = "investment"
    seed: int = 0
    agents: list[AgentState] = Field(default_factory=list)
    records: dict[str, ReputationRecord] = Field(default_factory=dict)
    network: dict[str, list[str]] = Field(default_factory=dict)  # directed: a -> [b, ...]
    blacklists: dict[str, list[str]] = Field(default_factory=dict)  # oldest first
    observed: dict[str, list[str]] = Field(default_factory=dict)  # target|role -> evaluations
    # what happened during this step
    interactions: list[Interaction] = Field(default_factory=list)
    updates: list[ReputationRecord] = Field(default_factory=list)
    gossip: list[GossipRecord] = Field(default_factory=list)
    signups: dict[str, bool] = Field(default_factory=dict)  # the sign-ups played this step
    signup_fallbacks: list[str] = Field(default_factory=list)  # ... defaulted, not chosen
    # every decision of the step by provenance; per decision name (pd_move, invest, ...) too
    decisions: int = 0
    reasked: int = 0
    fallbacks: int = 0
    decision_counts: dict[str, int] = Field(default_factory=dict)
    fallback_counts: dict[str, int] = Field(default_factory=dict)
    finished: bool = False

    # ------------------------------------------------------------------ agents

    def agent(self, name: str) -> AgentState:
        for a in self.agents:
            if a.name == name:
                return a
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.agents]

    # ------------------------------------------------------------------ reputation

    def record(self, holder: str, target: str, role: str) -> ReputationRecord | None:
        return self.records.get(record_key(holder, target, role))

    def set_record(self, rec: ReputationRecord) -> ReputationRecord:
        old = self.records.get(rec.key)
        rec = rec.model_copy(update={"previous_score": old.score if old else None})
        self.records[rec.key] = rec
        self.updates.append(rec)
        return rec

    def score(self, target: str, role: str) -> float:
        """Mean score over every holder with a record of ``target`` in ``role`` (0 with none)."""
        scores = [r.score for r in self.records.values() if r.target == target and r.role == role]
        if not scores:
            return 0.0
        return max(-1.0, min(1.0, sum(scores) / len(scores)))

    def peer_score(self, target: str, role: str) -> float | None:
        """Mean score held by others (self-view excluded), None with no record."""
        scores = [
            r.score
            for r in self.records.values()
            if r.target == target and r.role == role and r.holder != target
        ]
        return sum(scores) / len(scores) if scores else None

    # ------------------------------------------------------------------ network

    def connected(self, a: str, b: str) -> bool:
        return b in self.network.get(a, [])

    def mutual(self, a: str, b: str) -> bool:
        return self.connected(a, b) and self.connected(b, a)

    def connect(self, a: str, b: str) -> bool:
        """Add the tie a -> b (never to oneself or to someone a blacklists)."""
        if a == b or b in self.blacklists.get(a, []) or self.connected(a, b):
            return False
        self.network.setdefault(a, []).append(b)
        return True

    def disconnect(self, a: str, b: str) -> bool:
        if not self.connected(a, b):
            return False
        self.network[a] = [x for x in self.network[a] if x != b]
        return True

    def blacklist(self, a: str, b: str, size: int) -> None:
        """a blacklists b (and drops its tie to b); beyond ``size`` entries the oldest expires."""
        self.disconnect(a, b)
        if size <= 0:
            return
        entries = [x for x in self.blacklists.get(a, []) if x != b] + [b]
        self.blacklists[a] = entries[-size:]

    def blocked(self, a: str, b: str) -> bool:
        """Either side blacklists the other."""
        return b in self.blacklists.get(a, []) or a in self.blacklists.get(b, [])

    def in_degree(self, name: str) -> int:
        return sum(1 for src, outs in self.network.items() if src != name and name in outs)

    def begin_step(self) -> None:
        self.interactions = []
        self.updates = []
        self.gossip = []
        self.signups = {}
        self.signup_fallbacks = []
        self.decisions = 0
        self.reasked = 0
        self.fallbacks = 0
        self.decision_counts = {}
        self.fallback_counts = {}


__all__ = [
    "LEVELS",
    "AgentState",
    "Distribution",
    "GameState",
    "GossipRecord",
    "Interaction",
    "ReputationRecord",
    "record_key",
]
