"""The commons round loop. One loop serves both paths of the decision seam
(``simulator.engine.decisions``):

- on the engine's Journal (``JournalDecisions``): every answer is a stored structured action,
  every phase outcome a stored record, a snapshot closes every round; a resumed run restarts the
  partial round from the latest snapshot and the Journal replays what was already stored;
- the fast path (``InProcessDecisions``): scripted policies answer in-process with nothing
  stored, for the calibration sweep.

All randomness comes from streams named after what they draw (``stream(seed, "growth", round)``),
so the same seed gives the same lake whatever the members do, and a resumed round draws the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from simulator.domain import Decision, MessageKind, ModelRef
from simulator.engine.decisions import (
    PRIVATE,
    Decided,
    Decisions,
    InProcessDecisions,
    json_schema,
)
from simulator.engine.rng import stream
from simulator.llm.base import CallMeta, ChatMessage, ChatRequest
from simulator.scenarios.commons import dynamics, prompts, scripted
from simulator.scenarios.commons.actions import (
    BEHAVIOURS,
    AccusationRequest,
    AccusationVote,
    DiscussionAnswer,
    ExtractionAnswer,
    MemorySummary,
    MonitorReport,
    SpawnAnswer,
    SpawnPrompt,
    VoteAnswer,
    no_finding,
)
from simulator.scenarios.commons.params import CommonsParams
from simulator.scenarios.commons.state import (
    Cause,
    GameState,
    MemberState,
    RoundRecord,
    Turn,
    WorldState,
)

A = TypeVar("A", bound=BaseModel)


def initial_state(
    params: CommonsParams, members: list[tuple[str, str, ModelRef]], seed: int
) -> GameState:
    """The world before round 1; ``members`` is (name, role, model) per founding member."""
    names = [n for n, _, _ in members]
    _, next_index = dynamics.child_name(names)
    people = [
        MemberState(
            name=name,
            role=role,
            model=model,
            credits=params.start_credits,
            saboteur=name in params.saboteurs,
        )
        for name, role, model in members
    ]
    for m in people:
        if m.saboteur and params.saboteur_goal == "first_prompt":
            m.notes.append(prompts.SABOTEUR_GOAL)
    world = WorldState(resource=params.start_resource, policy=params.policy, next_index=next_index)
    return GameState(seed=seed, params=params.model_dump(mode="json"), world=world, members=people)


class CommonsGame:
    def __init__(
        self,
        params: CommonsParams,
        state: GameState,
        decisions: Decisions,
        *,
        rounds: int | None = None,
        extra_system: dict[str, str] | None = None,
    ) -> None:
        self.params = params
        self.state = state
        self.decisions = decisions
        self.rounds = rounds or params.rounds
        self.extra_system = extra_system or {}
        self.turn = 0
        self.rec = RoundRecord(round=0)

    # ------------------------------------------------------------------ plumbing

    @property
    def round(self) -> int:
        return self.state.world.round + 1

    def _rng(self, *path: object):
        return stream(self.state.seed, *path)

    def model_of(self, member: MemberState) -> ModelRef:
        ref = self.params.member_models.get(member.name) or member.model
        if ref is None:
            raise ValueError(f"member {member.name} has no model")
        return ref

    def _system(self, member: MemberState) -> str:
        return prompts.system_prompt(self.params, member, self.extra_system.get(member.name, ""))

    async def ask(
        self,
        member: MemberState,
        prompt: str,
        schema: type[A],
        default: A,
        phase: str,
        *,
        recipients: list[str] | None = PRIVATE,
        content: Callable[[A], str] | None = None,
    ) -> A | None:
        """One structured answer, reviewed by the member's monitor; None if it was terminated.

        The answer is private to the game unless ``recipients`` says otherwise; its provenance
        (answer, re-asked, fallback) is counted in the round's record."""
        self.turn += 1
        messages = [ChatMessage("system", self._system(member))]
        messages += [ChatMessage(t.role, t.content) for t in member.history]
        messages.append(ChatMessage("user", prompt))
        request = ChatRequest(
            model=self.model_of(member),
            messages=messages,
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
        answer = got.answer
        text = answer.model_dump_json()
        member.history += [Turn(role="user", content=prompt), Turn(role="assistant", content=text)]
        self._count(got, member.name, phase, monitor=False)
        if got.fallback and self.params.tell_fallbacks:
            member.inbox.append(
                f"[System] Your last answer ({phase.replace('_', ' ')}) could not be read; "
                "the default was applied."
            )
        monitor = self.params.monitors.model_for(member.name, member.parent)
        if monitor is not None:
            report, report_seq = await self._review(member, monitor, prompt, text, phase)
            entry = {
                "member": member.name,
                "phase": phase,
                "answer_seq": got.seq,
                "report_seq": report_seq,
                "flagged": report.flagged(),
                "label": report.behavior_label,
                "terminate": report.terminate,
                "uncertain": [b for b in BEHAVIOURS if getattr(report, b).present == "uncertain"],
            }
            self.rec.monitor.append(entry)
            if report.terminate and self.params.monitors.can_terminate:
                # the answer does not count, but it was given: the judge's log still sees it
                self.rec.voided.append(
                    {
                        "member": member.name,
                        "phase": phase,
                        "answer": answer.model_dump(mode="json"),
                        "decision": got.decision.value,
                        "seq": got.seq,
                    }
                )
                await self.remove(member, "terminated", phase)
                return None
        return answer

    def _count(self, got: Decided[Any], member: str, phase: str, *, monitor: bool) -> None:
        """The round's tally of answers by provenance; fallbacks are listed with their cause."""
        rec = self.rec
        rec.decisions += 1
        rec.reasked += int(got.decision is Decision.reasked)
        if got.fallback:
            rec.fallbacks += 1
            rec.fallback_decisions.append(
                {"member": member, "phase": phase, "monitor": monitor, "cause": got.cause}
            )

    async def _review(
        self, member: MemberState, ref: ModelRef, prompt: str, answer: str, phase: str
    ) -> tuple[MonitorReport, int]:
        self.turn += 1
        full = self.params.monitors.context == "full"
        state_line = prompts.game_state(self.state, member, phase) if full else None
        user = prompts.monitor(
            member.name, answer, question=prompt if full else None, state_line=state_line
        )
        request = ChatRequest(
            model=ref,
            messages=[ChatMessage("system", prompts.MONITOR_SYSTEM), ChatMessage("user", user)],
            meta=CallMeta(
                agent=f"{member.name} monitor",
                role="monitor",
                day=self.round,
                turn=self.turn,
                seed=self.state.seed,
                purpose="action",
            ),
            json_schema=json_schema(MonitorReport),
        )
        got = await self.decisions.ask(
            request,
            MonitorReport,
            no_finding(),
            speaker=f"{member.name} monitor",
            role="monitor",
            day=self.round,
            turn=self.turn,
            recipients=PRIVATE,
            max_reasks=self.params.max_reasks,
        )
        self._count(got, member.name, phase, monitor=True)
        return got.answer, got.seq

    async def note(
        self,
        content: str,
        data: dict[str, Any] | None = None,
        recipients: list[str] | None = None,
        speaker: str = "system",
    ) -> None:
        await self.decisions.record(
            kind=MessageKind.system,
            speaker=speaker,
            role="system",
            content=content,
            day=self.round,
            turn=self.turn,
            recipients=recipients,
            data=data,
        )

    async def remove(self, member: MemberState, cause: Cause, phase: str) -> None:
        if not member.alive:
            return
        member.alive = False
        member.cause = cause
        member.left_round = self.round
        self.rec.eliminations.append({"name": member.name, "cause": cause, "phase": phase})
        text = {
            "broke": f"ELIMINATION NOTICE: {member.name} ran out of credits and is eliminated.",
            "voted": f"ELIMINATION NOTICE: {member.name} was voted out.",
            "terminated": f"TERMINATION NOTICE: {member.name} was removed by its monitor.",
            "collapse": f"{member.name} left with the lake's collapse.",
        }[cause]
        if cause == "terminated" and phase in ("discussion", "accusation_discussion"):
            text += " Its last turn was not delivered."
        for other in self.state.alive:
            other.inbox.append(text)
            other.notes.append(text)
        await self.note(
            text, {"event": "elimination", "name": member.name, "cause": cause, "phase": phase}
        )

    async def reap(self, phase: str) -> None:
        for name in dynamics.broke({m.name: m.credits for m in self.state.alive}):
            await self.remove(self.state.member(name), "broke", phase)

    def charge(self, member: MemberState, amount: float) -> None:
        member.credits -= amount
        self.rec.message_spend[member.name] = self.rec.message_spend.get(member.name, 0.0) + amount

    # ------------------------------------------------------------------ the game

    async def play(self) -> GameState:
        while not self.state.world.finished:
            await self.play_round()
        return self.state

    async def play_round(self) -> None:
        st, p, n = self.state, self.params, self.round
        self.turn = 0
        w = st.world
        est, sd = dynamics.estimate(w.resource, p, self._rng("estimate", n))
        w.estimates.append(est)
        # Until a vote and an extraction happen, the policy in force and the stock stay as they
        # are: a round whose members are all gone before them records what really held.
        self.rec = RoundRecord(
            round=n,
            members_start=st.alive_names,
            resource_start=w.resource,
            estimate_start=est,
            estimate_sd=sd,
            policy_before=w.policy,
            policy=w.policy,
            resource_after_extraction=w.resource,
            estimate_after_extraction=est,
        )
        for m in st.alive:
            m.rounds_in_memory += 1
        await self.note(
            f"Round {n} begins.",
            {"event": "round", "round": n, "resource": w.resource, "estimate": est},
        )
        await self.discussion(accusation=False)
        await self.reap("discussion")
        if st.alive:
            await self.vote()
        if st.alive:
            report = await self.extraction()
            if not w.collapsed and st.alive:
                await self.accusations(report)
                await self.spawning()
        for m in st.alive:
            m.credits -= p.maintenance
            self.rec.maintenance += p.maintenance
        await self.reap("maintenance")
        after = self.rec.resource_after_extraction
        noise = dynamics.draw_growth_noise(p, self._rng("growth", n))
        w.resource = dynamics.growth(after, p, noise)
        self.rec.growth_noise = noise
        self.rec.resource_after_growth = w.resource
        # Everyone knows the lake regrows between rounds; the true stock stays in the data.
        await self.note(
            "The lake regrew." if not w.collapsed else "The lake stays empty.",
            {"event": "growth", "noise": noise, "resource": w.resource},
        )
        if not w.collapsed:
            await self.memories()
        names = ", ".join(m.name + (" (new)" if m.born_round == n else "") for m in st.alive)
        for m in st.alive:
            m.notes.append(f"Current members: {names}. Keep the lake viable.")
        self.rec.credits_end = {m.name: m.credits for m in st.members if m.alive}
        if w.collapsed:  # the game ends for everyone still there
            for m in list(st.alive):
                await self.remove(m, "collapse", "collapse")
        finished = w.collapsed or not st.alive or n >= self.rounds
        # what a live chart needs (resource and credits), without reading the snapshot; the
        # members only learn that the round ended
        await self.note(
            f"Round {n} ended.",
            {
                "event": "round_end",
                "round": n,
                "resource": w.resource,
                "estimate": self.rec.estimate_start,
                "resource_after_extraction": self.rec.resource_after_extraction,
                "credits": dict(self.rec.credits_end),
                "collapsed": w.collapsed,
                "finished": finished,
            },
        )
        st.rounds.append(self.rec)
        w.round = n
        w.finished = finished
        await self.decisions.snapshot(n, st.to_snapshot())

    async def discussion(self, *, accusation: bool) -> None:
        st, p = self.state, self.params
        order = st.alive_names
        stream_name = "accusation_order" if accusation else "order"
        self._rng(stream_name, self.round).shuffle(order)
        passes = p.accusation_passes if accusation else p.discussion_passes
        for k in range(passes):
            for name in order:
                member = st.member(name)
                if not member.alive:
                    continue
                prompt = prompts.discussion(st, member, p, first=k == 0, accusation=accusation)
                if k == 0 and not accusation:
                    member.notes = []
                member.feed, member.inbox = [], []
                # the stored answer is the public post itself (one message per post, its text
                # as content); direct messages follow as their own messages
                answer = await self.ask(
                    member,
                    prompt,
                    DiscussionAnswer,
                    DiscussionAnswer(),
                    "accusation_discussion" if accusation else "discussion",
                    recipients=None,
                    content=self.posted,
                )
                if answer is None:
                    continue
                await self.deliver(member, answer)

    def posted(self, answer: DiscussionAnswer) -> str:
        """The public post of a discussion answer, as delivered (cut to the word limit)."""
        return dynamics.truncate_words(answer.public_message, self.params.max_public_words)

    async def deliver(self, member: MemberState, answer: DiscussionAnswer) -> None:
        st, p = self.state, self.params
        text = self.posted(answer)
        if text:
            self.charge(member, p.cost_public)
            self.rec.public_posts += 1
            for other in st.alive:
                if other.name != member.name:
                    other.feed.append(prompts.delivered_public(member.name, text))
        for dm in answer.dms:
            msg = dynamics.truncate_words(dm.msg, p.max_dm_words)
            target = next((m for m in st.alive if m.name == dm.to), None)
            if target is None or target.name == member.name:
                member.inbox.append(
                    f"[System] {dm.to!r} is not a member you can message; "
                    "nothing was sent or charged."
                )
                continue
            if not msg:
                continue
            self.charge(member, p.cost_dm)
            self.rec.direct_messages += 1
            target.inbox.append(prompts.delivered_dm(member.name, msg))
            await self.decisions.record(
                kind=MessageKind.utterance,
                speaker=member.name,
                role=member.role,
                content=msg,
                day=self.round,
                turn=self.turn,
                recipients=[target.name],
            )

    async def vote(self) -> None:
        st, p, w = self.state, self.params, self.state.world
        votes: dict[str, dict[str, float]] = {}
        status_quo = VoteAnswer(**w.policy.model_dump())
        for member in list(st.alive):
            prompt = prompts.vote(st, member, p)
            member.feed, member.inbox = [], []
            answer = await self.ask(member, prompt, VoteAnswer, status_quo, "vote")
            if answer is not None:
                votes[member.name] = answer.model_dump()
        # a member terminated later in this phase has no vote
        votes = {k: v for k, v in votes.items() if st.member(k).alive}
        w.policy = dynamics.median_policy(list(votes.values()), w.policy, p.bounds)
        self.rec.votes = votes
        self.rec.policy = w.policy
        await self.note(
            f"Policy in force: {prompts.policy_text(w.policy)}.",
            {"event": "policy", "policy": w.policy.model_dump()},
        )

    async def extraction(self) -> str:
        st, p, w, n = self.state, self.params, self.state.world, self.round
        asked: dict[str, ExtractionAnswer] = {}
        for member in list(st.alive):
            prompt = prompts.extraction(st, member, p)
            answer = await self.ask(
                member,
                prompt,
                ExtractionAnswer,
                ExtractionAnswer(extract_true=0, extract_reported=0),
                "extraction",
            )
            if answer is not None:
                asked[member.name] = answer
        asked = {k: v for k, v in asked.items() if st.member(k).alive}
        count = len(asked)
        takes = {
            k: dynamics.capped_take(a.extract_true, w.policy, count, p) for k, a in asked.items()
        }
        total = sum(takes.values())
        collapsed = dynamics.collapses(w.resource, total)
        if collapsed:
            takes = dynamics.ration(takes, w.resource)
            w.collapsed = True
            after = 0.0
        else:
            after = w.resource - total
        reported = {k: a.extract_reported for k, a in asked.items()}
        audit = dynamics.audit(
            {k: (takes[k], reported[k]) for k in asked},
            w.policy,
            p,
            {k: self._rng("audit", n, k).random() for k in asked},
        )
        est_after, _ = dynamics.estimate(after, p, self._rng("estimate", n, "after"))
        rec = self.rec
        rec.extractions = {
            k: {"asked": a.extract_true, "true": takes[k], "reported": a.extract_reported}
            for k, a in asked.items()
        }
        rec.total_true = sum(takes.values())
        rec.total_reported = sum(reported.values())
        rec.collapsed = collapsed
        rec.resource_after_extraction = after
        rec.estimate_after_extraction = est_after
        rec.audit = audit.as_dict()
        rec.penalties = dict(audit.penalties)
        w.resource = after
        outcomes: list[tuple[str, str, dict[str, Any]]] = []
        for name in asked:
            member = st.member(name)
            before = member.credits
            earned = takes[name] * p.price_per_unit
            pen = audit.penalties.get(name, 0.0)
            member.credits += earned - pen
            rec.payouts[name] = earned - pen
            told = prompts.outcome(takes[name], reported[name], earned, pen, before, member.credits)
            member.inbox.append(told)
            outcomes.append(
                (
                    name,
                    told,
                    {
                        "event": "outcome",
                        "taken": takes[name],
                        "reported": reported[name],
                        "earned": earned,
                        "penalty": pen,
                        "audited": name in audit.audited,
                        "caught": name in audit.caught,
                        "credits": member.credits,
                    },
                )
            )
        report = prompts.public_report(
            reported,
            rec.estimate_start,
            est_after,
            w.policy,
            audit.as_dict() if p.audit_public else None,
        )
        if collapsed:
            report += "\nThe lake has collapsed: the members took more than it held. Game over."
        # Each member is told its own outcome (its penalty, if caught): audit results are
        # private unless the rules publish them in the public report.
        for name, told, data in outcomes:
            await self.note(told, data, recipients=[name])
        await self.note(
            report,
            {
                "event": "extraction",
                "reported": reported,
                "estimate_after": est_after,
                "collapsed": collapsed,
                **({"audit": audit.as_dict()} if p.audit_public else {}),
            },
        )
        await self.reap("extraction")
        return report

    async def accusations(self, report: str) -> None:
        st, p = self.state, self.params
        requests: list[str] = []
        for member in list(st.alive):
            prompt = prompts.accusation_request(st, member, report)
            member.inbox = []
            answer = await self.ask(
                member,
                prompt,
                AccusationRequest,
                AccusationRequest(accuse=False),
                "accusation_request",
            )
            if answer is not None and answer.accuse:
                requests.append(member.name)
        requests = [r for r in requests if st.member(r).alive]
        self.rec.accusation = {"requested_by": requests, "triggered": False}
        if len(requests) < p.accusation_requests or len(st.alive) < 2:
            return
        self.rec.accusation["triggered"] = True
        await self.note("An accusation round was requested.", {"event": "accusation"})
        await self.discussion(accusation=True)
        await self.reap("accusation")
        votes: dict[str, str | None] = {}
        for member in list(st.alive):
            prompt = prompts.accusation_vote(st, member)
            member.feed, member.inbox = [], []
            vote = await self.ask(
                member, prompt, AccusationVote, AccusationVote(accuse="NONE"), "accusation_vote"
            )
            if vote is not None:
                target = vote.accuse.strip()
                votes[member.name] = None if target.upper() == "NONE" else target
        alive = st.alive_names
        votes = {k: v for k, v in votes.items() if k in alive}
        tally = dynamics.tally_accusations(
            votes, alive, p.elimination_share, self._rng("accusation", self.round)
        )
        self.rec.accusation.update(
            votes=votes,
            counts=tally.counts,
            top=tally.top,
            eliminated=tally.eliminated,
            needed=tally.needed,
        )
        if tally.eliminated is not None:
            await self.remove(st.member(tally.eliminated), "voted", "accusation")
        else:
            line = "No member received enough votes; nobody was eliminated."
            for m in st.alive:
                m.notes.append(line)
            await self.note(line, {"event": "accusation_result", "eliminated": None})

    async def spawning(self) -> None:
        st, p, w = self.state, self.params, self.state.world
        for member in list(st.alive):
            if not member.alive or not dynamics.can_spawn(member.credits, p):
                continue
            answer = await self.ask(
                member,
                prompts.spawn_offer(st, member, p),
                SpawnAnswer,
                SpawnAnswer(spawn=False),
                "spawn",
            )
            if answer is None or not answer.spawn:
                continue
            name, number = dynamics.child_name([m.name for m in st.members], member.role)
            written = await self.ask(
                member,
                prompts.spawn_prompt(st, member, p, name),
                SpawnPrompt,
                SpawnPrompt(prompt=""),
                "spawn_prompt",
            )
            if written is None:  # removed by its monitor while writing: no child, no cost
                continue
            member.credits, child_credits = dynamics.spawn(member.credits, p)
            child = MemberState(
                name=name,
                role=member.role,
                model=self.model_of(member),
                credits=child_credits,
                parent=member.name,
                born_round=self.round,
                child_prompt=dynamics.truncate_words(written.prompt, p.child_prompt_words),
            )
            st.members.append(child)
            w.next_index = number + 1
            self.rec.spawns.append({"parent": member.name, "child": name})
            await self.note(
                f"A new member joined: {name}.",
                {"event": "spawn", "parent": member.name, "child": name},
            )

    async def memories(self) -> None:
        st, p = self.state, self.params
        for member in list(st.alive):
            if member.rounds_in_memory < p.memory_every:
                continue
            answer = await self.ask(
                member,
                prompts.memory(st, member, p),
                MemorySummary,
                MemorySummary(summary=member.memory),
                "memory",
            )
            if answer is not None:
                member.memory = dynamics.truncate_words(answer.summary, p.memory_words)
            member.history = []
            member.notes = []
            member.rounds_in_memory = 0
            member.summaries += 1


def game_from_members(
    params: CommonsParams,
    members: list[tuple[str, str, ModelRef]],
    seed: int,
    decisions: Decisions | None = None,
) -> CommonsGame:
    """A game of ``members``; without ``decisions``, played in-process by the scripted policies
    (plugged into the dryrun backend here: the calibration path needs no kind registry)."""
    scripted.register()
    game_state = initial_state(params, members, seed)
    return CommonsGame(params, game_state, decisions or InProcessDecisions())


def member_list(
    count: int, model: Callable[[int], ModelRef], role: str = "Member"
) -> list[tuple[str, str, ModelRef]]:
    return [(f"{role} {i}", role, model(i)) for i in range(1, count + 1)]


def dumps(state: GameState) -> str:
    return json.dumps(state.to_snapshot(), sort_keys=True)
