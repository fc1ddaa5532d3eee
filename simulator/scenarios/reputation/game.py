"""The step loop of the reputation games: one pipeline, treatments as flags.

``ReputationGame.run_step`` plays one step through the decision seam
(``simulator.engine.decisions``): every decision of every agent is one ``ask`` with a schema and a
documented default; every public event one ``record``. Both sides of the seam serve the same loop:

- ``JournalDecisions`` (a conversation): each decision is ``Journal.action`` (stored before use,
  validated, re-asked, defaulted with a recorded fallback), each event ``Journal.record``; after
  each step the runner stores a snapshot. A resumed run restarts from the latest snapshot and
  replays the partial step from the stored messages;
- ``InProcessDecisions`` (calibration, no database): scripted dryrun policies answered
  in-process.

Order of a step: (observation re-rating) -> pairing -> per pair: the game, then each side's
reflection (self record, partner record, persona rewrite, connect/disconnect), then gossip.

What the games share is in ``machinery``; each game's step in its own module: ``investment``,
``pd`` (prisoner's dilemma) and ``signup``.
"""

from __future__ import annotations

from simulator.scenarios.reputation.investment import InvestmentSteps
from simulator.scenarios.reputation.machinery import GAME_SPEAKER, Population, initial_state
from simulator.scenarios.reputation.pd import PrisonersDilemmaSteps
from simulator.scenarios.reputation.signup import SignUpSteps


class ReputationGame(InvestmentSteps, PrisonersDilemmaSteps, SignUpSteps):
    """One reputation game (``params.game``) over a population, step by step."""

    async def game_step(self, step: int) -> None:
        if self.params.game == "investment":
            await self.investment_step(step)
        elif self.params.game == "pd":
            await self.pd_step(step)
        else:
            await self.signup_step(step)


__all__ = [
    "GAME_SPEAKER",
    "Population",
    "ReputationGame",
    "initial_state",
]
