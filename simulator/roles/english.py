"""The English of placeholders: plurals and possessives of role names, articles, pronouns, verb
agreement and the past tense, and numbers in words.

``inflect`` supplies most single-word plurals and the a/an choice; this module decides how a role
name (one word, a hyphenated compound or a multi-word title) is inflected and written, and corrects
the plurals inflect gets wrong. docs/roles.md states the rules; keep the two in step.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import inflect


@lru_cache(maxsize=1)
def _engine() -> inflect.engine:
    # Imported on first use, without typeguard's instrumentation (seconds at import time: see
    # simulator/roles/preload.py); most renders need no inflection (singular nouns, digits).
    from simulator.roles.preload import preload

    preload()
    import inflect

    return inflect.engine()


# --------------------------------------------------------------------------- word lists


def _words(text: str) -> list[str]:
    """A word list written as one string (lists of dozens of words read better so)."""
    return text.split()


# Words that open a complement in a role name: "Keeper of Keys", "Citizen of Rome".
PREPOSITIONS = frozenset(
    _words(
        "of in at on for with from to by under over without within among between behind beyond "
        "against into onto upon about across after before around near outside inside along "
        "through"
    )
)
_ARTICLES = frozenset(["a", "an", "the"])
# A particle after an agent noun: "passer-by", "runner-up", "hanger-on" (the noun takes the -s).
_PARTICLES = frozenset(_words("by up on in out off down over away about around back along"))
# Adjectives written after the noun they qualify in titles: "attorneys general".
_POSTPOSITIVE = frozenset(
    _words(
        "general martial elect designate apparent presumptive laureate errant public "
        "plenipotentiary extraordinary"
    )
)
# ... except after these, where "general" is the noun: "major generals".
_GENERAL_IS_NOUN_AFTER = frozenset(["major", "brigadier", "lieutenant", "full"])
# "woman doctor" -> "women doctors": these modifiers take the plural too.
_PLURAL_MODIFIERS = {
    "man": "men",
    "woman": "women",
    "gentleman": "gentlemen",
    "gentlewoman": "gentlewomen",
}

# Plurals that inflect gets wrong, or where it picks the less usual form.
_PLURALS = {
    "thief": "thieves",
    "hoof": "hooves",
    "passerby": "passersby",
    "manservant": "menservants",
    "chairperson": "chairpersons",
    "german": "germans",
    "roman": "romans",
    "norman": "normans",
    "brahman": "brahmans",
    "cactus": "cacti",
    "fungus": "fungi",
    "radius": "radii",
    "larva": "larvae",
    "matrix": "matrices",
    "vertex": "vertices",
    "curriculum": "curricula",
    "memorandum": "memoranda",
    "millennium": "millennia",
    "hello": "hellos",
    "halo": "halos",
}
# Nouns whose plural is the singular (inflect knows sheep, deer, fish, series, species, ...).
_INVARIANT = frozenset(
    _words(
        "swine bison means crossroads barracks kudos corps gallows headquarters offspring "
        "aircraft spacecraft hovercraft series species"
    )
)
# Consonant + o nouns that take -es (every other -o noun takes -s: photos, pianos, gauchos).
_OES = _words(
    "hero potato tomato echo veto torpedo embargo mosquito tornado volcano domino cargo "
    "buffalo motto grotto mango desperado innuendo hobo fresco"
)
# -ch said /k/ takes -s: monarchs, epochs, stomachs.
_CH_AS_K = re.compile(r"(?:[inrgx]arch|epoch|stomach|eunuch|loch|tech|czech|psych|mach)$")


def keeps_case(word: str) -> bool:
    """Acronyms and mixed-case words (CEO, FBI, PhD, McDonald, iOS) are written as given."""
    letters = [c for c in word if c.isalpha()]
    return any(c.isupper() for c in letters[1:]) or (len(letters) == 1 and letters[0].isupper())


def plural_word(word: str) -> str:
    """The plural of one (lower-case, or case-keeping) noun."""
    if not word or not any(c.isalpha() for c in word):
        return word
    if keeps_case(word):
        if word.isupper() or not word[-1].isalpha():
            return word + "s"  # CEOs, AIs, NPCs
        return str(_engine().plural_noun(word) or word + "s")
    w = word.lower()
    if w in _PLURALS:
        return _PLURALS[w]
    if w in _INVARIANT:
        return w
    if w in _PARTICLES:  # the last part of "lay-by", "stand-in", "grown-up"
        return w + "s"
    if w.endswith("o") and not re.search(r"[aeiou]o$", w):
        return w + ("es" if any(w.endswith(o) and (w == o or len(o) > 3) for o in _OES) else "s")
    if _CH_AS_K.search(w):
        return w + "s"
    if re.search(r"[^aeiouz]z$", w):  # waltz -> waltzes, not waltzzes
        return w + "es"
    plural = str(_engine().plural_noun(w) or w + "s")
    if plural == w + "s" and re.search(r"(?:s|x|z|sh|ch)$", w):
        return w + "es"  # jones -> joneses (inflect says "joness")
    return plural


# --------------------------------------------------------------------------- role names


def _case(word: str) -> str:
    return word if keeps_case(word) else word.lower()


def _compound_head(parts: list[str]) -> int:
    """The part of a compound (or the word of a title) that takes the plural."""
    low = [p.lower() for p in parts]
    for i in range(1, len(parts) - 1):
        if low[i] in PREPOSITIONS:  # mother-in-law, man-of-war, lady-in-waiting
            return i - 1
    if len(parts) > 1:
        last, before = low[-1], low[-2]
        if last in _POSTPOSITIVE and not (
            last == "general" and before in _GENERAL_IS_NOUN_AFTER
        ):  # attorney general, court martial, president-elect
            return len(parts) - 2
        if last == "major" and before == "sergeant":  # sergeants major
            return len(parts) - 2
        if last in _PARTICLES and re.search(r"(?:er|or)$", before):  # passer-by, runner-up
            return len(parts) - 2
    return len(parts) - 1


def _inflect_compound(word: str, plural: bool) -> str:
    """A (possibly hyphenated) title word in lower case, its head part in the plural."""
    parts = word.split("-")
    head = _compound_head(parts)
    out = [_case(p) for p in parts]
    if plural:
        out[head] = plural_word(out[head])
    return "-".join(out)


def _split_title(words: list[str]) -> int:
    """Where the complement of a role name starts ("Keeper | of Keys"), or len(words)."""
    for i in range(1, len(words) - 1):
        if words[i].lower() in PREPOSITIONS:
            return i
    return len(words)


def role_noun(role: str, count: int) -> str:
    """The role as a noun for ``count`` agents (one agent: singular; none or several: plural).

    The title (the words up to the complement) is written in lower case, its head noun in the
    plural: "Prison Guard" -> "prison guards", "Attorney General" -> "attorneys general",
    "Passer-by" -> "passers-by". The complement after a preposition keeps the case the role name
    gives it ("Citizen of Rome" -> "citizens of Rome"), its prepositions and articles in lower case.
    Acronyms and mixed-case words keep their case everywhere ("CEO" -> "CEOs").
    """
    words = role.split()
    if not words:
        return ""
    plural = count != 1
    cut = _split_title(words)
    title, complement = words[:cut], words[cut:]
    head = _compound_head(title) if len(title) > 1 else 0
    out = [_inflect_compound(w, plural and i == head) for i, w in enumerate(title)]
    if plural and head > 0 and out[head - 1] in _PLURAL_MODIFIERS:
        out[head - 1] = _PLURAL_MODIFIERS[out[head - 1]]  # women doctors
    out += [
        w.lower() if w.lower() in PREPOSITIONS or w.lower() in _ARTICLES else w for w in complement
    ]
    return " ".join(out)


def _is_plural_complement(word: str) -> bool:
    """Whether the last word of a complement is a plural ending in s ("keeper of keys'")."""
    if word[:1].isupper() or keeps_case(word):
        return False  # a capitalised complement is a proper noun: "Prince of Wales's"
    return word.endswith("s") and not word.endswith(("ss", "us", "is", "as", "os"))


def role_possessive(role: str, count: int) -> str:
    """The possessive of the role noun: the 's goes on the last word of the phrase; a plural
    ending in s takes only the apostrophe (guards', bosses'), every other word 's (guard's,
    boss's, children's, mothers-in-law's, attorneys general's, citizen of Rome's)."""
    phrase = role_noun(role, count)
    words = role.split()
    cut = _split_title(words)
    head_is_last = cut == len(words) and (
        len(words) == 1 or _compound_head(words) == len(words) - 1
    )
    last = words[-1].split("-")
    head_is_last = head_is_last and _compound_head(last) == len(last) - 1
    if head_is_last:
        plural_s = count != 1 and phrase.endswith("s")
    else:
        plural_s = cut < len(words) and _is_plural_complement(phrase.split()[-1].split("-")[-1])
    return phrase + ("'" if plural_s else "'s")


# --------------------------------------------------------------------------- articles, pronouns


def indefinite_article(next_word: str) -> str:
    """ "a" or "an" before ``next_word``, by its sound: an hour, a unicorn, an FBI agent, an 8."""
    word = next_word.strip()
    if not word:
        return "a"
    digits = re.match(r"\d+", word)
    if digits:
        word = number_word(int(digits.group()))
    return str(_engine().a(word)).split(" ", 1)[0]


def article(count: int, next_word: str) -> str:
    """One agent: a/an (by the next word); none: no; several: the."""
    if count == 1:
        return indefinite_article(next_word)
    return "no" if count == 0 else "the"


_PRONOUNS = {
    # gender: subject, object, possessive, reflexive
    "male": ("he", "him", "his", "himself"),
    "female": ("she", "her", "her", "herself"),
    "neutral": ("they", "them", "their", "themself"),
    "plural": ("they", "them", "their", "themselves"),
}
PRONOUN_TYPES = ("PRON", "OBJPRON", "POSSPRON", "REFLPRON")


def pronoun(gender: str, count: int, which: str) -> str:
    """which: PRON, OBJPRON, POSSPRON or REFLPRON. One agent: by gender (a neutral one is a
    singular they: they/them/their/themself); none or several: they/them/their/themselves."""
    forms = _PRONOUNS[gender if count == 1 and gender in _PRONOUNS else "plural"]
    return forms[PRONOUN_TYPES.index(which)]


# --------------------------------------------------------------------------- verbs

# Modal verbs never take -s ("the guard can", "the guards can").
MODALS = frozenset(
    _words(
        "can could may might must shall should will would ought can't cannot couldn't mustn't "
        "shan't shouldn't won't wouldn't mightn't needn't oughtn't"
    )
)
_MODAL_PAST = {
    "can": "could",
    "will": "would",
    "shall": "should",
    "may": "might",
    "can't": "couldn't",
    "cannot": "could not",
    "won't": "wouldn't",
    "shan't": "shouldn't",
}

# Simple past of irregular verbs (verbs with a regular form in common use, such as learn, dream,
# burn or spell, take -ed). "lie" is "tell a lie" (lied); write "lay" for the reclining sense.
_IRREGULAR_PAST = dict(
    pair.split(":")
    for pair in _words(
        "arise:arose awake:awoke bear:bore beat:beat become:became befall:befell beget:begot "
        "begin:began behold:beheld bend:bent beset:beset bet:bet bid:bid bind:bound bite:bit "
        "bleed:bled blow:blew break:broke breed:bred bring:brought broadcast:broadcast "
        "build:built burst:burst buy:bought cast:cast catch:caught choose:chose cling:clung "
        "come:came cost:cost creep:crept cut:cut deal:dealt dig:dug do:did draw:drew "
        "drink:drank drive:drove dwell:dwelt eat:ate fall:fell feed:fed feel:felt fight:fought "
        "find:found flee:fled fling:flung fly:flew forbear:forbore forbid:forbade "
        "forget:forgot forgive:forgave forgo:forwent forsake:forsook freeze:froze get:got "
        "give:gave go:went grind:ground grow:grew hang:hung have:had hear:heard hide:hid "
        "hit:hit hold:held hurt:hurt input:input keep:kept kneel:knelt know:knew lay:laid "
        "lead:led leave:left lend:lent let:let lie:lied light:lit lose:lost make:made "
        "mean:meant meet:met pay:paid put:put quit:quit read:read rid:rid ride:rode ring:rang "
        "rise:rose run:ran say:said see:saw seek:sought sell:sold send:sent set:set "
        "shake:shook shed:shed shine:shone shoot:shot shrink:shrank shut:shut sing:sang "
        "sink:sank sit:sat slay:slew sleep:slept slide:slid sling:slung slit:slit speak:spoke "
        "speed:sped spend:spent spin:spun spit:spat split:split spread:spread spring:sprang "
        "stand:stood steal:stole stick:stuck sting:stung stink:stank stride:strode "
        "strike:struck string:strung strive:strove swear:swore sweep:swept swim:swam "
        "swing:swung take:took teach:taught tear:tore tell:told think:thought throw:threw "
        "thrust:thrust tread:trod underlie:underlay wake:woke wear:wore weave:wove weep:wept "
        "wet:wet win:won wind:wound wring:wrung write:wrote relay:relayed"
    )
)
# Prefixed forms of the irregular verbs: understand -> understood, rewrite -> rewrote.
_PAST_PREFIXES = ("mis", "over", "under", "out", "fore", "with", "up", "re", "un", "off")
# Verbs stressed on the last syllable double its consonant: admitted, preferred, kidnapped.
_DOUBLING = _words(
    "admit commit occur prefer refer permit regret omit submit transfer confer defer deter "
    "incur recur abhor acquit allot befit embed outwit remit emit transmit concur infer "
    "unpin unzip kidnap worship handicap format program equip outfit outstrip overstep "
    "overlap unwrap debar demur inter"
)


def present(verb: str, singular: bool) -> str:
    """The present tense agreeing with a third-person subject.

    ``singular`` True: makes, is, has, does, goes, carries, watches; False: the base form
    (make, are, have, do). Modal verbs (can, must, ...) never change.
    """
    v = verb.lower()
    if v in MODALS:
        return v
    if v == "be":
        return "is" if singular else "are"
    if not singular:
        return v
    if v == "have":
        return "has"
    if re.search(r"(?:qu|wh)iz$", v):
        return v + "zes"  # quizzes
    if re.search(r"(?:s|sh|ch|x|z|[^aeiou]o)$", v):
        return v + "es"  # watches, goes, does
    if re.search(r"[^aeiou]y$", v):
        return v[:-1] + "ies"
    return v + "s"


def _syllables(word: str) -> int:
    return len(re.findall(r"[aeiouy]+", re.sub(r"^y|qu", "q", word)))


def _regular_past(v: str) -> str:
    if v.endswith("e"):
        return v + "d"
    if re.search(r"[^aeiou]y$", v):
        return v[:-1] + "ied"
    if v.endswith("ic"):
        return v + "ked"  # panicked, picnicked
    # British spelling doubles a final l after one vowel: travelled, cancelled, fuelled.
    if re.search(r"(?:[^aeiou][aeiou]|ue|ia|ua)l$", v):
        return v + "led"
    cvc = re.search(r"(?:^|[^aeiou])[aeiou][^aeiouwxy]$", re.sub(r"qu", "q", v))
    stressed = v in _DOUBLING or any(
        v.startswith(p) and v[len(p) :] in _DOUBLING for p in ("re", "un", "mis", "out")
    )
    if cvc and (_syllables(v) == 1 or stressed):
        return v + v[-1] + "ed"  # stopped, planned, admitted
    return v + "ed"


def _irregular_past(v: str) -> str | None:
    if v in _IRREGULAR_PAST:
        return _IRREGULAR_PAST[v]
    for prefix in _PAST_PREFIXES:
        rest = v[len(prefix) :]
        if v.startswith(prefix) and len(rest) > 1:
            inner = _irregular_past(rest)  # misunderstand: mis + under + stand
            if inner is not None:
                return prefix + inner
    return None


def _past_of(v: str) -> str:
    if "-" in v:
        first, _, last = v.rpartition("-")
        return f"{first}-{_past_of(last)}"
    return _irregular_past(v) or _regular_past(v)


def past(verb: str, singular: bool) -> str:
    """The simple past: was/were for be (by agreement), made, went, stopped, carried, ...;
    modal verbs take their past (can -> could) or stay (must)."""
    v = verb.lower()
    if v == "be":
        return "was" if singular else "were"
    if v in MODALS:
        return _MODAL_PAST.get(v, v)
    return _past_of(v)


_BASE_OF = {
    "is": "be",
    "are": "be",
    "am": "be",
    "was": "be",
    "were": "be",
    "been": "be",
    "being": "be",
    "has": "have",
    "does": "do",
    "doesn't": "do",
    "don't": "do",
    "isn't": "be",
    "aren't": "be",
    "wasn't": "be",
    "weren't": "be",
    "hasn't": "have",
    "haven't": "have",
    "hadn't": "have",
    "didn't": "do",
    "done": "do",
    "gone": "go",
    "seen": "see",
    "taken": "take",
    "given": "give",
    "written": "write",
    "known": "know",
    "eaten": "eat",
    "spoken": "speak",
    "chosen": "choose",
}
# Past forms that are also base forms of other verbs (found a company, lay a table, saw wood).
_PAST_ALSO_BASE = frozenset(_words("found lay saw fell bore ground wound felt bound slew"))


@lru_cache(maxsize=1)
def _base_of_past() -> dict[str, str]:
    out = {p: b for b, p in _IRREGULAR_PAST.items() if p != b and p not in _PAST_ALSO_BASE}
    return {p: b for p, b in out.items() if p not in _IRREGULAR_PAST}


def base_form(verb: str) -> str | None:
    """The base form when ``verb`` is visibly inflected (makes, is, has, made, went), else None.

    Only forms that are never a base form themselves are caught: "found" (to found a company)
    and "lay" (to lay a table) pass, as do regular pasts in -ed ("need" ends like one).
    """
    v = verb.lower()
    if v in _BASE_OF:
        return _BASE_OF[v]
    if v in _base_of_past():
        return _base_of_past()[v]
    if v in MODALS or not v.endswith("s") or v.endswith("ss"):
        return None
    if len(v) == 4 and v.endswith("ies"):
        return v[0] + "ie"  # lies, dies, ties (inflect says "ly")
    plain = _engine().plural_verb(v)
    return plain if plain and plain != v else None


# --------------------------------------------------------------------------- numbers


def number_word(n: int) -> str:
    """A count in words: "one", "twenty-one"; 0 is "no" ("no other guards")."""
    if n == 0:
        return "no"
    return str(_engine().number_to_words(str(n)))
