"""The placeholder grammar: finding tags in text and parsing them (the English they become is in
``simulator.roles.english``).

A tag is ``<`` + a letter + anything but ``<``, ``>`` or a line break + ``>``. Everything else
(``a < b``, ``<3``, ``</b>``, ``a << b``) is plain text. ``<<`` before a letter is a literal
``<`` (``<<GUARD_NOUN>`` is the text ``<GUARD_NOUN>``). The full grammar, with
examples, is in docs/roles.md; this module is its single implementation, shared by validation
and rendering so the two can never disagree.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from simulator.roles.english import MODALS, base_form

# --------------------------------------------------------------------------- tag kinds


class TagType(StrEnum):
    """What a per-role tag asks for (the part after the role name)."""

    NUM = "NUM"  # 2
    NUMWORD = "NUMWORD"  # two
    NOUN = "NOUN"  # guard / guards
    POSS = "POSS"  # guard's / guards'
    ART = "ART"  # a / an / the (agreeing with the count, a/an with the next word)
    PRON = "PRON"  # he / she / they
    OBJPRON = "OBJPRON"  # him / her / them
    POSSPRON = "POSSPRON"  # his / her / their
    REFLPRON = "REFLPRON"  # himself / herself / themself / themselves
    VERB = "VERB"  # VERB_make: makes / make
    PAST = "PAST"  # PAST_be: was / were; PAST_make: made


VERB_TYPES = ("VERB", "PAST")
ROLE_TYPES = [t.value for t in TagType if t.value not in VERB_TYPES]
# Experiment-level counters: AGENTS (all agents of the conversation) and ROLES.
COUNTERS = ("AGENTS", "ROLES")
COUNTER_TYPES = ("NUM", "NUMWORD", "NOUN")
# The other agents of the speaking agent's own role: every per-role type, and <OTHERS> alone.
OTHERS = "OTHERS"
RUN_WORDS = ("NAME", "DAY", "DAYS")
FACTOR_PREFIX = "FACTOR:"
# Types whose words English capitalises only at the start of a sentence; a capitalised tag of
# any other type (a noun, a possessive, a factor level) is a name and keeps its capital anywhere.
SENTENCE_TYPES = frozenset(
    ["NUMWORD", "ART", "PRON", "OBJPRON", "POSSPRON", "REFLPRON", "VERB", "PAST", "PHRASE"]
)

_TAG = re.compile(r"<(?P<body>[A-Za-z][^<>\n]*)>")
_EMPTY = re.compile(r"<[ \t]*>")
# An opening that is never closed on its line: `<Guard_NOUN.` or `<PRISON GUARD_NOUN and ...`.
_UNCLOSED = re.compile(r"<(?P<body>[A-Za-z][^<>\n]{0,80})(?=\n|<|$)")
_ROLE_TAG = re.compile(r"^(?P<role>.+)_(?P<type>[A-Za-z]+)$", re.DOTALL)
_VERB_TAG = re.compile(
    r"^(?P<role>.+)_(?P<verbword>verb|past)_(?P<verb>.*)$", re.IGNORECASE | re.DOTALL
)
_VERB_WORD = re.compile(r"[A-Za-z]+(?:[-'][A-Za-z]+)*")


# --------------------------------------------------------------------------- parsed tags


@dataclass(frozen=True)
class Placeholder:
    """A well-formed tag, resolved against the experiment's roles and factors.

    ``kind`` is "role", "counter", "others", "factor", "name", "day" or "days". ``role`` is the
    role's name as the experiment defines it (role tags) or the counter (AGENTS/ROLES); ``type``
    is the TagType value (NUM, NOUN, ..., VERB, PAST), or "PHRASE" for ``<OTHERS>`` alone;
    ``verb`` the base form for VERB and PAST tags; ``factor`` the factor's name as defined.
    ``capital`` says whether the tag asks for a capital (its first word starts with one).
    """

    raw: str
    kind: str
    role: str | None = None
    type: str | None = None
    verb: str | None = None
    factor: str | None = None
    capital: bool = False

    @property
    def referent(self) -> tuple[str, str | None]:
        """Who the tag speaks of: a role, the speaker's other agents, a counter."""
        return (self.kind, self.role)

    @property
    def is_verb(self) -> bool:
        return self.type in VERB_TYPES


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
    if first.rstrip(".,;:!?").upper() in (*RUN_WORDS, OTHERS, "AGENTS_NUM", "ROLES_NUM"):
        return True
    return any(("_" in w or ":" in w) for w in body.split()[:4])


def _unclosed_extent(body: str) -> int:
    """How much of an unclosed opening to report: through the word holding ``_`` or ``:``."""
    words = re.finditer(r"\S+", body)
    last_end = len(body)
    for w in words:
        last_end = w.end()
        if "_" in w.group() or ":" in w.group() or w.group().upper() in (*RUN_WORDS, OTHERS):
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


_NAME_ONLY = (
    "{tag} {what}: it works only in the sections agents see, not in the starting message or "
    "the summarizer"
)


def parse_tag(
    body: str,
    roles: Iterable[str],
    factors: Iterable[str] = (),
    *,
    allow_name: bool = True,
) -> Placeholder:
    """Parse the inside of a tag; raises TagError naming what was expected and the closest tag.

    ``allow_name``: an agent is speaking, so ``<NAME>`` and the ``OTHERS`` tags are valid.
    """
    roles = list(roles)
    factors = list(factors)
    raw = f"<{body}>"
    stripped = body.strip()
    upper = stripped.upper()
    first_word = stripped.split("_", 1)[0].split(":", 1)[0]
    cap = _capital(first_word)

    def suggest() -> str | None:
        return closest_tag(stripped, roles, factors, allow_name=allow_name)

    if upper.startswith(FACTOR_PREFIX):
        wanted = stripped[len(FACTOR_PREFIX) :].strip()
        for f in factors:
            if f.casefold() == wanted.casefold():
                return Placeholder(raw, "factor", factor=f, capital=cap)
        known = ", ".join(factors) or "none are defined"
        raise TagError(f"unknown study factor {wanted!r} (factors: {known})", suggest())
    if ":" in stripped:
        raise TagError("a colon is only valid in factor tags, written <FACTOR:name>", suggest())
    if upper in RUN_WORDS or upper == OTHERS:
        if not allow_name and upper in ("NAME", OTHERS):
            what = (
                "is the agent's own name"
                if upper == "NAME"
                else "names the other agents of the speaking agent's role"
            )
            raise TagError(_NAME_ONLY.format(tag=f"<{upper}>", what=what), None)
        if upper == OTHERS:
            return Placeholder(raw, "others", type="PHRASE", capital=cap)
        return Placeholder(raw, upper.lower(), capital=cap)

    verb_m = _VERB_TAG.match(stripped)
    m = verb_m or _ROLE_TAG.match(stripped)
    if m is None:
        raise TagError(
            "expected <ROLE_TYPE> (e.g. <Guard_NOUN>), <AGENTS_NUM>, <ROLES_NUM>, <OTHERS_NUM>, "
            "<OTHERS>, <FACTOR:name>, <NAME>, <DAY> or <DAYS>",
            suggest(),
        )
    role_part = m.group("role")
    type_part = (verb_m.group("verbword") if verb_m else m.group("type")).upper()
    kind, role = _subject(role_part, type_part, roles, allow_name, suggest)
    if verb_m is not None:
        verb = _verb(role_part, verb_m.group("verbword"), verb_m.group("verb").strip(), suggest)
        return Placeholder(raw, kind, role=role, type=type_part, verb=verb, capital=cap)
    if type_part in VERB_TYPES:
        raise TagError(
            f"a {type_part} tag needs the verb after {type_part}_, e.g. "
            f"<{role_part}_{m.group('type')}_make>",
            f"<{role_part}_{m.group('type')}_make>",
        )
    allowed = COUNTER_TYPES if kind == "counter" else ROLE_TYPES
    if type_part not in allowed:
        if kind == "counter":
            raise TagError(_counter_types(role_part), suggest())
        raise TagError(
            f"unknown placeholder type {m.group('type')!r}: expected one of "
            f"{', '.join(ROLE_TYPES)}, VERB_<verb> or PAST_<verb>",
            suggest(),
        )
    return Placeholder(raw, kind, role=role, type=type_part, capital=cap)


def _counter_types(written: str) -> str:
    name = written.strip().upper()
    return f"{name} takes {', '.join(COUNTER_TYPES)}, VERB_<verb> or PAST_<verb>, e.g. <{name}_NUM>"


def _subject(
    role_part: str,
    type_part: str,
    roles: list[str],
    allow_name: bool,
    suggest: Callable[[], str | None],
) -> tuple[str, str]:
    """(kind, role) of the words before the type: a counter, OTHERS or one of the roles.

    AGENTS, ROLES and OTHERS win over a role of the same name for the types they take
    (docs/roles.md); for any other type such a role is used if it exists.
    """
    special = " ".join(role_part.split()).upper()
    counter_type = type_part in (*COUNTER_TYPES, *VERB_TYPES)
    if special in COUNTERS and counter_type:
        return "counter", special
    role = _match_role(role_part, roles)
    if special == OTHERS and (type_part in (*ROLE_TYPES, *VERB_TYPES) or role is None):
        if not allow_name:
            raise TagError(
                _NAME_ONLY.format(
                    tag=f"<{role_part}_...>",
                    what="names the other agents of the speaking agent's role",
                ),
                None,
            )
        return "others", OTHERS
    if role is not None:
        return "role", role
    if special in COUNTERS:
        raise TagError(_counter_types(role_part), suggest())
    raise TagError(_unknown_role(role_part, roles), suggest())


def _verb(role_part: str, verbword: str, verb: str, suggest: Callable[[], str | None]) -> str:
    """The verb of a VERB or PAST tag, checked to be one word in its base form."""
    kind = verbword.upper()
    if not _VERB_WORD.fullmatch(verb):
        raise TagError(
            f"a {kind} tag names one verb in its base form after {kind}_, e.g. "
            f"<{role_part}_{verbword}_make>",
            f"<{role_part}_{verbword}_make>" if not verb else suggest(),
        )
    base = base_form(verb)
    if base is not None:
        contraction = verb.lower().endswith("n't")
        hint = (
            f"; write the contraction after the tag: <{role_part}_{verbword}_"
            f"{_same_case(base, verb)}>n't"
            if contraction
            else ""
        )
        raise TagError(
            f"{kind}_ takes the verb's base form ({base!r}, not {verb!r}); the agreement "
            f"(makes/make, is/are, was/were) is added for you{hint}",
            f"<{role_part}_{verbword}_{_same_case(base, verb)}>",
        )
    if "'" in verb and verb.lower() not in MODALS:
        raise TagError(
            f"{kind}_ takes one verb in its base form, without a contraction; write "
            "<ROLE_VERB_do>n't for doesn't/don't",
            None,
        )
    return verb.lower()


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
    verbs = [f"VERB_{verb}", f"PAST_{verb}"]
    subjects = [*roles, OTHERS] if allow_name else list(roles)
    out: list[str] = []
    for r in subjects:
        out += [f"<{r}_{t}>" for t in (*ROLE_TYPES, *verbs)]
    out += [f"<{c}_{t}>" for c in COUNTERS for t in (*COUNTER_TYPES, *verbs)]
    out += [f"<FACTOR:{f}>" for f in factors]
    out += [f"<{w}>" for w in RUN_WORDS if allow_name or w != "NAME"]
    out += [f"<{OTHERS}>"] if allow_name else []
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
