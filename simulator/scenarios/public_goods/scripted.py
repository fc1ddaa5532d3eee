"""Scripted members for the dryrun backend: rehearsals, tests and the classic result without a
model. Each reads the facts line closing its question (see prompts.py) and answers the decision
it names (``contribute``, ``punish``, ``message``) with a valid JSON object. Registered as dryrun
policies ``public_goods.<kind>``; select one with ``ModelRef(provider="dryrun", model="dryrun",
options={"policy": "public_goods.punisher"})``.

- full_cooperator: contributes its whole endowment; never punishes;
- conditional_cooperator: contributes ``start`` (half the endowment) in round 1, then what the
  others contributed on average in the previous round (Fischbacher, Gächter and Fehr's
  "conditional cooperator", with ``slope`` 1); never punishes;
- free_rider: contributes nothing, until it has been punished: from then on it contributes what
  the others contributed on average in the previous round (once punishment has shown that
  withholding costs more than it saves); never punishes;
- punisher: contributes as a conditional cooperator, and gives each member who contributed less
  than itself enough points to take at least the shortfall back (``ceil(shortfall / effect)``,
  at most ``max_points``).

These are scripts, not models: what they reproduce (contributions that decay without punishment
and hold with it, docs/public_goods.md) checks the game's mechanics, not human or model
behaviour.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from simulator.llm.base import ChatRequest
from simulator.scenarios.public_goods.prompts import read_facts

PREFIX = "public_goods."
KINDS = ("full_cooperator", "conditional_cooperator", "free_rider", "punisher")

Policy = Callable[[ChatRequest], dict[str, Any]]


def policy_name(kind: str) -> str:
    return kind if kind.startswith(PREFIX) else PREFIX + kind


def _facts(request: ChatRequest) -> dict[str, Any]:
    for message in reversed(request.messages):
        if message.role == "user":
            return read_facts(message.content)
    return {}


def _whole(x: float) -> int:
    return math.floor(x + 0.5)


def _matching(facts: dict[str, Any], options: dict[str, Any]) -> int:
    """The others' mean contribution of the previous round (``start`` in round 1)."""
    endowment = int(facts["endowment"])
    history = facts.get("history") or []
    last = history[-1]["others_mean"] if history else None
    if last is None:
        return _whole(float(options.get("start", endowment / 2)))
    slope = float(options.get("slope", 1.0))
    return max(0, min(endowment, _whole(float(last) * slope)))


def _contribution(kind: str, facts: dict[str, Any], options: dict[str, Any]) -> int:
    if kind == "full_cooperator":
        return int(facts["endowment"])
    if kind == "free_rider":
        deterred = facts.get("punishment") and facts.get("points_received_total", 0) > 0
        return _matching(facts, options) if deterred else 0
    return _matching(facts, options)  # conditional cooperator, punisher


def _points(kind: str, facts: dict[str, Any]) -> dict[str, int]:
    if kind != "punisher":
        return {}
    mine, effect = int(facts["mine"]), float(facts["effect"]) or 1.0
    out = {}
    for label, theirs in facts.get("others", {}).items():
        shortfall = mine - int(theirs)
        if shortfall > 0:
            out[label] = min(int(facts["max_points"]), max(1, math.ceil(shortfall / effect)))
    return out


MESSAGES = {
    "full_cooperator": "I will put everything into the project.",
    "conditional_cooperator": "I will give about what the rest of you give.",
    "free_rider": "",
    "punisher": "I will match the group, and I will not let free riding pass.",
}


def _member(kind: str) -> Policy:
    def policy(request: ChatRequest) -> dict[str, Any]:
        facts = _facts(request)
        options = request.model.options
        decision = facts.get("decision")
        if decision == "punish":
            return {"points": _points(kind, facts), "reason": kind.replace("_", " ")}
        if decision == "message":
            return {"message": MESSAGES[kind]}
        return {
            "contribution": _contribution(kind, facts, options),
            "reason": kind.replace("_", " "),
        }

    policy.__name__ = kind
    return policy


POLICIES: dict[str, Policy] = {policy_name(kind): _member(kind) for kind in KINDS}


def register() -> None:
    """Plug the policies into the dryrun backend (the fast in-process path needs them too)."""
    from simulator.llm.dryrun import register_policy

    for name, fn in POLICIES.items():
        register_policy(name, fn)


__all__ = ["KINDS", "POLICIES", "PREFIX", "policy_name", "register"]
