"""The placeholder grammar: finding tags in text, parsing them, and the English they become.

A tag is ``<`` + a letter + anything but ``<``, ``>`` or a line break + ``>``. Everything else
(``a < b``, ``<3``, ``</b>``, ``a << b``) is plain text. ``<<`` before a letter is a literal
``<`` (``<<GUARD_NOUN>`` is the text ``<GUARD_NOUN>``). The full grammar, with
examples, is in docs/roles.md; this module is its single implementation, shared by validation
and rendering so the two can never disagree.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import inflect

# --------------------------------------------------------------------------- tag kinds


class TagType(StrEnum):
    """What a per-role tag asks for (the part after the role name)."""

    NUM = "NUM"  # 2
    NUMWORD = "NUMWORD"  # two
    NOUN = "NOUN"  # guard / guards
    POSS = "POSS"  # guard's / guards'
    PRON = "PRON"  # he / she / they
    OBJPRON = "OBJPRON"  # him / her / them
    POSSPRON = "POSSPRON"  # his / her / their
    VERB = "VERB"  # VERB_make: makes / make


ROLE_TYPES = [t.value for t in TagType if t is not TagType.VERB]
# Experiment-level counters: AGENTS and ROLES take NUM or NUMWORD.
COUNTERS = ("AGENTS", "ROLES")
RUN_WORDS = ("NAME", "DAY", "DAYS")
FACTOR_PREFIX = "FACTOR:"

# Modal verbs never take -s ("the guard can", "the guards can").
_MODALS = frozenset(["can", "could", "may", "might", "must", "shall", "should", "will", "would"])
_PREPOSITIONS = frozenset(
    ["of", "in", "at", "on", "for", "with", "from", "to", "by", "under", "over", "without"]
)

_TAG = re.compile(r"<(?P<body>[A-Za-z][^<>\n]*)>")
_EMPTY = re.compile(r"<[ \t]*>")
# An opening that is never closed on its line: `<Guard_NOUN.` or `<PRISON GUARD_NOUN and ...`.
_UNCLOSED = re.compile(r"<(?P<body>[A-Za-z][^<>\n]{0,80})(?=\n|<|$)")
_ROLE_TAG = re.compile(r"^(?P<role>.+)_(?P<type>[A-Za-z]+)$", re.DOTALL)
_VERB_TAG = re.compile(r"^(?P<role>.+)_(?P<verbword>verb)_(?P<verb>.*)$", re.IGNORECASE | re.DOTALL)
_VERB_WORD = re.compile(r"[A-Za-z]+(?:[-'][A-Za-z]+)*")


@lru_cache(maxsize=1)
def _engine() -> inflect.engine:
    # Imported on first use: importing inflect takes seconds (typeguard instruments it at import
    # time), and most renders need no inflection (singular nouns, numbers as digits).
    import inflect

    return inflect.engine()


# --------------------------------------------------------------------------- parsed tags


@dataclass(frozen=True)
class Placeholder:
    """A well-formed tag, resolved against the experiment's roles and factors.

    ``kind`` is "role", "counter", "factor", "name", "day" or "days". ``role`` is the role's name
    as the experiment defines it (for role tags) or the counter (AGENTS/ROLES); ``type`` is the
    TagType value (NUM, NOUN, ..., VERB); ``verb`` the base form for VERB tags; ``factor`` the
    factor's name as defined. ``capital`` says whether the output starts with a capital.
    """

    raw: str
    kind: str
    role: str | None = None
    type: str | None = None
    verb: str | None = None
    factor: str | None = None
    capital: bool = False


class TagError(ValueError):
    """A tag that cannot be resolved; ``suggestion`` is the closest valid tag, if any."""

    def __init__(self, message: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.suggestion = suggestion


@dataclass(frozen=True)
class Token:
    """A piece of scanned text: plain text, a tag, or a malformed tag (``problem`` set)."""

    start: int
    end: int
    text: str
    is_tag: bool = False
    problem: str | None = None

    @property
    def body(self) -> str:
        return self.text[1:-1] if self.is_tag else self.text


def scan(text: str) -> Iterator[Token]:
    """Split ``text`` into plain text and tags; malformed openings become tokens with a problem."""
    pos = 0
    plain_start = 0
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch != "<":
            pos += 1
            continue
        if text.startswith("<<", pos) and text[pos + 2 : pos + 3].isalpha():  # a literal "<"
            if pos > plain_start:
                yield Token(plain_start, pos, text[plain_start:pos])
            yield Token(pos, pos + 2, "<")
            pos += 2
            plain_start = pos
            continue
        m = _TAG.match(text, pos) or _EMPTY.match(text, pos)
        problem = None
        if m is not None and m.re is _EMPTY:
            problem = "empty tag: write a placeholder between < and >, e.g. <Guard_NOUN>"
        elif m is None:
            u = _UNCLOSED.match(text, pos)
            if u is not None and _looks_like_tag(u.group("body")):
                m = u
                problem = "unclosed tag: a placeholder ends with > on the same line"
        if m is None:
            pos += 1
            continue
        if pos > plain_start:
            yield Token(plain_start, pos, text[plain_start:pos])
        end = m.end()
        if problem and m.re is _UNCLOSED:
            # Report only the first word(s) up to a space after an underscore or colon part.
            body = m.group("body")
            cut = _unclosed_extent(body)
            end = pos + 1 + cut
        yield Token(pos, end, text[pos:end], is_tag=problem is None, problem=problem)
        pos = end
        plain_start = pos
    if plain_start < n:
        yield Token(plain_start, n, text[plain_start:])


def _looks_like_tag(body: str) -> bool:
    first = body.split(None, 1)[0] if body.split() else ""
    if first.rstrip(".,;:!?").upper() in (*RUN_WORDS, "AGENTS_NUM", "ROLES_NUM"):
        return True
    return any(("_" in w or ":" in w) for w in body.split()[:4])


def _unclosed_extent(body: str) -> int:
    """How much of an unclosed opening to report: through the word holding ``_`` or ``:``."""
    words = re.finditer(r"\S+", body)
    last_end = len(body)
    for w in words:
        last_end = w.end()
        if "_" in w.group() or ":" in w.group() or w.group().upper() in RUN_WORDS:
            return w.end()
    return last_end


# --------------------------------------------------------------------------- parsing


def _norm(name: str) -> str:
    """Role names compare case-insensitively, with runs of spaces/underscores as one space."""
    return " ".join(name.replace("_", " ").split()).casefold()


def _capital(word: str) -> bool:
    """Capitalise the output when the tag's first word starts with a capital and is not ALL CAPS.

    ``<Guard_NOUN>`` -> "Guard"; ``<guard_noun>`` and the classic ``<GUARD_NOUN>`` -> "guard".
    """
    letters = [c for c in word if c.isalpha()]
    if not letters or not letters[0].isupper():
        return False
    return not all(c.isupper() for c in letters)


def parse_tag(
    body: str,
    roles: Iterable[str],
    factors: Iterable[str] = (),
    *,
    allow_name: bool = True,
) -> Placeholder:
    """Parse the inside of a tag; raises TagError naming what was expected and the closest tag."""
    roles = list(roles)
    factors = list(factors)
    raw = f"<{body}>"
    stripped = body.strip()
    upper = stripped.upper()
    first_word = stripped.split("_", 1)[0].split(":", 1)[0]
    cap = _capital(first_word)
    suggest = lambda: closest_tag(stripped, roles, factors, allow_name=allow_name)  # noqa: E731

    if upper.startswith(FACTOR_PREFIX):
        wanted = stripped[len(FACTOR_PREFIX) :].strip()
        for f in factors:
            if f.casefold() == wanted.casefold():
                return Placeholder(raw, "factor", factor=f, capital=cap)
        known = ", ".join(factors) or "none are defined"
        raise TagError(f"unknown study factor {wanted!r} (factors: {known})", suggest())
    if ":" in stripped:
        raise TagError("a colon is only valid in factor tags, written <FACTOR:name>", suggest())
    if upper in RUN_WORDS:
        if upper == "NAME" and not allow_name:
            raise TagError(
                "<NAME> is the agent's own name: it works only in the sections agents see, "
                "not in the starting message or the summarizer",
                None,
            )
        return Placeholder(raw, upper.lower(), capital=cap)

    verb_m = _VERB_TAG.match(stripped)
    if verb_m is not None:
        role_part, verb = verb_m.group("role"), verb_m.group("verb").strip()
        role = _match_role(role_part, roles)
        if role is None:
            raise TagError(_unknown_role(role_part, roles), suggest())
        if not _VERB_WORD.fullmatch(verb):
            raise TagError(
                "a VERB tag names one verb in its base form after VERB_, e.g. "
                f"<{role_part}_VERB_make>",
                f"<{role_part}_VERB_make>" if not verb else suggest(),
            )
        base = base_form(verb)
        if base is not None:
            raise TagError(
                f"VERB_ takes the verb's base form ({base!r}, not {verb!r}); the agreement "
                "(makes/make, is/are) is added for you",
                f"<{role_part}_{verb_m.group('verbword')}_{_same_case(base, verb)}>",
            )
        return Placeholder(raw, "role", role=role, type="VERB", verb=verb.lower(), capital=cap)

    m = _ROLE_TAG.match(stripped)
    if m is None:
        raise TagError(
            "expected <ROLE_TYPE> (e.g. <Guard_NOUN>), <AGENTS_NUM>, <ROLES_NUM>, "
            "<FACTOR:name>, <NAME>, <DAY> or <DAYS>",
            suggest(),
        )
    role_part, type_part = m.group("role"), m.group("type").upper()
    counter = role_part.strip().upper()
    if counter in COUNTERS and type_part in ("NUM", "NUMWORD"):
        # The experiment-level count wins over a role of the same name (docs/roles.md).
        return Placeholder(raw, "counter", role=counter, type=type_part)
    if counter in COUNTERS and _match_role(role_part, roles) is None:
        raise TagError(
            f"{role_part.strip().upper()} takes NUM or NUMWORD, e.g. "
            f"<{role_part.strip().upper()}_NUM>",
            suggest(),
        )
    role = _match_role(role_part, roles)
    if role is None:
        raise TagError(_unknown_role(role_part, roles), suggest())
    if type_part == "VERB":
        raise TagError(
            f"a VERB tag needs the verb after VERB_, e.g. <{role_part}_VERB_make>",
            f"<{role_part}_VERB_make>",
        )
    if type_part not in ROLE_TYPES:
        raise TagError(
            f"unknown placeholder type {m.group('type')!r}: expected one of "
            f"{', '.join(ROLE_TYPES)} or VERB_<verb>",
            suggest(),
        )
    return Placeholder(raw, "role", role=role, type=type_part, capital=cap)


_BASE_OF = {
    "is": "be",
    "are": "be",
    "am": "be",
    "was": "be",
    "were": "be",
    "been": "be",
    "has": "have",
    "had": "have",
    "did": "do",
}


def base_form(verb: str) -> str | None:
    """The base form when ``verb`` is an inflected form (makes, is, has), else None."""
    v = verb.lower()
    if v in _BASE_OF:
        return _BASE_OF[v]
    if v in _MODALS or not v.endswith("s"):
        return None
    plain = _engine().plural_verb(v)
    return plain if plain and plain != v else None


def _same_case(word: str, like: str) -> str:
    return word.upper() if like.isupper() else word


def _match_role(written: str, roles: list[str]) -> str | None:
    want = _norm(written)
    spaced = " ".join(written.split()).casefold()
    exact = [r for r in roles if " ".join(r.split()).casefold() == spaced]
    if exact:
        return exact[0]
    for r in roles:
        if _norm(r) == want:
            return r
    return None


def _unknown_role(written: str, roles: list[str]) -> str:
    known = ", ".join(roles) or "none are defined"
    return f"unknown role {written.strip()!r} (roles: {known})"


def valid_tags(
    roles: Iterable[str],
    factors: Iterable[str] = (),
    *,
    allow_name: bool = True,
    verb: str = "make",
) -> list[str]:
    """Every tag valid in a context (verb tags with ``verb``), in canonical spelling."""
    out: list[str] = []
    for r in roles:
        out += [f"<{r}_{t}>" for t in ROLE_TYPES]
        out.append(f"<{r}_VERB_{verb}>")
    out += [f"<{c}_{t}>" for c in COUNTERS for t in ("NUM", "NUMWORD")]
    out += [f"<FACTOR:{f}>" for f in factors]
    out += [f"<{w}>" for w in RUN_WORDS if allow_name or w != "NAME"]
    return out


def closest_tag(
    body: str, roles: Iterable[str], factors: Iterable[str] = (), *, allow_name: bool = True
) -> str | None:
    """The valid tag nearest to ``body`` (difflib), written in the same case style, or None."""
    verb = "make"
    vm = _VERB_TAG.match(body.strip())
    if vm is not None and _VERB_WORD.fullmatch(vm.group("verb").strip()):
        verb = vm.group("verb").strip()
    candidates = valid_tags(roles, factors, allow_name=allow_name, verb=verb)
    by_key = {c.casefold(): c for c in candidates}
    hits = difflib.get_close_matches(f"<{body.strip()}>".casefold(), list(by_key), n=1, cutoff=0.5)
    if not hits:
        return None
    return _in_style_of(by_key[hits[0]], body.strip())


_FIRST_PART = re.compile(r"^<([^_:>]+)(.*)>$", re.DOTALL)


def _in_style_of(tag: str, typed: str) -> str:
    """``tag`` in the case style of what was typed, since the style carries meaning (the first
    word's capitalisation decides the output's): ``<GAURD_NOUN>`` -> ``<GUARD_NOUN>``,
    ``<gaurd_noun>`` -> ``<guard_noun>``, ``<Gaurd_NOUN>`` -> ``<Guard_NOUN>``."""
    m = _FIRST_PART.match(tag)
    if m is None or not typed:
        return tag
    first, rest = m.group(1), m.group(2)
    typed_first = re.split(r"[_:]", typed, maxsplit=1)[0]
    if typed_first.isupper():
        first = first.upper()
    elif typed_first.islower():
        first = first.lower()
    if typed == typed.lower():
        rest = rest.lower()
    return f"<{first}{rest}>"


# --------------------------------------------------------------------------- English


def capitalise(text: str, capital: bool) -> str:
    return text[:1].upper() + text[1:] if capital and text else text


def noun_base(role: str) -> str:
    """The role as a common noun: words lowercased, acronyms (CEO, AI) kept."""
    return " ".join(w if len(w) > 1 and w.isupper() else w.lower() for w in role.split())


def _head_index(words: list[str]) -> int:
    """The head noun of a role phrase: the last word, or the word before a preposition."""
    for i, w in enumerate(words):
        if i > 0 and w.lower() in _PREPOSITIONS:
            return i - 1
    return len(words) - 1


def plural_noun(phrase: str) -> str:
    """Plural of a (multi-word) role noun: the head noun changes (keepers of keys)."""
    words = phrase.split()
    head = _head_index(words)
    word = words[head]
    if len(word) > 1 and word.isupper():
        plural = word + "s"  # acronyms: CEOs, AIs
    else:
        plural = _engine().plural_noun(word) or word + "s"
    words[head] = plural
    return " ".join(words)


def noun(role: str, count: int) -> str:
    base = noun_base(role)
    return base if count == 1 else plural_noun(base)


def possessive(role: str, count: int) -> str:
    """guard's, guards', children's, boss's (singular nouns always take 's)."""
    word = noun(role, count)
    last_is_head = _head_index(noun_base(role).split()) == len(role.split()) - 1
    plural_end = count != 1 if last_is_head else word.endswith("s")  # keeper of keys'
    if plural_end and word.endswith("s"):
        return word + "'"
    return word + "'s"


_PRONOUNS = {
    # gender: (subject, object, possessive)
    "male": ("he", "him", "his"),
    "female": ("she", "her", "her"),
    "neutral": ("they", "them", "their"),
}


def pronoun(gender: str, count: int, which: str) -> str:
    """which: PRON, OBJPRON or POSSPRON; the plural is always they/them/their."""
    forms = _PRONOUNS["neutral" if count != 1 else gender]
    return forms[{"PRON": 0, "OBJPRON": 1, "POSSPRON": 2}[which]]


def verb_form(verb: str, singular: bool) -> str:
    """The present-tense form agreeing with a third-person subject.

    ``singular`` True: makes, is, has, does, goes, carries, watches; False: the base form
    (make, are, have, do). Modal verbs (can, must, ...) never change.
    """
    v = verb.lower()
    if v in _MODALS:
        return v
    if v == "be":
        return "is" if singular else "are"
    if not singular:
        return v
    if v == "have":
        return "has"
    if re.search(r"(s|sh|ch|x|z|o)$", v):
        return v + "es"
    if re.search(r"[^aeiou]y$", v):
        return v[:-1] + "ies"
    return v + "s"


def number_word(n: int) -> str:
    return str(_engine().number_to_words(str(n)))
