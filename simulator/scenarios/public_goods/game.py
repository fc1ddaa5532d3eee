"""The public-goods round loop, played through the decision seam (``simulator.engine.decisions``):
stored on the engine's journal (``JournalDecisions``: every answer a stored action, resumable) or
in-process by scripted policies (``InProcessDecisions``: nothing stored).

A round: (messages) -> contributions, all asked before any is shown -> the pool, multiplied and
shared -> (deduction points, seen the contributions) -> payoffs -> a ``round_end`` record and a
snapshot. Randomness (the anonymous labels, the order of the messages) comes from streams named
after what they draw, so a resumed round draws the same.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from simulator.domain import Decision, MessageKind, ModelRef
from simulator.engine.decisions import PRIVATE, Decided, Decisions, json_schema
from simulator.engine.rng import stream
from simulator.llm.base import CallMeta, ChatMessage, ChatRequest
from simulator.scenarios.public_goods import prompts, rules
from simulator.scenarios.public_goods.actions import (
    Contribution,
    Deductions,
    Post,
    contribution_schema,
    deductions_schema,
)
from simulator.scenarios.public_goods.params import PublicGoodsParams, check_group
from simulator.scenarios.public_goods.state import GameState, MemberState, RoundRecord

A = TypeVar("A", bound=BaseModel)

GAME = "game"  # the speaker of the game's own records


def initial_state(
    params: PublicGoodsParams, members: list[tuple[str, str]], seed: int
) -> GameState:
    """Round 0: ``members`` is (name, role) per member."""
    check_group(params, len(members))
    return GameState(
        seed=seed,
        params=params.model_dump(mode="json"),
        members=[MemberState(name=name, role=role) for name, role in members],
    )


def labels_for(names: list[str], identified: bool, seed: int, round_: int) -> dict[str, str]:
    """How the members appear this round: by name, or by letters in a fresh random order."""
    if identified:
        return {n: n for n in names}
    order = list(names)
    stream(seed, "labels", round_).shuffle(order)
    letters = _letters(len(order))
    return {name: letters[i] for i, name in enumerate(order)}


def _letters(n: int) -> list[str]:
    """A, B, ..., Z, then A1, B1, ..."""
    az = string.ascii_uppercase
    return [az[i % 26] + (str(i // 26) if i >= 26 else "") for i in range(n)]


class PublicGoodsGame:
    def __init__(
        self,
        params: PublicGoodsParams,
        state: GameState,
        decisions: Decisions,
        models: dict[str, ModelRef],
        *,
        system: dict[str, str] | None = None,
    ) -> None:
        self.params = params
        self.state = state
        self.decisions = decisions
        self.models = models
        self.system = system or {}
        self.turn = 0
        self.rec = RoundRecord(round=0)

    @property
    def round(self) -> int:
        return self.state.round + 1

    @property
    def n(self) -> int:
        return len(self.state.members)

    # ------------------------------------------------------------------ plumbing

    async def ask(
        self,
        member: MemberState,
        prompt: str,
        schema: type[A],
        default: A,
        decision: str,
        *,
        recipients: list[str] | None = PRIVATE,
        content: Callable[[A], str] | None = None,
    ) -> Decided[A]:
        """One structured answer of ``member``, counted by provenance in the round's record."""
        self.turn += 1
        system = prompts.system_prompt(self.params, self.n, self.system.get(member.name, ""))
        request = ChatRequest(
            model=self.models[member.name],
            messages=[ChatMessage("system", system), ChatMessage("user", prompt)],
            meta=CallMeta(
                agent=member.name,
                role=member.role,
                day=self.round,
                turn=self.turn,
                seed=self.state.seed,
                purpose="action",
            ),
            json_schema=json_schema(schema),
        )
        got = await self.decisions.ask(
            request,
            schema,
            default,
            speaker=member.name,
            role=member.role,
            day=self.round,
            turn=self.turn,
            recipients=recipients,
            content=content,
            max_reasks=self.params.max_reasks,
        )
        rec = self.rec
        rec.decisions += 1
        rec.reasked += int(got.decision is Decision.reasked)
        if got.fallback:
            rec.fallbacks += 1
            rec.fallback_decisions.append(
                {"member": member.name, "decision": decision, "cause": got.cause}
            )
        return got

    async def note(
        self, content: str, data: dict[str, Any], recipients: list[str] | None = None
    ) -> None:
        self.turn += 1
        await self.decisions.record(
            speaker=GAME,
            role=GAME,
            content=content,
            day=self.round,
            turn=self.turn,
            kind=MessageKind.system,
            recipients=recipients,
            data=data,
        )

    # ------------------------------------------------------------------ the game

    async def play(self) -> GameState:
        while not self.state.finished:
            await self.play_round()
        return self.state

    async def play_round(self) -> None:
        st, p, n = self.state, self.params, self.round
        self.turn = 0
        labels = labels_for(st.names, p.identified, st.seed, n)
        self.rec = rec = RoundRecord(round=n, labels=labels)
        await self.note(f"Round {n} begins.", {"event": "round", "round": n})
        messages = await self.messages() if p.communication else {}
        await self.contributions(messages)
        result = rules.outcome(rec.contributions, p.endowment, p.multiplier)
        rec.pool, rec.multiplied, rec.share = result.pool, result.multiplied, result.share
        rec.first_stage = result.first_stage
        await self.note(
            prompts.contributions_text(rec),
            {
                "event": "contributions",
                "contributions": dict(rec.contributions),
                "labels": dict(labels),
                "pool": rec.pool,
                "share": rec.share,
            },
        )
        if p.punishment:
            await self.punishments()
        result = rules.outcome(
            rec.contributions,
            p.endowment,
            p.multiplier,
            rec.points,
            p.punishment_cost,
            p.punishment_effect,
        )
        rec.spent, rec.lost, rec.payoffs = result.spent, result.lost, result.payoffs
        for member in st.members:
            member.earnings = round(member.earnings + rec.payoffs[member.name], 6)
            member.points_received += result.received[member.name]
        if p.punishment:
            for member in st.members:
                await self.note(
                    prompts.deductions_text(rec, member.name, p.identified),
                    {
                        "event": "deductions",
                        "received": result.received[member.name],
                        "given": result.given[member.name],
                        "lost": rec.lost[member.name],
                        "spent": rec.spent[member.name],
                        "payoff": rec.payoffs[member.name],
                    },
                    recipients=[member.name],
                )
        finished = n >= p.rounds
        chosen = list(rec.chosen().values())
        # what a live chart needs, without reading the snapshot
        await self.note(
            f"Round {n} ended.",
            {
                "event": "round_end",
                "round": n,
                "rounds": p.rounds,
                "mean_contribution": sum(chosen) / len(chosen) if chosen else None,
                "pool": rec.pool,
                "punishment_spent": sum(rec.spent.values()),
                "mean_earnings": sum(rec.payoffs.values()) / len(rec.payoffs),
                "finished": finished,
            },
        )
        st.rounds.append(rec)
        st.round = n
        st.finished = finished
        await self.decisions.snapshot(n, st.to_snapshot())

    async def messages(self) -> dict[str, str]:
        """Each member, in a random order, may post one message; returned by label."""
        st, p, rec = self.state, self.params, self.rec
        order = st.names
        stream(st.seed, "order", self.round).shuffle(order)
        posted: dict[str, str] = {}
        for name in order:
            member = st.member(name)
            prompt = prompts.post(st, name, p, rec.labels[name], self.n)
            got = await self.ask(
                member, prompt, Post, Post(), "message", recipients=None, content=self._cut
            )
            text = self._cut(got.answer)
            if text and not got.fallback:
                rec.messages[name] = text
                posted[rec.labels[name]] = text
        return posted

    def _cut(self, answer: Post) -> str:
        words = answer.message.split()
        return " ".join(words[: self.params.message_words])

    async def contributions(self, messages: dict[str, str]) -> None:
        """Every member's contribution, asked before any is shown (a fallback keeps the whole
        endowment: it contributes nothing, and is no choice)."""
        st, p, rec = self.state, self.params, self.rec
        schema = contribution_schema(p.endowment)
        for member in st.members:
            prompt = prompts.contribution(
                st, member.name, p, rec.labels[member.name], messages, self.n
            )
            got = await self.ask(
                member, prompt, schema, schema(contribution=0, reason="default"), "contribute"
            )
            answer: Contribution = got.answer
            rec.contributions[member.name] = answer.contribution
            rec.contribution_decisions[member.name] = got.decision.value

    async def punishments(self) -> None:
        """Each member's deduction points for the others, seen the contributions (a fallback
        gives none)."""
        st, p, rec = self.state, self.params, self.rec
        by_label = {label: name for name, label in rec.labels.items()}
        for member in st.members:
            others = tuple(sorted(rec.labels[m] for m in st.names if m != member.name))
            schema = deductions_schema(others, p.max_points)
            prompt = prompts.deductions(
                st, rec, member.name, p, rec.first_stage[member.name], self.n
            )
            got = await self.ask(member, prompt, schema, schema(points={}), "punish")
            rec.points_decisions[member.name] = got.decision.value
            answer: Deductions = got.answer
            given = {by_label[label]: k for label, k in answer.points.items() if k > 0}
            if given and not got.fallback:
                rec.points[member.name] = given


__all__ = ["GAME", "PublicGoodsGame", "initial_state", "labels_for"]
