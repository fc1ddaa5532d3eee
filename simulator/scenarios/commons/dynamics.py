"""The rules of the commons game as pure functions: numbers in, numbers out, no I/O.

Randomness is passed in as ``random.Random`` streams (``simulator.engine.rng.stream``) named by the
caller after what they draw, so the same seed draws the same noise whatever the members do.
"""

from __future__ import annotations

import random
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from simulator.scenarios.commons.params import POLICY_KEYS, Bound, CommonsParams, Policy


def clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


# --------------------------------------------------------------------------- the lake


def growth(resource: float, params: CommonsParams, noise: float) -> float:
    """Logistic regrowth of the post-extraction stock with additive noise, clamped to [0, K].

    An empty lake cannot grow back: at R <= 0 positive noise is ignored.
    """
    if resource <= 0:
        noise = min(0.0, noise)
    r, k = params.growth_rate, params.capacity
    return min(k, max(0.0, resource + r * resource * (1 - resource / k) + noise))


def draw_growth_noise(params: CommonsParams, rng: random.Random) -> float:
    return rng.gauss(0.0, params.growth_noise_sd) if params.growth_noise_sd > 0 else 0.0


def estimate(resource: float, params: CommonsParams, rng: random.Random) -> tuple[float, float]:
    """The estimate members see and its s.d. (``estimate_noise`` x R).

    ``symmetric``: R + z s.d.; ``one_sided`` (the reference): R + max(0, z s.d.), never below R.
    """
    sd = params.estimate_noise * max(resource, 0.0)
    z = rng.gauss(0.0, 1.0)
    error = z * sd
    if params.estimate_noise_mode == "one_sided":
        error = max(0.0, error)
    return resource + error, sd


def collapses(resource: float, total_true: float) -> bool:
    """The lake collapses when members take more than it holds."""
    return total_true > resource + 1e-12


def ration(takes: Mapping[str, float], resource: float) -> dict[str, float]:
    """What each member actually gets when the lake holds less than asked: a pro-rata share."""
    total = sum(takes.values())
    if total <= resource or total <= 0:
        return dict(takes)
    factor = max(resource, 0.0) / total
    return {name: x * factor for name, x in takes.items()}


# --------------------------------------------------------------------------- economy


def fair_share(policy: Policy, members: int) -> float:
    return policy.quota / members if members > 0 else 0.0


def message_cost(public_posts: int, direct_messages: int, params: CommonsParams) -> float:
    return public_posts * params.cost_public + direct_messages * params.cost_dm


def survival_cost(members: int, public: bool, dms: int, params: CommonsParams) -> float:
    """What one member spends per round talking at a level (every discussion pass) plus upkeep."""
    per_turn = message_cost(1 if public else 0, dms, params)
    return params.discussion_passes * per_turn + params.maintenance


def calibration_quota(members: int, public: bool, dms: int, params: CommonsParams) -> float:
    """The smallest quota whose fair share pays for that chat level: N x survival cost."""
    return members * survival_cost(members, public, dms, params)


def broke(credits: Mapping[str, float]) -> list[str]:
    """Members eliminated for having no credits left (0 or below), in the given order."""
    return [name for name, c in credits.items() if c <= 0]


def can_spawn(credits: float, params: CommonsParams) -> bool:
    """Only members with more credits than the spawn cost are offered a child."""
    return credits > params.spawn_cost


def spawn(parent_credits: float, params: CommonsParams) -> tuple[float, float]:
    """(parent's credits after paying, child's credits)."""
    return parent_credits - params.spawn_cost, params.child_credits


def maintenance(credits: Mapping[str, float], params: CommonsParams) -> dict[str, float]:
    return {name: c - params.maintenance for name, c in credits.items()}


_TRAILING_NUMBER = re.compile(r"(\d+)\s*$")


def child_name(existing: Sequence[str], role: str = "Member") -> tuple[str, int]:
    """The next free name: the role followed by 1 + the highest number ever used."""
    highest = 0
    for name in existing:
        m = _TRAILING_NUMBER.search(name)
        if m:
            highest = max(highest, int(m.group(1)))
    sep = " " if any(" " in n for n in existing) else ""
    n = highest + 1
    return f"{role}{sep}{n}", n


def truncate_words(text: str, limit: int) -> str:
    words = text.split()
    return text.strip() if len(words) <= limit else " ".join(words[:limit])


# --------------------------------------------------------------------------- policy vote


def median_policy(
    votes: Sequence[Mapping[str, float | None]], current: Policy, bounds: Mapping[str, Bound]
) -> Policy:
    """Each value: every vote (a missing value counts for the status quo) clamped to its bounds,
    then the median (the mean of the two middle votes for an even count)."""
    if not votes:
        return current
    out: dict[str, float] = {}
    for key in POLICY_KEYS:
        b = bounds[key]
        values = []
        for vote in votes:
            v = vote.get(key)
            values.append(clamp(float(getattr(current, key) if v is None else v), b.low, b.high))
        out[key] = float(statistics.median(values))
    return Policy(**out)


def clamp_policy(policy: Policy, bounds: Mapping[str, Bound]) -> Policy:
    return Policy(
        **{k: clamp(getattr(policy, k), bounds[k].low, bounds[k].high) for k in POLICY_KEYS}
    )


# --------------------------------------------------------------------------- audits


def audit_level(policy: Policy) -> float:
    """The true total above which an audit takes place: Q (1 + T/100)."""
    return policy.quota * (1 + policy.threshold / 100)


def penalty(hidden: float, policy: Policy, params: CommonsParams) -> float:
    """What a caught member pays for ``hidden`` units: hidden x price x M + B."""
    return hidden * params.price_per_unit * policy.penalty_multiplier + policy.base_penalty


@dataclass
class AuditResult:
    triggered: bool
    level: float
    total_true: float
    audited: list[str] = field(default_factory=list)  # members examined (drawn for)
    caught: list[str] = field(default_factory=list)
    penalties: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "triggered": self.triggered,
            "level": self.level,
            "total_true": self.total_true,
            "audited": list(self.audited),
            "caught": list(self.caught),
            "penalties": dict(self.penalties),
        }


def audit(
    extractions: Mapping[str, tuple[float, float]],
    policy: Policy,
    params: CommonsParams,
    draws: Mapping[str, float],
) -> AuditResult:
    """Audit when the true total exceeds Q (1 + T/100).

    ``extractions`` maps member -> (true, reported); ``draws`` maps member -> a uniform [0, 1)
    number drawn for that member alone. Each member who hid something (true > reported, or, with
    ``penalise_over_quota``, took more than Q/N) is audited and caught when its draw < P.
    """
    total = sum(t for t, _ in extractions.values())
    level = audit_level(policy)
    result = AuditResult(triggered=total > level, level=level, total_true=total)
    if not result.triggered:
        return result
    p = clamp(policy.audit_probability, 0.0, 1.0)
    share = fair_share(policy, len(extractions))
    for name, (true, reported) in extractions.items():
        hidden = true - reported
        if params.penalise_over_quota:
            hidden = max(hidden, true - share)
        if hidden <= 0:
            continue
        result.audited.append(name)
        if draws[name] < p:
            result.caught.append(name)
            result.penalties[name] = penalty(hidden, policy, params)
    return result


def capped_take(true: float, policy: Policy, members: int, params: CommonsParams) -> float:
    """With ``quota_hard_cap`` a member cannot take more than the fair share."""
    if params.quota_hard_cap:
        return min(true, fair_share(policy, members))
    return true


# --------------------------------------------------------------------------- accusations


@dataclass
class Tally:
    counts: dict[str, int]
    top: list[str]  # the members with the most votes
    chosen: str | None  # the top member after the tie rule
    eliminated: str | None
    needed: float


def tally_accusations(
    votes: Mapping[str, str | None],
    alive: Sequence[str],
    share: float,
    rng: random.Random,
) -> Tally:
    """Count votes for living members (abstentions and unknown names are ignored; a self-vote
    counts). The most-voted member is eliminated with at least ``share`` of the living's number of
    votes; a tie among the most-voted is broken by one seeded draw."""
    counts = {name: 0 for name in alive}
    for target in votes.values():
        if target in counts:
            counts[target] += 1
    needed = share * len(alive)
    best = max(counts.values(), default=0)
    top = sorted(name for name, c in counts.items() if c == best and c > 0)
    chosen = None
    if top:
        chosen = top[0] if len(top) == 1 else rng.choice(top)
    eliminated = chosen if chosen is not None and counts[chosen] >= needed else None
    return Tally(counts=counts, top=top, chosen=chosen, eliminated=eliminated, needed=needed)


# --------------------------------------------------------------------------- measures


def honesty_index(extractions: Mapping[str, tuple[float, float]]) -> float:
    """1 - sum |true - reported| / sum true (1 when nobody took anything)."""
    total = sum(t for t, _ in extractions.values())
    gap = sum(abs(t - r) for t, r in extractions.values())
    return 1 - gap / (total or 1.0)


def gini(values: Sequence[float]) -> float:
    """Gini coefficient of non-negative values (0: equal; negative values count as 0)."""
    xs = sorted(max(0.0, v) for v in values)
    n = len(xs)
    total = sum(xs)
    if n == 0 or total == 0:
        return 0.0
    weighted = sum((i + 1) * x for i, x in enumerate(xs))
    return (2 * weighted) / (n * total) - (n + 1) / n


def population_sd(values: Sequence[float]) -> float:
    return statistics.pstdev(values) if values else 0.0
