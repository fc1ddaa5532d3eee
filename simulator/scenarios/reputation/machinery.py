"""The machinery every reputation game shares: the population and step 0, asking and counting
decisions through the decision seam, events, the agents' views and context, the order of a step,
pairing, reflection and rewiring, observation and gossip.

Each game's own step lives in its module (``investment``, ``pd``, ``signup``); ``game`` puts them
together as ``ReputationGame``.
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


class Machinery:
    """What every reputation game shares: asking and counting decisions, announcing events,
    the agents' views and context, pairing, reflection and rewiring, observation and gossip.
    Each game adds its own step (``game_step``) in its module."""

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
        # the prisoner's dilemma's gossip told after all of a step's games (gossip_timing)
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
        await self.game_step(step)
        keep = max(self.params.history_window, 1)
        for agent in self.state.agents:
            agent.games = agent.games[-keep:]
        self.state.step = step
        self.state.finished = step >= self.params.steps

    async def game_step(self, step: int) -> None:
        """The pairs and games of one step (each game's module)."""
        raise NotImplementedError

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


__all__ = ["GAME_SPEAKER", "Machinery", "Population", "initial_state"]
