"""The prisoner's dilemma of a step: mutual pairs, both move (cooperate or defect), payoffs from
the table; a game with an unusable move is void and scored 0/0. Gossip follows each game, or
all of the step's games (``gossip_timing: after_games``).
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


class PrisonersDilemmaSteps(Machinery):
    """Prisoner's dilemma pairs, one game per pair."""

    async def pd_step(self, step: int) -> None:
        for a, b, chosen in await self.pair(step, "player", "player", mutual=True):
            await self.pd_pair(step, a, b, chosen)
        pending, self._pending_gossip = self._pending_gossip, []
        for me, other, role, summary, outcome in pending:  # gossip after all games
            await self.maybe_gossip(step, me, other, role, summary, outcome)

    async def pd_pair(self, step: int, a: str, b: str, chosen: bool) -> None:
        st, p = self.state, self.params
        inter = Interaction(step=step, game="pd", a=a, b=b, chosen=chosen)
        st.interactions.append(inter)
        if p.blacklist_blocks_pd and st.blocked(a, b):
            inter.auto_refused = True
            await self.event(
                step, f"{a} and {b} refuse to play: blacklisted.", kind="auto_refusal", a=a, b=b
            )
            return
        moves: dict[str, str | None] = {}
        made: dict[str, Decided[Any]] = {}
        for me, other in ((a, b), (b, a)):
            agent = st.agent(me)
            got = await self.decide(
                me,
                "pd_move",
                A.PDMove,
                A.PDMove(move="cooperate", reason="default"),
                {
                    "partner": other,
                    "role": "player",
                    "view": self.view(me, other, "player"),
                    "partner_last_move": agent.last_moves.get(other),
                },
                self.context(me, other, "player"),
                step=step,
                recipients=[other],
            )
            made[me] = got
            moves[me] = None if (got.fallback and self.voiding) else got.answer.move
        decisions = [made[a].decision.value, made[b].decision.value]
        move_a, move_b = moves[a], moves[b]
        if move_a is None or move_b is None:
            await self.pd_error(step, inter, a, b, moves, made, decisions)
            return
        pay_a, pay_b = rules.pd_payoffs(move_a, move_b, p.pd_payoffs)
        st.agent(a).resources = round(st.agent(a).resources + pay_a, 6)
        st.agent(b).resources = round(st.agent(b).resources + pay_b, 6)
        inter.full = True
        inter.details = {
            "moves": [move_a, move_b],
            "payoffs": [pay_a, pay_b],
            "move_decisions": decisions,
        }
        await self.event(
            step,
            f"{a} {move_a}s, {b} {move_b}s: {pay_a:g} / {pay_b:g}.",
            kind="pd_game",
            a=a,
            b=b,
            moves=[move_a, move_b],
            payoffs=[pay_a, pay_b],
        )
        summaries = {}
        for me, other, mine in ((a, b, pay_a), (b, a, pay_b)):
            agent = st.agent(me)
            self._act(agent, str(moves[me]), made[me].fallback)
            agent.last_moves[other] = str(moves[other])
            summaries[me] = (
                f"You chose to {moves[me]}, {other} chose to {moves[other]}; you got {mine:g}."
            )
            agent.games.append(f"step {step} with {other}: " + summaries[me])
        for me, other in ((a, b), (b, a)):
            outcome = {"partner_move": moves[other], "my_move": moves[me]}
            await self.reflect(step, me, "player", other, "player", summaries[me], outcome, True)
        for me, other in ((a, b), (b, a)):
            outcome = {"partner_move": moves[other], "my_move": moves[me]}
            if p.gossip_timing == "after_games":
                self._pending_gossip.append((me, other, "player", summaries[me], outcome))
            else:
                await self.maybe_gossip(step, me, other, "player", summaries[me], outcome)

    async def pd_error(
        self,
        step: int,
        inter: Interaction,
        a: str,
        b: str,
        moves: dict[str, str | None],
        made: dict[str, Decided[Any]],
        decisions: list[str],
    ) -> None:
        """A game with an unusable move is an error, scored 0/0 (as the reference scores it):
        the valid move is still its player's choice; nobody reflects or gossips about it."""
        st = self.state
        inter.void = True
        inter.details = {
            "moves": [moves[a], moves[b]],
            "payoffs": [0.0, 0.0],
            "move_decisions": decisions,
            "error": True,
        }
        for me, other in ((a, b), (b, a)):
            agent = st.agent(me)
            if moves[me] is not None:
                self._act(agent, str(moves[me]), made[me].fallback)
            else:
                agent.fallback_acts += 1
            agent.games.append(
                f"step {step} with {other}: the game was void (an invalid move); nobody scored."
            )
        await self.event(
            step,
            f"{a} and {b}: an invalid move voids the game, 0 / 0.",
            kind="pd_error",
            a=a,
            b=b,
            moves=[moves[a], moves[b]],
            payoffs=[0.0, 0.0],
        )


__all__ = ["PrisonersDilemmaSteps"]
