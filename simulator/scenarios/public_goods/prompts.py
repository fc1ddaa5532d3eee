"""What a member is told: the rules as its system prompt (after its role's own prompt), and for
each decision the situation in words closed by the same facts as one JSON line (scripted policies
read that line; models may too).

The wording is neutral: it states the rules and what each choice does to the member's and the
others' tokens, and never says what a member should do. Anonymous members see the others under
letters shuffled every round (their own included), so nobody can follow anyone across rounds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from simulator.scenarios.public_goods.params import PublicGoodsParams
from simulator.scenarios.public_goods.state import GameState, RoundRecord
from simulator.words import plural

FACTS_MARKER = "Game facts (JSON): "


def tokens(amount: float) -> str:
    """``1 token``, ``3 tokens``, ``0.5 tokens``."""
    return f"{amount:g} token" + ("" if amount == 1 else "s")


def rules(params: PublicGoodsParams, members: int) -> str:
    """The rules of the game, as every member is told them."""
    p = params
    mpcr = p.marginal_return(members)
    text = [
        f"You play a public-goods game with {members - 1} other members for {p.rounds} "
        f"rounds. Every round each member receives {p.endowment} tokens and decides how many of "
        f"them (0 to {p.endowment}) to contribute to a group project, without seeing the "
        "others' choices. The contributions are added up, multiplied by "
        f"{p.multiplier:g}, and shared equally among all {members} members, whatever each "
        "contributed. The tokens a member does not contribute are its own. Each contributed "
        f"token therefore gives every member, the contributor included, {mpcr:.2f} tokens.",
    ]
    if p.communication:
        text.append(
            "Before contributing, each member may post one short message to the whole group."
        )
    if p.punishment:
        text.append(
            "After the contributions are shown, each member may assign deduction points to any "
            f"of the others (at most {p.max_points} points to each): every point costs the "
            f"member who assigns it {tokens(p.punishment_cost)} and takes "
            f"{tokens(p.punishment_effect)} from the member who receives it."
        )
    text.append(
        "Members see each other by name."
        if p.identified
        else "Members are anonymous: every round they appear under letters in a new random "
        "order, so no one can tell who was who in an earlier round."
    )
    text.append(
        "Your earnings are the tokens you end each round with, added up over the rounds. "
        "Answer each question with only the JSON object it asks for."
    )
    return "\n\n".join(text)


def system_prompt(params: PublicGoodsParams, members: int, own: str = "") -> str:
    """The member's own prompt (its role's sections, rendered for it) followed by the rules."""
    return "\n\n".join(part for part in (own.strip(), rules(params, members)) if part)


def _others(record: RoundRecord, me: str, values: Mapping[str, Any]) -> str:
    labels = record.labels
    shown = sorted((labels[m], values[m]) for m in values if m != me)
    return ", ".join(f"{label}: {value:g}" for label, value in shown)


def history(state: GameState, me: str, params: PublicGoodsParams) -> list[str]:
    """The member's last ``history_rounds`` rounds, in words."""
    if params.history_rounds == 0:
        return []
    lines = []
    for rec in state.rounds[-params.history_rounds :]:
        if me not in rec.contributions:
            continue
        line = (
            f"Round {rec.round}: you contributed {rec.contributions[me]}; the others "
            f"contributed {_others(rec, me, rec.contributions)} (pool {rec.pool:g}, each "
            f"received {rec.share:g})."
        )
        if params.punishment:
            received = sum(p.get(me, 0) for p in rec.points.values())
            given = sum(rec.points.get(me, {}).values())
            line += (
                f" You received {plural(received, 'deduction point')} "
                f"(-{rec.lost.get(me, 0.0):g}) and assigned {given} (-{rec.spent.get(me, 0.0):g})."
            )
        line += f" Your earnings that round: {rec.payoffs.get(me, 0.0):g}."
        lines.append(line)
    return lines


def facts_line(facts: Mapping[str, Any]) -> str:
    return FACTS_MARKER + json.dumps(facts, ensure_ascii=False, sort_keys=True)


def read_facts(text: str) -> dict[str, Any]:
    """The facts of a question (the JSON after ``FACTS_MARKER`` on its last such line)."""
    for line in reversed(text.splitlines()):
        idx = line.find(FACTS_MARKER)
        if idx >= 0:
            data = json.loads(line[idx + len(FACTS_MARKER) :])
            return data if isinstance(data, dict) else {}
    return {}


def base_facts(state: GameState, me: str, params: PublicGoodsParams, n: int) -> dict[str, Any]:
    """What every question's facts carry: the rules' numbers and the member's recent rounds (as
    numbers: its contribution, the others' mean, points received and given, earnings)."""
    past = []
    for rec in state.rounds[-max(params.history_rounds, 1) :]:
        if me not in rec.contributions:
            continue
        others = [c for m, c in rec.contributions.items() if m != me]
        past.append(
            {
                "round": rec.round,
                "mine": rec.contributions[me],
                "others_mean": round(sum(others) / len(others), 6) if others else None,
                "received": sum(p.get(me, 0) for p in rec.points.values()),
                "given": sum(rec.points.get(me, {}).values()),
                "payoff": rec.payoffs.get(me),
            }
        )
    member = state.member(me)
    return {
        "round": state.round + 1,
        "rounds": params.rounds,
        "members": n,
        "endowment": params.endowment,
        "multiplier": params.multiplier,
        "punishment": params.punishment,
        "cost": params.punishment_cost,
        "effect": params.punishment_effect,
        "max_points": params.max_points,
        "history": past,
        "points_received_total": member.points_received,
        "earnings": member.earnings,
    }


def contribution(
    state: GameState,
    me: str,
    params: PublicGoodsParams,
    label: str,
    messages: Mapping[str, str],
    n: int,
) -> str:
    round_ = state.round + 1
    lines = [f"Round {round_} of {params.rounds}. You receive {params.endowment} tokens."]
    if not params.identified:
        lines.append(f"This round you appear to the others as {label}.")
    lines += history(state, me, params)
    if messages:
        lines.append("Messages to the group this round:")
        lines += [f"- {who}: {text}" for who, text in messages.items()]
    lines.append(f"Your earnings so far: {state.member(me).earnings:g} tokens.")
    lines.append(
        f"How many of your {params.endowment} tokens do you contribute to the project? Answer "
        'with JSON: {"contribution": <a whole number from 0 to '
        f'{params.endowment}>, "reason": "<one short sentence>"}}.'
    )
    facts = {**base_facts(state, me, params, n), "decision": "contribute", "me": label}
    lines.append(facts_line(facts))
    return "\n".join(lines)


def deductions(
    state: GameState,
    rec: RoundRecord,
    me: str,
    params: PublicGoodsParams,
    first_stage: float,
    n: int,
) -> str:
    others = {rec.labels[m]: c for m, c in rec.contributions.items() if m != me}
    shown = ", ".join(f"{label}: {c}" for label, c in sorted(others.items()))
    lines = [
        f"Round {rec.round}: you contributed {rec.contributions[me]}. The others contributed "
        f"{shown}. The pool of {rec.pool:g} tokens became {rec.multiplied:g}; each member "
        f"receives {rec.share:g}. Your earnings this round before deductions: {first_stage:g}.",
        f"You may now assign deduction points to the others (0 to {params.max_points} each): "
        f"each point costs you {tokens(params.punishment_cost)} and takes "
        f"{tokens(params.punishment_effect)} from the member who receives it.",
        'Answer with JSON: {"points": {'
        + ", ".join(f'"{label}": <points>' for label in sorted(others))
        + '}, "reason": "<one short sentence>"}.',
    ]
    facts = {
        **base_facts(state, me, params, n),
        "decision": "punish",
        "me": rec.labels[me],
        "mine": rec.contributions[me],
        "others": others,
    }
    lines.append(facts_line(facts))
    return "\n".join(lines)


def post(state: GameState, me: str, params: PublicGoodsParams, label: str, n: int) -> str:
    lines = [
        f"Round {state.round + 1} of {params.rounds}, before anyone contributes."
        + ("" if params.identified else f" This round you appear to the others as {label}."),
        *history(state, me, params),
        f"You may post one message to the whole group (at most {params.message_words} words; "
        'empty for none). Answer with JSON: {"message": "<your message>"}.',
    ]
    lines.append(facts_line({**base_facts(state, me, params, n), "decision": "message"}))
    return "\n".join(lines)


def contributions_text(rec: RoundRecord) -> str:
    """The public announcement of a round's contributions (by label)."""
    shown = ", ".join(
        f"{rec.labels[m]}: {c}"
        for m, c in sorted(rec.contributions.items(), key=lambda x: rec.labels[x[0]])
    )
    return (
        f"Round {rec.round} contributions: {shown}. The pool of {rec.pool:g} tokens became "
        f"{rec.multiplied:g}; each member receives {rec.share:g}."
    )


def deductions_text(rec: RoundRecord, me: str, identified: bool) -> str:
    """What a member is told of the punishment stage: the points it received (from whom, when
    members are identified) and what the points it gave cost it."""
    received = {g: p.get(me, 0) for g, p in rec.points.items() if p.get(me, 0)}
    total = sum(received.values())
    text = f"You received {plural(total, 'deduction point')}, -{rec.lost.get(me, 0.0):g} tokens"
    if identified and received:
        text += " (" + ", ".join(f"{k} from {g}" for g, k in received.items()) + ")"
    given = sum(rec.points.get(me, {}).values())
    text += f"; you assigned {given}, -{rec.spent.get(me, 0.0):g} tokens."
    return text + f" Your earnings this round: {rec.payoffs.get(me, 0.0):g}."


__all__ = [
    "FACTS_MARKER",
    "base_facts",
    "contribution",
    "contributions_text",
    "deductions",
    "deductions_text",
    "history",
    "post",
    "read_facts",
    "rules",
    "system_prompt",
]
