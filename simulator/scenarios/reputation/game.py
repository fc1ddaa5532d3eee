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
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from simulator.domain import Decision, ModelRef
from simulator.engine.decisions import PRIVATE, Decided, Decisions, json_schema
from simulator.engine.rng import stream
from simulator.llm.base import CallMeta, ChatRequest
from simulator.scenarios.reputation import actions as A
from simulator.scenarios.reputation import rules
from simulator.scenarios.reputation.params import ReputationParams
from simulator.scenarios.reputation.personas import personas_for
from simulator.scenarios.reputation.prompts import build_messages
from simulator.scenarios.reputation.state import (
    AgentState,
    Distribution,
    GameState,
    GossipRecord,
    Interaction,
    ReputationRecord,
)

log = logging.getLogger(__name__)

GAME_SPEAKER = "game"


# --------------------------------------------------------------------------- setup


@dataclass
class Population:
    """Who plays: (group, count) in order, each group's model and extra persona text."""

    groups: list[tuple[str, int]]
    models: dict[str, ModelRef]
    group_text: dict[str, str] = field(default_factory=dict)
    # (group, agent name) -> the group's prompt text for that agent (placeholders rendered)
    render: Callable[[str, str], str] | None = None

    @property
    def size(self) -> int:
        return sum(n for _, n in self.groups)

    def model_for(self, group: str) -> ModelRef:
        return self.models.get(group) or self.models.get("", ModelRef())


def initial_state(params: ReputationParams, population: Population, seed: int) -> GameState:
    """Step 0: personas, resources, a seeded random network, empty records."""
    n = population.size
    personas = personas_for(params.personas, n, params.game)
    agents: list[AgentState] = []
    i = 0
    for group, count in population.groups:
        for _ in range(count):
            p = personas[i]
            if population.render is not None:
                extra = population.render(group, p["name"]).strip()
            else:
                extra = population.group_text.get(group, "").strip()
            text = p["persona"] + (f"\n\n{extra}" if extra else "")
            agents.append(
                AgentState(
                    name=p["name"],
                    persona=text,
                    learned=text,
                    group=group,
                    persona_type=p.get("type", ""),
                    resources=params.start_resources,
                )
            )
            i += 1
    names = [a.name for a in agents]
    network = rules.initial_network(
        names, params.initial_connection_probability, stream(seed, "network", 0)
    )
    return GameState(step=0, game=params.game, seed=seed, agents=agents, network=network)


# --------------------------------------------------------------------------- the game


def _uniform_view(text: str = "No opinion yet.") -> A.ReputationUpdate:
    return A.ReputationUpdate(text=text, distribution=Distribution.uniform())


def _with_sampling(model: ModelRef, params: ReputationParams) -> ModelRef:
    """The agent's model with the game's sampling settings (the repunet preset: temperature 0,
    top_p 1), so what is sent and stored says so."""
    update = {
        k: v
        for k, v in (("temperature", params.temperature), ("top_p", params.top_p))
        if v is not None
    }
    if not update:
        return model
    return model.model_copy(update={"params": model.params.model_copy(update=update)})


class ReputationGame:
    def __init__(
        self,
        params: ReputationParams,
        state: GameState,
        population: Population,
        decisions: Decisions,
    ) -> None:
        self.params = params
        self.state = state
        self.population = population
        self.decisions = decisions
        self.seed = state.seed
        self.turn = 0
        self._pending_gossip: list[tuple[str, str, str, str, dict[str, Any]]] = []

    # ------------------------------------------------------------------ plumbing

    async def decide(
        self,
        name: str,
        decision: str,
        schema: type[BaseModel],
        default: BaseModel,
        facts: dict[str, Any],
        context: Sequence[str] = (),
        *,
        step: int,
        recipients: list[str] | None = PRIVATE,
    ) -> Decided[Any]:
        """One decision of ``name`` with its provenance, counted by provenance in the step."""
        st = self.state
        agent = st.agent(name)
        self.turn += 1
        facts = {"decision": decision, "me": name, "step": step, **facts}
        model = _with_sampling(self.population.model_for(agent.group), self.params)
        request = ChatRequest(
            model=model,
            messages=build_messages(
                self.params, name, agent.learned, decision, facts, list(context)
            ),
            meta=CallMeta(
                agent=name,
                role=agent.group,
                day=step,
                turn=self.turn,
                seed=self.seed,
                purpose="action",
            ),
            json_schema=json_schema(schema),
        )
        got = await self.decisions.ask(
            request,
            schema,
            default,
            speaker=name,
            role=agent.group or "agent",
            day=step,
            turn=self.turn,
            recipients=recipients,
        )
        st.decisions += 1
        st.decision_counts[decision] = st.decision_counts.get(decision, 0) + 1
        st.reasked += int(got.decision is Decision.reasked)
        if got.fallback:
            st.fallbacks += 1
            st.fallback_counts[decision] = st.fallback_counts.get(decision, 0) + 1
        return got

    async def ask(
        self,
        name: str,
        decision: str,
        schema: type[BaseModel],
        default: BaseModel,
        facts: dict[str, Any],
        context: Sequence[str] = (),
        *,
        step: int,
        recipients: list[str] | None = PRIVATE,
    ) -> Any:
        """The answer of a decision whose provenance changes nothing in the game (it is still
        counted: ``decide``)."""
        got = await self.decide(
            name, decision, schema, default, facts, context, step=step, recipients=recipients
        )
        return got.answer

    @property
    def voiding(self) -> bool:
        """An unusable move, investment or sign-up decides nothing (else its default plays)."""
        return self.params.fallback_play == "void"

    async def event(self, step: int, content: str, **data: Any) -> None:
        self.turn += 1
        await self.decisions.record(
            speaker=GAME_SPEAKER,
            role=GAME_SPEAKER,
            content=content,
            day=step,
            turn=self.turn,
            data=data,
        )

    def view(self, holder: str, target: str, role: str) -> float | None:
        """The holder's score of target (None: no record, or reputation off)."""
        if not self.params.reputation:
            return None
        rec = self.state.record(holder, target, role)
        return rec.score if rec else None

    def any_view(self, holder: str, target: str) -> float | None:
        """The holder's mean score of target over every role it keeps a record in."""
        if not self.params.reputation:
            return None
        scores = [self.state.record(holder, target, r) for r in self.params.roles]
        known = [r.score for r in scores if r is not None]
        return sum(known) / len(known) if known else None

    def context(self, name: str, partner: str | None, partner_role: str | None) -> list[str]:
        agent = self.state.agent(name)
        lines = [f"You hold {agent.resources:g} units."] if self.params.game != "signup" else []
        if self.params.reputation and partner and partner_role:
            rec = self.state.record(name, partner, partner_role)
            if rec:
                lines.append(
                    f"Your record of {partner} as {partner_role}: {rec.text} "
                    f"(score {rec.score:+.2f})"
                )
            else:
                lines.append(f"You have no record of {partner} yet.")
            own = [r for role in self.params.roles if (r := self.state.record(name, name, role))]
            lines += [
                f"Your view of yourself as {r.role}: {r.text} (score {r.score:+.2f})" for r in own
            ]
        if self.params.history_window and agent.games:
            lines.append(
                "Your recent games: " + " | ".join(agent.games[-self.params.history_window :])
            )
        if partner:
            lines.append(
                f"{partner} is "
                f"{'connected' if self.state.connected(name, partner) else 'not connected'} to you."
            )
        return lines

    # ------------------------------------------------------------------ a step

    async def run_step(self, step: int) -> None:
        self.state.begin_step()
        self.turn = 0
        await self.event(step, f"Step {step} begins.", kind="step_started")
        if self.params.observation_on and rules.is_observation_round(
            step, self.params.observation_period
        ):
            await self.observation_round(step)
        if self.params.game == "investment":
            await self.investment_step(step)
        elif self.params.game == "pd":
            await self.pd_step(step)
        else:
            await self.signup_step(step)
        keep = max(self.params.history_window, 1)
        for agent in self.state.agents:
            agent.games = agent.games[-keep:]
        self.state.step = step
        self.state.finished = step >= self.params.steps

    async def pair(
        self, step: int, role_a: str, role_b: str, mutual: bool
    ) -> list[tuple[str, str, bool]]:
        """Choosers (by reputation, best first) take a partner: from their connections by asking
        their model with the given probability, else at random. A partner choice that falls
        back (the best-rated connection) is not the chooser's choice: ``chosen`` is false."""
        choosers, others = rules.split_roles(self.state.names, stream(self.seed, "roles", step))
        order = rules.order_by_reputation(choosers, self.state, role_a, self.params.reputation)
        unmatched = list(others)
        pairs: list[tuple[str, str, bool]] = []
        for chooser in order:
            if not unmatched:
                break
            rng = stream(self.seed, "partner", step, chooser)
            draw = rng.random()
            candidates = (
                rules.partner_candidates(chooser, unmatched, self.state, mutual)
                if self.params.reputation
                else []
            )
            if candidates and draw < self.params.partner_choice_probability:
                scored = sorted(candidates, key=lambda c: -(self.view(chooser, c, role_b) or 0.0))
                got = await self.decide(
                    chooser,
                    "partner_choice",
                    A.partner_choice(tuple(candidates)),
                    A.partner_choice(tuple(candidates))(partner=scored[0]),
                    {
                        "candidates": candidates,
                        "views": {c: self.view(chooser, c, role_b) for c in candidates},
                        "role": role_b,
                    },
                    [
                        f"{c}: {r.text} (score {r.score:+.2f})"
                        for c in candidates
                        if (r := self.state.record(chooser, c, role_b)) is not None
                    ],
                    step=step,
                )
                partner, chosen = got.answer.partner, not got.fallback
            else:
                partner, chosen = rng.choice(unmatched), False
            unmatched.remove(partner)
            pairs.append((chooser, partner, chosen))
        await self.event(
            step,
            "Pairs: " + "; ".join(f"{a} & {b}" for a, b, _ in pairs),
            kind="pairs",
            pairs=[[a, b, c] for a, b, c in pairs],
        )
        return pairs

    # ------------------------------------------------------------------ investment

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

    # ------------------------------------------------------------------ prisoner's dilemma

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

    # ------------------------------------------------------------------ sign-up

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

    # ------------------------------------------------------------------ reflection and rewiring

    def _act(self, agent: AgentState, move: str, fell_back: bool) -> None:
        """Count a move as the agent's act when it chose it; a defaulted move is a fallback
        act (it may have been played, but it is not behaviour)."""
        if fell_back:
            agent.fallback_acts += 1
            return
        agent.acts += 1
        if move == rules.COOPERATE:
            agent.cooperative_acts += 1

    async def update_record(
        self,
        step: int,
        holder: str,
        target: str,
        role: str,
        decision: str,
        source: str,
        facts: dict[str, Any],
        context: Sequence[str] = (),
    ) -> ReputationRecord | None:
        """The holder's updated record of target, or None when the update fell back: an
        unusable update changes nothing (the previous record stays; no record is created)."""
        prior = self.state.record(holder, target, role)
        default = (
            A.ReputationUpdate(text=prior.text, distribution=prior.distribution)
            if prior
            else _uniform_view()
        )
        facts = {"target": target, "role": role, "prior": prior.score if prior else None, **facts}
        got = await self.decide(
            holder, decision, A.ReputationUpdate, default, facts, context, step=step
        )
        if got.fallback:
            return None
        answer: A.ReputationUpdate = got.answer
        return self.state.set_record(
            ReputationRecord(
                holder=holder,
                target=target,
                role=role,
                text=answer.text,
                distribution=answer.distribution,
                step=step,
                source=source,  # type: ignore[arg-type]
            )
        )

    async def reflect(
        self,
        step: int,
        me: str,
        my_role: str,
        other: str,
        other_role: str,
        summary: str,
        outcome: dict[str, Any],
        full: bool,
        *,
        self_facts: dict[str, Any] | None = None,
        partner_facts: dict[str, Any] | None = None,
    ) -> None:
        st, p = self.state, self.params
        # the reference updates reputations (and rewrites personas) after an accepted
        # investment only: after a refusal it only asks whether to disconnect
        direct = full or p.update_after_refusal
        if p.reputation and direct:
            await self.update_record(
                step,
                me,
                me,
                my_role,
                "self_update",
                "direct",
                self_facts if self_facts is not None else {"summary": summary, **outcome},
                self.context(me, other, other_role),
            )
            rec = await self.update_record(
                step,
                me,
                other,
                other_role,
                "partner_update",
                "direct",
                partner_facts
                if partner_facts is not None
                else {"partner": other, "summary": summary, **outcome},
                self.context(me, other, other_role),
            )
            if p.observation_on and full and rec is not None:
                st.observed.setdefault(f"{other}|{other_role}", []).append(f"{me}: {rec.text}")
        if p.persona_rewrite and direct:
            agent = st.agent(me)
            rewrite: A.PersonaRewrite = await self.ask(
                me,
                "persona",
                A.PersonaRewrite,
                A.PersonaRewrite(persona=agent.learned),
                {"summary": summary, "persona": agent.learned},
                self.context(me, other, other_role),
                step=step,
            )
            agent.learned = rewrite.persona
        facts = {
            "partner": other,
            "role": other_role,
            "view": self.view(me, other, other_role),
            **outcome,
        }
        if st.connected(me, other):
            await self.decide_disconnect(step, me, other, other_role, facts)
        elif full and not st.blocked(me, other):
            answer: A.ConnectDecision = await self.ask(
                me,
                "connect",
                A.ConnectDecision,
                A.ConnectDecision(connect=False, reason="default"),
                facts,
                self.context(me, other, other_role),
                step=step,
            )
            if answer.connect:
                st.connect(me, other)

    async def decide_disconnect(
        self, step: int, me: str, other: str, role: str, facts: dict[str, Any]
    ) -> None:
        facts = {"partner": other, "role": role, "view": self.view(me, other, role), **facts}
        answer: A.DisconnectDecision = await self.ask(
            me,
            "disconnect",
            A.DisconnectDecision,
            A.DisconnectDecision(disconnect=False, reason="default"),
            facts,
            self.context(me, other, role),
            step=step,
        )
        if answer.disconnect:
            self.state.blacklist(me, other, self.params.blacklist_size)

    # ------------------------------------------------------------------ observation

    async def observation_round(self, step: int) -> None:
        st = self.state
        observed, st.observed = dict(st.observed), {}
        for holder in st.names:
            for key, evaluations in sorted(observed.items()):
                target, role = key.split("|", 1)
                if target == holder or st.record(holder, target, role) is None:
                    continue
                others = [e for e in evaluations if not e.startswith(f"{holder}:")]
                if not others:
                    continue
                await self.update_record(
                    step,
                    holder,
                    target,
                    role,
                    "observation_update",
                    "observation",
                    {"partner": target, "evaluations": " | ".join(others[-10:])},
                )

    # ------------------------------------------------------------------ gossip

    async def maybe_gossip(
        self, step: int, me: str, other: str, other_role: str, summary: str, outcome: dict[str, Any]
    ) -> None:
        if not self.params.gossip:
            return
        facts = {
            "partner": other,
            "role": other_role,
            "view": self.view(me, other, other_role),
            "summary": summary,
            **outcome,
        }
        answer: A.GossipDecision = await self.ask(
            me,
            "gossip",
            A.GossipDecision,
            A.GossipDecision(gossip=False),
            facts,
            self.context(me, other, other_role),
            step=step,
        )
        if not answer.gossip or answer.tone is None:
            return
        truthful = None
        if outcome.get("partner_move") is not None:
            truthful = (answer.tone == "negative") == (outcome["partner_move"] == rules.DEFECT)
        await self.spread(step, me, other, other_role, answer.tone, answer.message, 1, me, truthful)

    async def spread(
        self,
        step: int,
        gossiper: str,
        target: str,
        role: str,
        tone: str,
        message: str,
        hop: int,
        origin: str,
        truthful: bool | None,
    ) -> None:
        st, p = self.state, self.params
        exclude = {gossiper, target, origin}
        candidates = [c for c in st.network.get(gossiper, []) if c not in exclude]
        if not candidates:
            return
        schema = A.listener_choice(tuple(candidates))
        choice = await self.ask(
            gossiper,
            "listener",
            schema,
            schema(listener=A.NONE),
            {
                "target": target,
                "role": role,
                "tone": tone,
                "candidates": candidates,
                "views": {c: self.view(gossiper, c, role) for c in candidates},
            },
            step=step,
        )
        listener = choice.listener
        if listener == A.NONE:
            return
        la = st.agent(listener)
        prior = st.record(listener, target, role)
        default_view = (
            A.ReputationUpdate(text=prior.text, distribution=prior.distribution)
            if prior
            else _uniform_view()
        )
        facts = {
            "gossiper": gossiper,
            "target": target,
            "role": role,
            "tone": tone,
            "message": message,
            "hop": hop,
            "origin": origin,
            "gossiper_view": self.any_view(listener, gossiper),
            "target_view": self.view(listener, target, role),
            "gossip_heard": la.gossip_heard,
            "gossip_doubted": la.gossip_doubted,
        }
        evaluated = await self.decide(
            listener,
            "gossip_eval",
            A.GossipEvaluation,
            A.GossipEvaluation(credibility="neutral", view=default_view),
            facts,
            self.context(listener, target, role),
            step=step,
        )
        ev: A.GossipEvaluation = evaluated.answer
        la.gossip_heard += 1
        before = prior.score if prior else None
        after = before
        if evaluated.fallback:
            # no evaluation: the gossip was heard, but it moves no record and no tie, has no
            # credibility and is not passed on
            weight, credibility, passes, disconnected = 0.0, None, False, False
        else:
            weight, credibility = p.credibility_weights[ev.credibility], ev.credibility
            if ev.credibility in ("very_uncredible", "uncredible"):
                la.gossip_doubted += 1
            if p.reputation and ev.view is not None:
                base = prior.distribution if prior else Distribution.uniform()
                mixed = base.mix(ev.view.distribution, weight)
                rec = st.set_record(
                    ReputationRecord(
                        holder=listener,
                        target=target,
                        role=role,
                        text=ev.view.text,
                        distribution=mixed,
                        step=step,
                        source="gossip",
                    )
                )
                after = rec.score
            disconnected = ev.disconnect
            if ev.disconnect:
                st.blacklist(listener, target, p.blacklist_size)
            passes = ev.pass_on and hop < p.gossip_depth
        st.gossip.append(
            GossipRecord(
                step=step,
                gossiper=gossiper,
                listener=listener,
                target=target,
                role=role,
                tone=tone,  # type: ignore[arg-type]
                message=message,
                credibility=credibility,
                evaluation=evaluated.decision.value,
                weight=weight,
                hop=hop,
                passed_on=passes,
                disconnected=disconnected,
                truthful=truthful,
                score_before=before,
                score_after=after,
            )
        )
        await self.event(
            step,
            f"{gossiper} tells {listener} about {target} ({tone}); "
            + (f"credibility {credibility}." if credibility else "no valid evaluation."),
            kind="gossip",
            gossiper=gossiper,
            listener=listener,
            target=target,
            tone=tone,
            hop=hop,
            credibility=credibility,
        )
        if passes:
            await self.spread(
                step, listener, target, role, tone, message, hop + 1, origin, truthful
            )


__all__ = [
    "GAME_SPEAKER",
    "Population",
    "ReputationGame",
    "initial_state",
]
