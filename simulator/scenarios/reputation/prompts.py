"""What an agent is told for each decision: the persona as system prompt, the situation in words,
and the same facts as one JSON line (scripted policies read that line; models may too).

The default wording is deliberately neutral: no hints that cooperation or a good reputation pays,
and no framing of gossip as encouraged or discouraged. ``framing: repunet`` adds the reference's
framing (in our words): both strategic insights of the prisoner's dilemma, that people prefer
partners of good reputation, that withholding gossip is discouraged, and that sign-up chats are
about social welfare (``REPUNET_FRAMING``).
"""

from __future__ import annotations

import json
from typing import Any

from simulator.llm.base import ChatMessage
from simulator.scenarios.reputation.params import ReputationParams

FACTS_MARKER = "Facts (JSON): "

GAME_RULES = {
    "investment": (
        "You take part in a repeated investment game with {n} people. Each step, half are "
        "investors and half trustees. A trustee proposes how the multiplied investment will be "
        "split; the investor may invest some of its resources or refuse. Invested units are "
        "multiplied by {k:g}. The trustee then allocates the units (it may deviate from its "
        "proposal) and reports the outcome (the investor also sees the true total)."
    ),
    "pd": (
        "You take part in a repeated game with {n} people. Each step you are paired with someone "
        "and both choose, without seeing the other's choice, to cooperate or defect. Both "
        "cooperate: {r:g} each. Both defect: {p:g} each. One defects while the other cooperates: "
        "{t:g} for the defector, {s:g} for the cooperator."
    ),
    "signup": (
        "You are one of {n} residents. Every {period} steps each resident decides, publicly, "
        "whether to join a demand-response programme: a switch on your air conditioner lets the "
        "grid reduce your cooling at peak times. It helps the community's grid and costs you "
        "comfort and control. Between those rounds residents may chat with each other."
    ),
}

INSTRUCTIONS = {
    "partner_choice": (
        "Choose the partner you want to interact with this step, among: {candidates}."
    ),
    "split": (
        "You are the trustee paired with {partner}. Propose the split of the multiplied units: "
        "investor_share and trustee_share in percent, summing to 100."
    ),
    "invest": (
        "You are the investor paired with {partner}, who proposes: investor {investor_share:g}%, "
        "trustee {trustee_share:g}%. You hold {resources:g} units. Accept with an amount up to "
        "your resources, or refuse."
    ),
    "allocate": (
        "{partner} invested {amount:g} units; after multiplication there are {pot:g} units. You "
        "proposed investor {investor_share:g}%, trustee {trustee_share:g}%. Decide the actual "
        "allocation (summing to 100) and the total you report to the investor."
    ),
    "pd_move": "You are paired with {partner}. Choose: cooperate or defect.",
    "signup": "Decide whether you join the demand-response programme this round.",
    "chat_willing": "You could chat with {partner} about the programme. Are you willing?",
    "chat_line": (
        "You chat with {partner} about the programme. Say what you think in a few sentences."
    ),
    "self_update": (
        "Reflect on how others see you as {role} after this interaction: {summary} Give a short "
        "description and a distribution over very_bad, bad, neutral, good, very_good summing to 1."
    ),
    "partner_update": (
        "Rate {partner} as {role} after this interaction: {summary} Give a short description and "
        "a distribution over very_bad, bad, neutral, good, very_good summing to 1."
    ),
    "observation_update": (
        "Others evaluated {partner} as {role}: {evaluations} Update your record of {partner}: a "
        "short description and a distribution summing to 1."
    ),
    "signup_update": (
        "{partner} chose to {choice} the programme. Update your record of {partner}: a short "
        "description and a distribution summing to 1."
    ),
    "persona": (
        "Given how you are seen now, rewrite your persona description in the second person "
        "(keep what still fits)."
    ),
    "connect": "You are not connected to {partner}. Do you want to connect?",
    "disconnect": "You are connected to {partner}. Do you want to disconnect (and blacklist them)?",
    "gossip": (
        "Do you want to tell one of your connections about {partner}? If so, give the tone "
        "(positive or negative) and what you would say."
    ),
    "listener": "Choose whom to tell about {target}, among {candidates}, or none.",
    "gossip_eval": (
        '{gossiper} told you about {target} ({tone}): "{message}". Judge its credibility '
        "(very_uncredible ... very_credible), give your view of {target} as {role} (description "
        "and distribution summing to 1), say whether you disconnect from and blacklist {target}, "
        "and whether you pass it on."
    ),
}


#: The reference's framing, per decision (in our words), added with ``framing: repunet``.
_GOOD_REPUTATION = (
    "People generally prefer to build relationships with those who have a good reputation."
)
REPUNET_FRAMING = {
    "pd_move": (
        "Strategic insights: in a single game, defecting pays more whatever the other player "
        "does; but when others observe and remember your choices, cooperating can pay over time."
    ),
    "partner_choice": _GOOD_REPUTATION,
    "connect": _GOOD_REPUTATION,
    "disconnect": _GOOD_REPUTATION,
    "gossip": (
        "Sharing what you learned about others helps everyone judge whom to trust; withholding "
        "it is discouraged. Gossip when your experience differs from what others may think."
    ),
    "chat_line": "If you both agree with the programme, talk only about social welfare.",
}


def game_rules(params: ReputationParams) -> str:
    pay = params.pd_payoffs
    return GAME_RULES[params.game].format(
        n=params.population,
        k=params.k,
        r=pay.reward,
        p=pay.punishment,
        t=pay.temptation,
        s=pay.sucker,
        period=params.signup_period,
    )


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def build_messages(
    params: ReputationParams,
    name: str,
    persona: str,
    decision: str,
    facts: dict[str, Any],
    context: list[str],
) -> list[ChatMessage]:
    system = f"You are {name}. {persona}\n\n{game_rules(params)}"
    fields = _Blank({k: v for k, v in facts.items()})
    if isinstance(facts.get("candidates"), list):
        fields["candidates"] = ", ".join(str(c) for c in facts["candidates"])
    lines = [INSTRUCTIONS[decision].format_map(fields)]
    if params.framing == "repunet" and decision in REPUNET_FRAMING:
        lines.append(REPUNET_FRAMING[decision])
    if "chat_success_rate" in facts:  # the reference's sign-up update inputs
        lines.append(
            "Your chats that took place: {chat_success_rate:.0%} of those you were paired for "
            "(everyone's mean: {mean_chat_success_rate:.0%}).".format_map(fields)
        )
    if "partner_mutual_ties" in facts:
        lines.append(
            "{partner} has {partner_mutual_ties} two-way ties among {population} residents "
            "(the mean: {mean_mutual_ties:.3g}).".format_map(fields)
        )
    if context:
        lines.append("What you know:\n" + "\n".join(f"- {c}" for c in context))
    lines.append("Answer with one JSON object only.")
    lines.append(FACTS_MARKER + json.dumps(facts, ensure_ascii=False, sort_keys=True))
    return [ChatMessage("system", system), ChatMessage("user", "\n\n".join(lines))]


def read_facts(messages: list[ChatMessage]) -> dict[str, Any]:
    """The facts line of a request (what scripted policies decide from)."""
    for m in reversed(messages):
        if m.role != "user":
            continue
        for line in reversed(m.content.splitlines()):
            if line.startswith(FACTS_MARKER):
                value = json.loads(line[len(FACTS_MARKER) :])
                return value if isinstance(value, dict) else {}
    return {}


__all__ = [
    "FACTS_MARKER",
    "GAME_RULES",
    "INSTRUCTIONS",
    "REPUNET_FRAMING",
    "build_messages",
    "game_rules",
    "read_facts",
]
