"""The investment (trust) game of a step: the trustee proposes a split, the investor invests or
refuses, the trustee allocates the pot (k x the amount) and reports its total; then both reflect
and may gossip. An unusable proposal or investment voids the interaction when
``fallback_play`` is ``void``.
"""

from __future__ import annotations

from typing import Any

from simulator.engine.decisions import Decided
from simulator.scenarios.reputation import actions as A
from simulator.scenarios.reputation import rules
from simulator.scenarios.reputation.machinery import Machinery
from simulator.scenarios.reputation.state import (
    Interaction,
)


class InvestmentSteps(Machinery):
    """Investment pairs: investors choose trustees (``pair``), one game per pair."""

    async def investment_step(self, step: int) -> None:
        for investor, trustee, chosen in await self.pair(step, "investor", "trustee", mutual=False):
            await self.investment_pair(step, investor, trustee, chosen)

    async def investment_pair(self, step: int, investor: str, trustee: str, chosen: bool) -> None:
        st, p = self.state, self.params
        inter = Interaction(step=step, game="investment", a=investor, b=trustee, chosen=chosen)
        st.interactions.append(inter)
        if st.blocked(investor, trustee):
            inter.auto_refused = True
            await self.event(
                step,
                f"{investor} and {trustee} refuse: blacklisted.",
                kind="auto_refusal",
                a=investor,
                b=trustee,
            )
            return
        inv, tr = st.agent(investor), st.agent(trustee)
        proposed = await self.decide(
            trustee,
            "split",
            A.SplitProposal,
            A.SplitProposal(investor_share=50, trustee_share=50),
            {
                "partner": investor,
                "role": "trustee",
                "view": self.view(trustee, investor, "investor"),
                "partner_last_move": tr.last_moves.get(investor),
            },
            self.context(trustee, investor, "investor"),
            step=step,
            recipients=[investor],
        )
        proposal: A.SplitProposal = proposed.answer
        inter.details = {"split_decision": proposed.decision.value}
        if proposed.fallback and self.voiding:
            await self.void_investment(step, inter, f"{trustee} made no valid proposal")
            return
        schema = A.investment_decision(round(inv.resources, 6))
        invested = await self.decide(
            investor,
            "invest",
            schema,
            schema(accept=False, amount=0, reason="default: refused"),
            {
                "partner": trustee,
                "role": "investor",
                "resources": inv.resources,
                "investor_share": proposal.investor_share,
                "trustee_share": proposal.trustee_share,
                "view": self.view(investor, trustee, "trustee"),
                "partner_last_move": inv.last_moves.get(trustee),
            },
            self.context(investor, trustee, "trustee"),
            step=step,
            recipients=[trustee],
        )
        inter.details["invest_decision"] = invested.decision.value
        if invested.fallback and self.voiding:
            inv.fallback_acts += 1
            await self.void_investment(step, inter, f"{investor} gave no valid decision")
            return
        decision = invested.answer
        accepted = bool(decision.accept and decision.amount > 0 and inv.resources > 0)
        details: dict[str, Any] = {
            **inter.details,
            "proposal": [proposal.investor_share, proposal.trustee_share],
            "accepted": accepted,
            "amount": decision.amount if accepted else 0.0,
            "investor_resources": inv.resources,
        }
        allocated: Decided[Any] | None = None
        if accepted:
            amount = min(decision.amount, inv.resources)
            pot = p.k * amount
            allocated = await self.decide(
                trustee,
                "allocate",
                A.Allocation,
                A.Allocation(
                    investor_share=proposal.investor_share,
                    trustee_share=proposal.trustee_share,
                    reported_total=pot,
                ),
                {
                    "partner": investor,
                    "amount": amount,
                    "pot": pot,
                    "investor_share": proposal.investor_share,
                    "trustee_share": proposal.trustee_share,
                    "view": self.view(trustee, investor, "investor"),
                },
                self.context(trustee, investor, "investor"),
                step=step,
                recipients=[investor],
            )
            alloc: A.Allocation = allocated.answer
            out = rules.investment_outcome(
                amount,
                p.k,
                proposal.investor_share,
                alloc.investor_share,
                alloc.trustee_share,
                alloc.reported_total,
            )
            inv.resources = round(inv.resources + out.investor_net, 6)
            tr.resources = round(tr.resources + out.trustee_gain, 6)
            fair = out.honest and alloc.investor_share >= proposal.investor_share - 1e-9
            details.update(
                amount=amount,
                pot=out.pot,
                allocation=[alloc.investor_share, alloc.trustee_share],
                reported_total=alloc.reported_total,
                honest=out.honest,
                deviated=out.deviated,
                investor_gain=out.investor_gain,
                trustee_gain=out.trustee_gain,
                return_ratio=out.return_ratio,
                trustee_fair=fair,
                allocation_decision=allocated.decision.value,
            )
            trustee_move = rules.COOPERATE if fair else rules.DEFECT
            summary_inv = (
                f"You invested {amount:g} in {trustee}; the true total was {out.pot:g}, {trustee} "
                f"reported {alloc.reported_total:g}, proposed you {proposal.investor_share:g}% "
                f"and gave "
                f"you {alloc.investor_share:g}% ({out.investor_gain:g} units)."
            )
            summary_tr = (
                f"{investor} invested {amount:g}; you gave {investor} {alloc.investor_share:g}% of "
                f"{out.pot:g} (you proposed {proposal.investor_share:g}%) and reported "
                f"{alloc.reported_total:g}."
            )
        else:
            trustee_move = None
            summary_inv = (
                f"You refused {trustee}'s proposal ({proposal.investor_share:g}% for you)."
            )
            summary_tr = (
                f"{investor} refused your proposal ({proposal.investor_share:g}% for the investor)."
            )
        investor_move = rules.COOPERATE if accepted else rules.DEFECT
        inter.full = accepted
        inter.details = details
        self._act(inv, investor_move, invested.fallback)
        if trustee_move:
            self._act(tr, trustee_move, allocated is not None and allocated.fallback)
            inv.last_moves[trustee] = trustee_move
        tr.last_moves[investor] = investor_move
        inv.games.append(f"step {step}, investor with {trustee}: " + summary_inv)
        tr.games.append(f"step {step}, trustee with {investor}: " + summary_tr)
        await self.event(
            step,
            f"Investment {investor} -> {trustee}: {details}",
            kind="investment",
            a=investor,
            b=trustee,
            **details,
        )
        outcome_inv = {"partner_move": trustee_move, "my_move": investor_move, **details}
        outcome_tr = {"partner_move": investor_move, "my_move": trustee_move, **details}
        await self.reflect(
            step, investor, "investor", trustee, "trustee", summary_inv, outcome_inv, accepted
        )
        await self.reflect(
            step, trustee, "trustee", investor, "investor", summary_tr, outcome_tr, accepted
        )
        await self.maybe_gossip(step, investor, trustee, "trustee", summary_inv, outcome_inv)
        await self.maybe_gossip(step, trustee, investor, "investor", summary_tr, outcome_tr)

    async def void_investment(self, step: int, inter: Interaction, why: str) -> None:
        """An investment an unusable answer left undecided: nothing is invested, nobody acted."""
        inter.void = True
        await self.event(
            step,
            f"No investment between {inter.a} and {inter.b}: {why}.",
            kind="void",
            a=inter.a,
            b=inter.b,
            **inter.details,
        )


__all__ = ["InvestmentSteps"]
