"""Counts in words, with the noun agreeing: ``1 conversation``, ``2 conversations``.

Every message of the app and the command line that counts something says it this way, never
``conversation(s)`` and never ``1 conversations``. Plain code, no dependencies: the inflection
engine (``simulator.roles.grammar``) is for prompts and takes seconds to import.
"""

from __future__ import annotations


def plural_of(noun: str) -> str:
    """The plural of a simple English noun (the app's own words: batch, entry, message ...)."""
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return noun[:-1] + "ies"
    return noun + "s"


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``count`` and ``noun``, agreeing: ``plural(1, "day")`` is ``1 day``, ``plural(1200,
    "message")`` is ``1,200 messages``; the last word of a phrase is the one inflected
    (``plural(2, "agent message")``)."""
    if count == 1:
        return f"{count:,} {noun}"
    if plural_form is None:
        head, _, last = noun.rpartition(" ")
        plural_form = f"{head} {plural_of(last)}" if head else plural_of(last)
    return f"{count:,} {plural_form}"
