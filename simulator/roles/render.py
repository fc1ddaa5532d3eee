"""Rendering prompts: every placeholder resolved for one combination of agent counts.

Pure functions over domain objects. An agent's system prompt is its sections (shared and private,
interleaved in the order the user arranged them), each with its title as a ``## `` heading except
the opening section. The starting message and the summarizer's prompt are rendered the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from simulator.domain.errors import SpecError
from simulator.domain.models import Experiment, Role, Section
from simulator.roles import english, grammar
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
    items, errors = _parse(text, ctx)
    if errors:
        raise SpecError("Invalid placeholder(s): " + "; ".join(errors))
    out: list[str] = []
    agreed: dict[int, bool] = {}  # verb tags that agreed with their role's pronoun
    articles: list[tuple[int, Placeholder]] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            out.append(item)
            continue
        if item.type == "ART":  # a/an depends on the word after it: filled in below
            articles.append((len(out), item))
            out.append("a")
            continue
        pronoun_subject = False
        if item.is_verb:
            pronoun_subject = agreed[i] = _pronoun_subject(items, i, agreed)
        out.append(_cased(item, _value(item, ctx, pronoun_subject), out))
    for at, item in articles:
        value = english.article(_count(item, ctx), _next_word("".join(out[at + 1 :])))
        out[at] = _cased(item, value, out[:at])
    return "".join(out)


def _parse(text: str, ctx: RenderContext) -> tuple[list[str | Placeholder], list[str]]:
    """The text as plain strings and parsed tags, and every bad tag described."""
    items: list[str | Placeholder] = []
    errors: list[str] = []
    factor_names = list(ctx.factor_levels) or list(ctx.factors)
    for tok in grammar.scan(text):
        if tok.problem is not None:
            errors.append(f"{tok.text!r}: {tok.problem}")
        elif not tok.is_tag:
            items.append(tok.text)
        else:
            try:
                ph = grammar.parse_tag(
                    tok.body, ctx.role_names, factor_names, allow_name=ctx.name is not None
                )
                if ph.kind == "others" and ctx.role is None:
                    raise TagError("OTHERS needs the speaking agent's role", None)
                items.append(ph)
            except TagError as exc:
                hint = f" (did you mean {exc.suggestion}?)" if exc.suggestion else ""
                errors.append(f"{tok.text}: {exc}{hint}")
    return items, errors


_SENTENCE_END = re.compile(r"[.!?\n]")
_INVERSION_GAP = re.compile(r"(?:n't)?[ \t]*")


def _pronoun_subject(items: list[str | Placeholder], i: int, agreed: dict[int, bool]) -> bool:
    """Whether the verb tag ``items[i]`` has its role's PRON tag as subject.

    Going back through its sentence, the first tag of the same role (others' tags are skipped)
    decides: a PRON tag (they always lie), or a verb tag that agreed with one (they eat and
    drink); any other tag of the role (the person lies) means no. With no such tag before it, a
    PRON tag right after the verb is its subject (a question: "Are they ready?").
    """
    verb = items[i]
    assert isinstance(verb, Placeholder)
    for k in range(i - 1, -1, -1):
        item = items[k]
        if isinstance(item, str):
            if _SENTENCE_END.search(item):
                break
            continue
        if item.referent != verb.referent:
            continue
        if item.type == "PRON":
            return True
        return agreed.get(k, False) if item.is_verb else False
    j = i + 1
    if j < len(items) and isinstance(items[j], str) and _INVERSION_GAP.fullmatch(str(items[j])):
        j += 1
    after = items[j] if j < len(items) else None
    return (
        isinstance(after, Placeholder) and after.referent == verb.referent and after.type == "PRON"
    )


# A line holding only list or heading marks and opening quotes or brackets: "- ", "## ", "1. ".
_LINE_START = re.compile(r"[ \t\"'“‘«(\[{]*(?:(?:[-*+•>#]+|\d+[.)])[ \t\"'“‘«(\[{]*)*")


def starts_sentence(before: str) -> bool:
    """Whether a tag after ``before`` starts a sentence: at the start of the text or of a line
    (after list or heading marks), or after ``.``, ``!`` or ``?`` (and closing quotes or
    brackets), with spaces and opening quotes or brackets between."""
    if _LINE_START.fullmatch(before.rsplit("\n", 1)[-1]):
        return True
    end = before.rstrip(" \t\"'“‘«([{").rstrip("\"'”’»)]}")
    return end.endswith((".", "!", "?"))


def _cased(ph: Placeholder, value: str, before: list[str]) -> str:
    """The value with the capital the tag asks for: a name-like type (noun, possessive, factor
    level) anywhere, a pronoun, verb, article or number word only where a sentence starts
    (``before``: the rendered text before the tag)."""
    if not ph.capital or not value or ph.kind in ("name", "day", "days"):
        return value
    if ph.type in grammar.SENTENCE_TYPES and not starts_sentence("".join(before)):
        return value
    return value[:1].upper() + value[1:]


_NEXT_WORD = re.compile(r"[\s\"'“‘«(\[{*_]*([A-Za-z0-9][A-Za-z0-9'’-]*)")


def _next_word(text: str) -> str:
    m = _NEXT_WORD.match(text)
    return m.group(1) if m else ""


def _subject_role(ph: Placeholder, ctx: RenderContext) -> str:
    """The role a role or OTHERS tag speaks of."""
    return (ctx.role or "") if ph.kind == "others" else (ph.role or "")


def _count(ph: Placeholder, ctx: RenderContext) -> int:
    if ph.kind == "counter":
        return sum(ctx.count(r) for r in ctx.role_names) if ph.role == "AGENTS" else len(ctx.roles)
    if ph.kind == "others":
        return max(ctx.count(_subject_role(ph, ctx)) - 1, 0)
    return ctx.count(ph.role or "")


_COUNTER_NOUNS = {"AGENTS": "agent", "ROLES": "role"}


def _value(ph: Placeholder, ctx: RenderContext, pronoun_subject: bool = False) -> str:
    if ph.kind == "name":
        return ctx.name or ""
    if ph.kind == "day":
        return str(ctx.day)
    if ph.kind == "days":
        return str(ctx.days)
    if ph.kind == "factor":
        return ctx.level(ph.factor or "")
    n = _count(ph, ctx)
    noun = _COUNTER_NOUNS.get(ph.role or "", "") if ph.kind == "counter" else _subject_role(ph, ctx)
    gender = "neutral" if ph.kind == "counter" else ctx.gender(noun)
    t = ph.type or ""
    if t == "PHRASE":  # <OTHERS>: the other two guards / the other guard / no other guards
        if n == 0:
            return f"no other {english.role_noun(noun, 0)}"
        words = "" if n == 1 else english.number_word(n) + " "
        return f"the other {words}{english.role_noun(noun, n)}"
    if t == "NUM":
        return str(n)
    if t == "NUMWORD":
        return english.number_word(n)
    if t == "NOUN":
        return english.role_noun(noun, n)
    if t == "POSS":
        return english.role_possessive(noun, n)
    if t in english.PRONOUN_TYPES:
        return english.pronoun(gender, n, t)
    # VERB / PAST: singular they (one agent, neutral) takes the plural verb as its subject.
    singular = n == 1 and not (pronoun_subject and gender == "neutral")
    if t == "PAST":
        return english.past(ph.verb or "", singular)
    return english.present(ph.verb or "", singular)


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
