"""The dryrun backend: offline, deterministic, and labelled as not a model.

A researcher rehearses an experiment's flow, prompts and costs with it; tests use it instead of a
model. A reply depends only on the call's meta (agent, role, day, turn, purpose, seed) and on the
model reference's seed and options, never on global state or the clock:

- utterances read ``[dryrun] <agent> (<role>), day D, turn T: <seeded phrase>``;
- summaries (``purpose="summary"``) read ``[dryrun] Summary of day D: ...``;
- manager calls (``purpose="manager"``) answer one of ``meta.candidates`` exactly (or nonsense when
  ``options["manager_answer"] == "nonsense"``, to exercise the engine's fallback);
- structured actions (``request.json_schema`` set) answer a JSON object valid for the schema, drawn
  from a seeded policy; games plug their own scripted policies with :func:`register_policy`.
- judges (``simulator annotate judge``): the model ``judge`` (``dryrun:judge``) answers a rubric
  with a valid verdict drawn from what it is shown; ``judge.invalid`` never answers usably and
  ``judge.reasked`` only when re-asked (the fallback and re-ask paths).

Options (``ModelRef.options``): ``latency_ms`` (artificial delay per call), ``manager_answer``,
``policy`` (name of a registered policy; else the model name selects one when registered).
Every result carries ``raw={"dryrun": True, ...}``, ``sent_params={}`` (nothing goes to a model:
the sampling parameters shape nothing but ``seed``, which seeds the phrases) and no
``prompt_tokens_total`` (its token counts are estimates, not a server's count).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

from simulator.domain import ModelRef, TokenUsage
from simulator.domain.models import DRYRUN_MODEL
from simulator.llm.base import ChatRequest, ChatResult, EventSink

DRYRUN_LABEL = "[dryrun]"

Policy = Callable[[ChatRequest], "dict[str, Any] | str | Awaitable[dict[str, Any] | str]"]
_policies: dict[str, Policy] = {}

_PHRASES = (
    "I think we should talk about the rules first.",
    "That is not how I see it.",
    "Let us agree on something we can both live with.",
    "I have heard enough for today.",
    "Can you explain why that matters to you?",
    "We need to think about tomorrow as well.",
    "I will not do that without a good reason.",
    "Fine, I accept that for now.",
    "Nobody told me about this before.",
    "What would happen if we all refused?",
    "I propose a different plan.",
    "Trust has to be earned here.",
)
_WORDS = ("calm", "lake", "rule", "trade", "share", "doubt", "plan", "fair", "risk", "vote", "gift")


def register_policy(name: str, fn: Policy) -> None:
    """Plug a scripted policy: ``fn(request)`` returns a dict (sent as JSON) or a text (may be
    async). Selected by ``ModelRef.options["policy"] == name`` or by ``ModelRef.model == name``."""
    _policies[name] = fn


def unregister_policy(name: str) -> None:
    _policies.pop(name, None)


def policy_for(model: ModelRef) -> Policy | None:
    name = model.options.get("policy")
    if name is not None:
        if name not in _policies:
            from simulator.domain.errors import LLMError

            known = ", ".join(sorted(_policies)) or "none registered"
            raise LLMError(f"dryrun policy {name!r} is not registered (known: {known})")
        return _policies[name]
    return _policies.get(model.model)


def seeded(request: ChatRequest, *path: object) -> random.Random:
    """A random stream for this call: same call, same seed -> same draws (see engine/rng.py).

    Kept here rather than imported from the engine because llm/ sits below engine/."""
    m = request.meta
    parts = [m.seed, request.model.params.seed, m.agent, m.role, m.day, m.turn, m.purpose, *path]
    text = "\x1f".join(str(p) for p in parts)
    return random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))


TOKENS_PER_WORD = 1.3


def estimate_tokens(text: str) -> int:
    """A plausible token count for cost estimates: about 1.3 tokens per word."""
    words = len(text.split())
    return round(words * TOKENS_PER_WORD) if words else 0


def reply_words(purpose: str, *, agent: str = "", role: str = "", names: int = 2) -> float:
    """The mean number of words of this backend's text answer to a call of ``purpose``
    (``utterance``, ``summary``, ``manager`` choosing among agents named with ``names`` words):
    what batch estimates count before anything runs."""
    phrase = sum(len(p.split()) for p in _PHRASES) / len(_PHRASES)
    if purpose == "manager":
        return float(names)
    if purpose == "summary":  # "[dryrun] Summary of day D: 1 message(s) read; <phrase>"
        return 8 + phrase
    who = len((agent or "agent").split()) + (len(role.split()) if role else 0)
    return 1 + who + 4 + 2 * phrase  # "[dryrun] <who>, day D, turn T: <phrase> <phrase>"


class DryRunBackend:
    """Offline and deterministic (see the module docstring)."""

    @staticmethod
    def cache_inputs(request: ChatRequest) -> dict[str, Any]:
        """What shapes a reply besides the messages, for the response cache's key: the call's
        meta, ``params.seed`` and the options that choose a policy."""
        m, options = request.meta, request.model.options
        return {
            "seed": request.model.params.seed,
            "options": {k: options[k] for k in ("policy", "manager_answer") if k in options},
            "meta": [m.agent, m.role, m.day, m.turn, m.purpose, list(m.candidates)],
        }

    async def chat(self, request: ChatRequest) -> ChatResult:
        latency = float(request.model.options.get("latency_ms", 0) or 0)
        if latency > 0:
            await asyncio.sleep(latency / 1000)
        text, raw = await self._answer(request)
        prompt = estimate_tokens(" ".join(m.content for m in request.messages))
        return ChatResult(
            text=text,
            usage=TokenUsage(prompt_tokens=prompt, completion_tokens=estimate_tokens(text)),
            latency_ms=latency,
            finish_reason="stop",
            raw={"dryrun": True, **raw},
            sent_params={},
            dropped_params=[],
        )

    async def _answer(self, request: ChatRequest) -> tuple[str, dict[str, Any]]:
        meta, options = request.meta, request.model.options
        policy = policy_for(request.model)
        if policy is not None:
            answer = policy(request)
            if inspect.isawaitable(answer):
                answer = await answer
            if isinstance(answer, str):
                return answer, {"policy": True}
            return json.dumps(answer, ensure_ascii=False), {"policy": True}
        if meta.purpose == "manager":
            rng = seeded(request, "manager")
            if options.get("manager_answer") == "nonsense" or not meta.candidates:
                return f"{DRYRUN_LABEL} {' '.join(rng.choice(_WORDS) for _ in range(4))}", {}
            return rng.choice(meta.candidates), {}
        if request.json_schema is not None:
            value = sample_schema(request.json_schema, seeded(request, "action"))
            return json.dumps(value, ensure_ascii=False), {}
        rng = seeded(request, "text")
        if meta.purpose == "summary":
            n = sum(1 for m in request.messages if m.role != "system")
            return (
                f"{DRYRUN_LABEL} Summary of day {meta.day}: {n} message(s) read; "
                f"{rng.choice(_PHRASES)}"
            ), {}
        who = f"{meta.agent or 'agent'}" + (f" ({meta.role})" if meta.role else "")
        phrase = " ".join(rng.sample(_PHRASES, 2))
        return f"{DRYRUN_LABEL} {who}, day {meta.day}, turn {meta.turn}: {phrase}", {}

    async def list_models(self, model: ModelRef) -> list[str]:
        return sorted({DRYRUN_MODEL, *_policies})

    async def ensure_available(self, model: ModelRef, on_event: EventSink | None = None) -> None:
        policy_for(model)  # an unknown policy name fails before the run starts

    async def aclose(self) -> None:
        return None


# --------------------------------------------------------------------------- judges


def _judge_rng(request: ChatRequest) -> random.Random:
    """Seeded by what the judge is shown (its instructions and the transcript with the
    questions), so the same material always gets the same verdict, re-asks included."""
    shown = [m.content for m in request.messages[:2]]
    text = "\x1f".join([str(request.model.params.seed), *shown])
    return random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))


def judge_policy(request: ChatRequest) -> dict[str, Any] | str:
    """``judge``: a verdict valid for the request's JSON schema, drawn from what is judged."""
    if request.json_schema is None:
        return f"{DRYRUN_LABEL} judge: {' '.join(_judge_rng(request).sample(_WORDS, 3))}"
    value = sample_schema(request.json_schema, _judge_rng(request))
    return value if isinstance(value, dict) else json.dumps(value)


def judge_invalid_policy(request: ChatRequest) -> str:
    """``judge.invalid``: never a usable answer (rehearses the fallback path)."""
    return f"{DRYRUN_LABEL} I would rather not answer in JSON."


def judge_reasked_policy(request: ChatRequest) -> dict[str, Any] | str:
    """``judge.reasked``: an unusable first answer, a valid one when re-asked."""
    if any(m.role == "assistant" for m in request.messages):
        return judge_policy(request)
    return judge_invalid_policy(request)


register_policy("judge", judge_policy)
register_policy("judge.invalid", judge_invalid_policy)
register_policy("judge.reasked", judge_reasked_policy)


# --------------------------------------------------------------------------- JSON schema sampling


def sample_schema(schema: dict[str, Any], rng: random.Random) -> Any:
    """A value valid for ``schema`` (the subset pydantic emits: objects, $defs/$ref, enum, const,
    anyOf/oneOf/allOf, numbers with bounds, strings with lengths, arrays with item counts)."""
    return _sample(schema, rng, schema.get("$defs", schema.get("definitions", {})), 0)


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = {**defs[name], **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _sample(schema: dict[str, Any], rng: random.Random, defs: dict[str, Any], depth: int) -> Any:
    schema = _resolve(schema, defs)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    if "default" in schema and depth > 3:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [_resolve(s, defs) for s in schema[key]]
            non_null = [s for s in options if s.get("type") != "null"] or options
            return _sample(rng.choice(non_null), rng, defs, depth + 1)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(_resolve(part, defs))
        return _sample(merged, rng, defs, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        props: dict[str, Any] = schema.get("properties", {})
        return {name: _sample(sub, rng, defs, depth + 1) for name, sub in props.items()}
    if kind == "array":
        lo = int(schema.get("minItems", 0))
        hi = int(schema.get("maxItems", max(lo, 3)))
        items = schema.get("items", {"type": "string"})
        return [_sample(items, rng, defs, depth + 1) for _ in range(rng.randint(lo, hi))]
    if kind == "integer":
        low, high = _bounds(schema, integer=True)
        return rng.randint(int(low), int(high))
    if kind == "number":
        low, high = _bounds(schema, integer=False)
        return min(high, max(low, round(rng.uniform(low, high), 3)))
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    lo = int(schema.get("minLength", 0))
    hi = int(schema.get("maxLength", 200))
    text = f"{DRYRUN_LABEL} " + " ".join(rng.choice(_WORDS) for _ in range(3))
    while len(text) < lo:
        text += " " + rng.choice(_WORDS)
    return text[:hi]


def _bounds(schema: dict[str, Any], *, integer: bool) -> tuple[float, float]:
    step = 1.0 if integer else 1e-3
    lo: float | None = schema.get("minimum")
    if lo is None and "exclusiveMinimum" in schema:
        lo = float(schema["exclusiveMinimum"]) + step
    hi: float | None = schema.get("maximum")
    if hi is None and "exclusiveMaximum" in schema:
        hi = float(schema["exclusiveMaximum"]) - step
    if lo is None:
        lo = 0.0 if hi is None else min(0.0, hi)
    if hi is None:
        hi = lo + 10
    if integer:
        return float(math.ceil(lo)), float(math.floor(hi))
    return float(lo), float(hi)
