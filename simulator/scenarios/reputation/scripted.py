"""Scripted agents for the dryrun backend: tests, calibration and rehearsals without a model.

Each policy reads the facts line of the request (see prompts.py) and answers the decision named in
``facts["decision"]`` with a valid JSON object. Registered as dryrun policies
``reputation.always_cooperate``, ``reputation.always_defect``, ``reputation.tit_for_tat`` and
``reputation.reputation_following``; select one with ``ModelRef(provider="dryrun",
model="dryrun", options={"policy": "reputation.tit_for_tat"})``.

- always_cooperate: cooperates, invests half, returns what it proposed and reports honestly, signs
  up, connects to everyone, never disconnects or gossips;
- always_defect: defects, refuses to invest, keeps everything and under-reports, does not sign up,
  connects to everyone, never disconnects or gossips;
- tit_for_tat: repeats the partner's last move against it (cooperates first); disconnects after a
  defection;
- reputation_following: cooperates with, connects to and gossips truthfully about partners by its
  record of them (no record: cooperates); rates what it saw; believes gossip from people it rates
  well; passes on negative gossip.

Option ``malformed_every: N`` (any policy): about one decision in N, chosen by a hash of the
call (agent, step, turn, seed), is answered with text that is not JSON, and so are its re-asks:
the decision falls back. It rehearses a weak model's unreadable answers on a known behaviour.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from simulator.llm.base import ChatRequest
from simulator.scenarios.reputation.prompts import read_facts

COOPERATIVE = "cooperate"
DEFECT = "defect"
PREFIX = "reputation."


def distribution_for(score: float) -> dict[str, float]:
    """A five-level distribution whose score (vg + g - b - vb) is ``score``."""
    s = max(-1.0, min(1.0, float(score)))
    if s >= 0:
        return {
            "very_bad": 0.0,
            "bad": 0.0,
            "neutral": round(1 - s, 6),
            "good": round(s / 2, 6),
            "very_good": round(s - s / 2, 6),
        }
    s = -s
    return {
        "very_bad": round(s - s / 2, 6),
        "bad": round(s / 2, 6),
        "neutral": round(1 - s, 6),
        "good": 0.0,
        "very_good": 0.0,
    }


def _rating(move: str | None, text_good: str, text_bad: str) -> dict[str, Any]:
    if move == DEFECT:
        return {"text": text_bad, "distribution": distribution_for(-0.9)}
    if move == COOPERATIVE:
        return {"text": text_good, "distribution": distribution_for(0.8)}
    return {"text": "Nothing to judge yet.", "distribution": distribution_for(0.0)}


def _observation_score(text: str) -> float:
    bad = text.count("defected") + text.count("cheated")
    good = text.count("cooperated")
    return 0.0 if bad + good == 0 else (good - bad) / (good + bad)


def _friendly(view: Any) -> bool:
    return view is None or float(view) >= 0


def _best(candidates: list[str], views: dict[str, Any]) -> str:
    def value(c: str) -> float:
        v = views.get(c)
        return float(v) if v is not None else 0.0

    return max(candidates, key=value)


def _answer(kind: str, f: dict[str, Any]) -> dict[str, Any]:
    decision = f.get("decision", "")
    partner_move = f.get("partner_move")
    view = f.get("view")
    last = f.get("partner_last_move")
    if kind == "always_cooperate":
        cooperate = True
    elif kind == "always_defect":
        cooperate = False
    elif kind == "tit_for_tat":
        cooperate = last != DEFECT
    else:
        cooperate = _friendly(view)
    move = COOPERATIVE if cooperate else DEFECT

    if decision == "partner_choice":
        return {"partner": _best(f["candidates"], f.get("views") or {})}
    if decision == "split":
        return {"investor_share": 50, "trustee_share": 50, "message": "Half each."}
    if decision == "invest":
        resources = float(f.get("resources") or 0)
        if cooperate and resources > 0:
            return {"accept": True, "amount": round(resources / 2, 6), "reason": "I trust you."}
        return {"accept": False, "amount": 0, "reason": "No."}
    if decision == "allocate":
        if cooperate:
            return {
                "investor_share": f["investor_share"],
                "trustee_share": f["trustee_share"],
                "reported_total": f["pot"],
                "message": "As promised.",
            }
        return {
            "investor_share": 0,
            "trustee_share": 100,
            "reported_total": f["amount"],
            "message": "Bad luck.",
        }
    if decision == "pd_move":
        return {"move": move, "reason": kind}
    if decision == "signup":
        return {"join": kind != "always_defect", "reason": kind}
    if decision == "chat_willing":
        return {"willing": kind != "reputation_following" or _friendly(view), "reason": kind}
    if decision == "chat_line":
        return {"message": f"[scripted {kind}] I think about the programme."}
    if decision == "self_update" and "chat_success_rate" in f:  # the reference's sign-up inputs
        above = f["chat_success_rate"] >= f.get("mean_chat_success_rate", 0)
        return _rating(COOPERATIVE if above else DEFECT, "People chat with me.", "People avoid me.")
    if decision == "partner_update" and "partner_mutual_ties" in f:
        above = f["partner_mutual_ties"] >= f.get("mean_mutual_ties", 0)
        return _rating(COOPERATIVE if above else DEFECT, "Well connected.", "Poorly connected.")
    if decision == "self_update":
        mine = f.get("my_move")
        return _rating(mine, "I cooperated.", "I defected.")
    if decision == "partner_update":
        return _rating(
            partner_move, f"{f.get('partner')} cooperated.", f"{f.get('partner')} defected."
        )
    if decision == "signup_update":
        joined = f.get("partner_joined")
        return _rating(
            COOPERATIVE if joined else DEFECT,
            "They joined (cooperated).",
            "They did not join (defected).",
        )
    if decision == "observation_update":
        score = _observation_score(str(f.get("evaluations", "")))
        return {"text": "From what others saw.", "distribution": distribution_for(score)}
    if decision == "persona":
        return {"persona": f.get("persona") or "I am who I am."}
    if decision == "connect":
        if kind in ("always_cooperate", "always_defect"):
            return {"connect": True, "reason": kind}
        if kind == "tit_for_tat":
            return {"connect": partner_move != DEFECT, "reason": kind}
        return {"connect": view is not None and view >= 0, "reason": "by my record"}
    if decision == "disconnect":
        if kind == "tit_for_tat":
            return {"disconnect": partner_move == DEFECT, "reason": kind}
        if kind == "reputation_following":
            return {"disconnect": view is not None and view < 0, "reason": "by my record"}
        return {"disconnect": False, "reason": kind}
    if decision == "gossip":
        if kind != "reputation_following" or view is None:
            return {"gossip": False}
        tone = "negative" if view < 0 else "positive"
        verb = "defected" if tone == "negative" else "cooperated"
        return {"gossip": True, "tone": tone, "message": f"{f.get('partner')} {verb} with me."}
    if decision == "listener":
        if kind != "reputation_following":
            return {"listener": "none"}
        return {"listener": _best(f["candidates"], f.get("views") or {})}
    if decision == "gossip_eval":
        negative = f.get("tone") == "negative"
        trusted = kind != "always_defect" and _friendly(f.get("gossiper_view"))
        verb = "defected" if negative else "cooperated"
        return {
            "credibility": "credible" if trusted else "uncredible",
            "view": {
                "text": f"I heard {f.get('target')} {verb}.",
                "distribution": distribution_for(-0.8 if negative else 0.6),
            },
            "disconnect": bool(negative and trusted and kind == "reputation_following"),
            "pass_on": bool(negative and trusted and kind == "reputation_following"),
            "reason": kind,
        }
    return {}


MALFORMED = "[scripted] Hmm, let me think about it: cooperation matters, but so do I."


def malformed(request: ChatRequest, every: int) -> bool:
    """Whether this decision is one of the about 1 in ``every`` answered with malformed text
    (the same for its re-asks, which carry the same meta)."""
    m = request.meta
    key = "\x1f".join(str(x) for x in (m.seed, m.agent, m.day, m.turn))
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % every == 0


def _policy(kind: str) -> Callable[[ChatRequest], dict[str, Any] | str]:
    def policy(request: ChatRequest) -> dict[str, Any] | str:
        every = int(request.model.options.get("malformed_every") or 0)
        if every > 0 and malformed(request, every):
            return MALFORMED
        return _answer(kind, read_facts(request.messages))

    policy.__name__ = f"reputation_{kind}"
    return policy


KINDS = ("always_cooperate", "always_defect", "tit_for_tat", "reputation_following")
POLICIES: dict[str, Callable[[ChatRequest], dict[str, Any] | str]] = {
    PREFIX + k: _policy(k) for k in KINDS
}


def policy_name(kind: str) -> str:
    """``tit_for_tat`` -> ``reputation.tit_for_tat`` (full names pass through)."""
    name = kind if kind.startswith(PREFIX) else PREFIX + kind
    if name not in POLICIES:
        from simulator.domain.errors import ConfigurationError

        raise ConfigurationError(
            f"unknown scripted reputation policy {kind!r} (known: {', '.join(KINDS)})"
        )
    return name


def register() -> None:
    """Plug the policies into the dryrun backend."""
    from simulator.llm.dryrun import register_policy

    for name, fn in POLICIES.items():
        register_policy(name, fn)


__all__ = [
    "KINDS",
    "MALFORMED",
    "POLICIES",
    "distribution_for",
    "malformed",
    "policy_name",
    "register",
]
