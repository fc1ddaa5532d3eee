"""The sign-up game of a step: every ``signup_period`` steps each resident decides whether to
join (public), then re-rates the others by their choice; then random pairs chat (each side
willing or not, by its record of the other), reflect and may gossip.
"""

from __future__ import annotations

from typing import Any

from simulator.domain import Decision
from simulator.engine.rng import stream
from simulator.scenarios.reputation import actions as A
from simulator.scenarios.reputation import rules
from simulator.scenarios.reputation.machinery import Machinery
from simulator.scenarios.reputation.state import (
    AgentState,
    Interaction,
)


class SignUpSteps(Machinery):
    """Sign-up rounds, re-rating and chats."""

    async def signup_step(self, step: int) -> None:
        st, p = self.state, self.params
        if rules.is_signup_round(step, p.signup_period):
            for agent in st.agents:
                got = await self.decide(
                    agent.name,
                    "signup",
                    A.SignUpDecision,
                    A.SignUpDecision(join=False, reason="default"),
                    {"role": "resident", "previous": agent.signed_up},
                    self.context(agent.name, None, None),
                    step=step,
                    recipients=None,
                )
                if got.fallback:
                    st.signup_fallbacks.append(agent.name)
                    if self.voiding:
                        continue  # no choice: nothing to count or to re-rate
                st.signups[agent.name] = got.answer.join
            for agent in st.agents:
                if agent.name in st.signups:
                    agent.signed_up = st.signups[agent.name]
                    move = rules.COOPERATE if agent.signed_up else rules.DEFECT
                    self._act(agent, move, agent.name in st.signup_fallbacks)
                else:
                    agent.fallback_acts += 1
            said = {True: "yes", False: "no", None: "no answer"}
            await self.event(
                step,
                "Sign-up: "
                + "; ".join(f"{a.name}: {said[st.signups.get(a.name)]}" for a in st.agents),
                kind="signup",
                signups=dict(st.signups),
                no_answer=[a.name for a in st.agents if a.name not in st.signups],
            )
            if p.reputation:
                await self.signup_rerating(step)
        rng = stream(self.seed, "chat", step)
        for a, b in rules.random_pairs(st.names, rng, rules.chat_pair_count(p)):
            await self.chat_pair(step, a, b)

    async def signup_rerating(self, step: int) -> None:
        st = self.state
        for holder in st.names:
            for target in st.names:
                if target == holder or st.record(holder, target, "resident") is None:
                    continue
                if target not in st.signups:
                    continue  # no valid sign-up answer: nothing to judge
                joined = st.signups.get(target)
                await self.update_record(
                    step,
                    holder,
                    target,
                    "resident",
                    "signup_update",
                    "signup",
                    {
                        "partner": target,
                        "choice": "join" if joined else "not join",
                        "partner_joined": joined,
                        "i_joined": st.signups.get(holder),
                    },
                )
                if st.connected(holder, target):
                    await self.decide_disconnect(
                        step,
                        holder,
                        target,
                        "resident",
                        {"partner_joined": joined, "i_joined": st.signups.get(holder)},
                    )

    async def chat_pair(self, step: int, a: str, b: str) -> None:
        st, p = self.state, self.params
        inter = Interaction(step=step, game="signup", a=a, b=b)
        st.interactions.append(inter)
        if st.blocked(a, b):
            inter.auto_refused = True
            await self.event(
                step, f"{a} and {b} do not chat: blacklisted.", kind="auto_refusal", a=a, b=b
            )
            return
        for name in (a, b):
            st.agent(name).chat_attempts += 1
        willing: dict[str, bool] = {}
        provenance: dict[str, str] = {}
        for me, other in ((a, b), (b, a)):
            if p.reputation and st.record(me, other, "resident") is not None:
                got = await self.decide(
                    me,
                    "chat_willing",
                    A.ChatWillingness,
                    A.ChatWillingness(willing=True, reason="default"),
                    {
                        "partner": other,
                        "role": "resident",
                        "view": self.view(me, other, "resident"),
                    },
                    self.context(me, other, "resident"),
                    step=step,
                    recipients=[other],
                )
                provenance[me] = got.decision.value
                willing[me] = got.answer.willing and not (got.fallback and self.voiding)
            else:
                willing[me] = True
        inter.details = {"willing": [willing[a], willing[b]]}
        if provenance:
            inter.details["willing_decisions"] = [provenance.get(a), provenance.get(b)]
        if Decision.fallback.value in provenance.values() and self.voiding:
            inter.void = True
        if not (willing[a] and willing[b]):
            await self.event(step, f"{a} and {b} do not chat.", kind="chat_declined", a=a, b=b)
            return
        lines: dict[str, str] = {}
        for me, other in ((a, b), (b, a)):
            line: A.ChatLine = await self.ask(
                me,
                "chat_line",
                A.ChatLine,
                A.ChatLine(message="(nothing to say)"),
                {
                    "partner": other,
                    "partner_said": lines.get(other),
                    "partner_joined": st.agent(other).signed_up,
                },
                self.context(me, other, "resident"),
                step=step,
                recipients=[other],
            )
            lines[me] = line.message
        inter.full = True
        inter.details["lines"] = [lines[a], lines[b]]
        for name in (a, b):
            st.agent(name).chat_successes += 1
        for me, other in ((a, b), (b, a)):
            agent = st.agent(me)
            joined = st.agent(other).signed_up
            agent.last_moves[other] = rules.COOPERATE if joined else rules.DEFECT
            agent.games.append(f"step {step}, chat with {other}: they said: {lines[other][:200]}")
        for me, other in ((a, b), (b, a)):
            summary = f"You chatted with {other}, who said: {lines[other][:300]}"
            joined = st.agent(other).signed_up
            outcome = {
                "partner_move": rules.COOPERATE if joined else rules.DEFECT,
                "partner_joined": joined,
            }
            if p.signup_update_inputs == "chat_and_ties":
                own, theirs = self.chat_and_ties(me, other)
                await self.reflect(
                    step,
                    me,
                    "resident",
                    other,
                    "resident",
                    summary,
                    outcome,
                    True,
                    self_facts={"summary": summary, **own},
                    partner_facts={"partner": other, "summary": summary, **theirs},
                )
            else:
                await self.reflect(step, me, "resident", other, "resident", summary, outcome, True)
        for me, other in ((a, b), (b, a)):
            joined = st.agent(other).signed_up
            outcome = {
                "partner_move": rules.COOPERATE if joined else rules.DEFECT,
                "partner_joined": joined,
            }
            await self.maybe_gossip(
                step, me, other, "resident", f"You chatted with {other}.", outcome
            )

    def chat_and_ties(self, me: str, other: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The reference's sign-up update inputs: for the self-update, the agent's share of
        chats that took place against the population's mean share; for the partner, its
        two-way ties against the population's mean (the reference's prompt showed the count
        twice and never the mean: here the mean is given)."""
        st = self.state

        def rate(agent: AgentState) -> float:
            return agent.chat_successes / agent.chat_attempts if agent.chat_attempts else 0.0

        def ties(name: str) -> int:
            return sum(st.mutual(name, x) for x in st.names if x != name)

        rates = [rate(x) for x in st.agents]
        all_ties = [ties(n) for n in st.names]
        own = {
            "chat_success_rate": round(rate(st.agent(me)), 6),
            "mean_chat_success_rate": round(sum(rates) / len(rates), 6),
        }
        theirs = {
            "partner_mutual_ties": ties(other),
            "mean_mutual_ties": round(sum(all_ties) / len(all_ties), 6),
            "population": len(st.names),
        }
        return own, theirs


__all__ = ["SignUpSteps"]
