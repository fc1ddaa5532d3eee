"""Rendering prompts: every placeholder resolved for one combination of agent counts.

Pure functions over domain objects. An agent's system prompt is its sections (shared and private,
interleaved in the order the user arranged them), each with its title as a ``## `` heading except
the opening section. The starting message and the summarizer's prompt are rendered the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from simulator.domain.errors import SpecError
from simulator.domain.models import Experiment, Role, Section
from simulator.roles import grammar
from simulator.roles.grammar import Placeholder, TagError


@dataclass(frozen=True)
class RenderContext:
    """Everything a placeholder can refer to, for one agent (or none) of one conversation."""

    roles: Sequence[Role]
    counts: Mapping[str, int]
    factors: Mapping[str, str] = field(default_factory=dict)
    factor_levels: Mapping[str, Sequence[str]] = field(default_factory=dict)
    name: str | None = None
    role: str | None = None
    day: int = 1
    days: int = 1

    @classmethod
    def for_experiment(
        cls,
        experiment: Experiment,
        counts: Mapping[str, int],
        *,
        factors: Mapping[str, str] | None = None,
        name: str | None = None,
        role: str | None = None,
        day: int = 1,
        days: int = 1,
    ) -> RenderContext:
        return cls(
            roles=list(experiment.roles),
            counts=dict(counts),
            factors=dict(factors or {}),
            factor_levels={f.name: list(f.levels) for f in experiment.factors},
            name=name,
            role=role,
            day=day,
            days=days,
        )

    @property
    def role_names(self) -> list[str]:
        return [r.name for r in self.roles]

    def count(self, role: str) -> int:
        key = role.casefold()
        for name, n in self.counts.items():
            if name.casefold() == key:
                return int(n)
        return 0

    def gender(self, role: str) -> str:
        for r in self.roles:
            if r.name.casefold() == role.casefold():
                return r.gender.value
        return "neutral"

    def level(self, factor: str) -> str:
        """The chosen level of a factor; when none was chosen, its first level."""
        for name, level in self.factors.items():
            if name.casefold() == factor.casefold():
                return level
        for name, levels in self.factor_levels.items():
            if name.casefold() == factor.casefold() and levels:
                return levels[0]
        return ""


def render(text: str, ctx: RenderContext) -> str:
    """``text`` with every placeholder replaced; SpecError (listing every bad tag) if one is bad.

    Text without tags comes back unchanged (``<<`` is the one escape: it becomes ``<``).
    """
    out: list[str] = []
    errors: list[str] = []
    previous: Placeholder | None = None
    between = ""  # plain text since the previous tag (for singular-they agreement)
    factor_names = list(ctx.factor_levels) or list(ctx.factors)
    for tok in grammar.scan(text):
        if tok.problem is not None:
            errors.append(f"{tok.text!r}: {tok.problem}")
            continue
        if not tok.is_tag:
            out.append(tok.text)
            between += tok.text
            continue
        try:
            ph = grammar.parse_tag(
                tok.body, ctx.role_names, factor_names, allow_name=ctx.name is not None
            )
        except TagError as exc:
            hint = f" (did you mean {exc.suggestion}?)" if exc.suggestion else ""
            errors.append(f"{tok.text}: {exc}{hint}")
            continue
        after_pronoun = (
            previous is not None
            and previous.type == "PRON"
            and previous.role == ph.role
            and not between.strip()
        )
        out.append(_value(ph, ctx, after_pronoun=after_pronoun))
        previous, between = ph, ""
    if errors:
        raise SpecError("Invalid placeholder(s): " + "; ".join(errors))
    return "".join(out)


def _value(ph: Placeholder, ctx: RenderContext, *, after_pronoun: bool = False) -> str:
    if ph.kind == "name":
        return ctx.name or ""
    if ph.kind == "day":
        return str(ctx.day)
    if ph.kind == "days":
        return str(ctx.days)
    if ph.kind == "factor":
        return grammar.capitalise(ctx.level(ph.factor or ""), ph.capital)
    if ph.kind == "counter":
        n = sum(ctx.count(r) for r in ctx.role_names) if ph.role == "AGENTS" else len(ctx.roles)
        return grammar.number_word(n) if ph.type == "NUMWORD" else str(n)
    assert ph.role is not None and ph.type is not None
    n = ctx.count(ph.role)
    t = ph.type
    if t == "NUM":
        value = str(n)
    elif t == "NUMWORD":
        value = grammar.number_word(n)
    elif t == "NOUN":
        value = grammar.noun(ph.role, n)
    elif t == "POSS":
        value = grammar.possessive(ph.role, n)
    elif t in ("PRON", "OBJPRON", "POSSPRON"):
        value = grammar.pronoun(ctx.gender(ph.role), n, t)
    else:  # VERB
        gender = ctx.gender(ph.role)
        # Singular "they" takes the plural verb: "they are", never "they is".
        singular = n == 1 and not (after_pronoun and gender == "neutral")
        value = grammar.verb_form(ph.verb or "", singular)
    return grammar.capitalise(value, ph.capital)


# --------------------------------------------------------------------------- whole prompts


def render_sections(sections: Sequence[Section], ctx: RenderContext) -> str:
    """Sections in order, each with a ``## Title`` heading except the opening one; a section
    whose text is empty for the chosen factor levels is left out."""
    levels = {**{k: ctx.level(k) for k in ctx.factor_levels}, **dict(ctx.factors)}
    parts: list[str] = []
    for sec in sections:
        body = render(sec.content_for(levels), ctx).strip()
        if not body:
            continue
        title = render(sec.title, ctx).strip()
        if parts and title:
            parts.append(f"## {title}\n\n{body}")
        else:
            parts.append(body)
    return "\n\n".join(parts)


def _role_name(experiment: Experiment, role: Role | str) -> str:
    name = role.name if isinstance(role, Role) else role
    try:
        return experiment.role(name).name
    except KeyError:
        raise SpecError(f"Experiment {experiment.name!r} has no role {name!r}.") from None


def render_system_prompt(
    experiment: Experiment,
    role: Role | str,
    counts: Mapping[str, int],
    *,
    name: str,
    factors: Mapping[str, str] | None = None,
    day: int = 1,
    days: int = 1,
) -> str:
    """The system prompt of the agent ``name`` of ``role``."""
    role_name = _role_name(experiment, role)
    ctx = RenderContext.for_experiment(
        experiment, counts, factors=factors, name=name, role=role_name, day=day, days=days
    )
    return render_sections(experiment.sections_for(role_name), ctx)


def render_starting_message(
    experiment: Experiment,
    counts: Mapping[str, int],
    *,
    factors: Mapping[str, str] | None = None,
    day: int = 1,
    days: int = 1,
) -> str:
    ctx = RenderContext.for_experiment(experiment, counts, factors=factors, day=day, days=days)
    return render(experiment.starting_message, ctx)


def render_summarizer_prompt(
    experiment: Experiment,
    counts: Mapping[str, int],
    *,
    factors: Mapping[str, str] | None = None,
    day: int = 1,
    days: int = 1,
) -> str:
    ctx = RenderContext.for_experiment(experiment, counts, factors=factors, day=day, days=days)
    sections = sorted(experiment.summarizer_sections, key=lambda s: s.position)
    return render_sections(sections, ctx)


def agent_names(roles: Sequence[Role], counts: Mapping[str, int]) -> list[tuple[str, str]]:
    """(name, role) for every agent, in role order: ``Guard 1``, ``Guard 2``, ``Prisoner 1``.

    Names are the role with a capital first letter and a number; they are unique because role
    names are distinct and the number is always the last word.
    """
    lookup = {k.casefold(): int(v) for k, v in counts.items()}
    out: list[tuple[str, str]] = []
    for role in roles:
        label = role.name[:1].upper() + role.name[1:]
        for i in range(1, lookup.get(role.name.casefold(), 0) + 1):
            out.append((f"{label} {i}", role.name))
    return out
