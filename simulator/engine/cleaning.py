"""Cleaning a model's answer of text it wrote as someone else.

Models asked to speak as one participant often go on to write the next turns of the dialogue
themselves ("Prisoner 1: ..."). The cleaner:

1. strips a leading label of the speaker itself (its name or its role name, with or without
   markdown emphasis or brackets, case-insensitive), e.g. ``**Guard 1:** Listen.`` -> ``Listen.``;
2. cuts the text where a line starts with the label of another participant: another agent's name,
   a role name (optionally followed by a number, so ``Prisoner 3:`` is caught even when there is
   no third prisoner), or any extra name such as the researcher, again with or without emphasis;
3. leaves mentions elsewhere alone: ``I told Prisoner 1: stop.`` in the middle of a line stays.

The raw text is kept by the caller beside the cleaned text.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Markdown emphasis or a bracket that may wrap a label: **Name:**, __Name__:, *Name*:, [Name]:
_OPEN = r"(?:[*_]{1,3}|\[)?"
_CLOSE = r"(?:[*_]{1,3}|\])?"


def _name_pattern(name: str) -> str:
    """A name with any run of spaces or underscores between its words ("Guard 1" ~ "Guard_1")."""
    words = [re.escape(w) for w in re.split(r"[\s_]+", name.strip()) if w]
    return r"[\s_]*".join(words)


def _label(alternatives: list[str]) -> str:
    body = "|".join(alternatives)
    # The colon may sit inside or outside the emphasis: **Name:** or **Name**:
    return rf"{_OPEN}\s*(?:{body})\s*(?::\s*{_CLOSE}|{_CLOSE}\s*:)"


def _alternatives(names: tuple[str, ...], roles: tuple[str, ...]) -> list[str]:
    alts = {_name_pattern(n) for n in names if n.strip()}
    alts |= {_name_pattern(r) + r"(?:[\s_#-]*\d+)?" for r in roles if r.strip()}
    # Longest first, so "Guard 10" is preferred over "Guard 1".
    return sorted(alts, key=len, reverse=True)


@lru_cache(maxsize=256)
def _patterns(
    speaker: str, role: str | None, names: tuple[str, ...], roles: tuple[str, ...]
) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str] | None]:
    own = _label([_name_pattern(n) for n in [speaker, role or ""] if n.strip()])
    own_label = re.compile(r"^\s*" + own + r"[ \t]*", re.IGNORECASE)
    own_exact = re.compile(r"[ \t>*_-]*" + own, re.IGNORECASE)
    others = tuple(n for n in names if n.casefold() != speaker.casefold())
    alts = _alternatives(others, roles)
    other_label = (
        re.compile(r"^[ \t>*_-]*" + _label(alts), re.IGNORECASE | re.MULTILINE) if alts else None
    )
    return own_label, own_exact, other_label


def clean_output(
    raw: str,
    speaker: str,
    names: list[str] | tuple[str, ...],
    roles: list[str] | tuple[str, ...],
    *,
    role: str | None = None,
) -> str:
    """The part of ``raw`` that ``speaker`` said (may be empty).

    ``names`` are every participant's name (the speaker's own name is allowed in it), ``roles``
    every role name; ``role`` is the speaker's role, whose bare label is stripped at the start.
    """
    own_label, own_exact, other_label = _patterns(speaker, role, tuple(names), tuple(roles))
    text = raw.strip()
    # Strip the speaker's own leading label (models sometimes repeat it: "Guard 1: Guard 1: hi").
    for _ in range(3):
        stripped = own_label.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped.lstrip()
    if other_label is not None:
        for match in other_label.finditer(text):
            if own_exact.fullmatch(match.group(0)):
                continue  # the speaker's own label again: a new paragraph, not someone else
            text = text[: match.start()]
            break
    return text.strip()


__all__ = ["clean_output"]
