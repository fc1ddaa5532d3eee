"""Counts agree with their noun in every message of the app and the command line."""

from __future__ import annotations

from simulator.words import plural


def test_plural_agrees_with_the_count() -> None:
    assert plural(1, "conversation") == "1 conversation"
    assert plural(0, "conversation") == "0 conversations"
    assert plural(1200, "message") == "1,200 messages"
    assert plural(2, "batch") == "2 batches"
    assert plural(3, "placeholder problem") == "3 placeholder problems"
    assert plural(2, "day") == "2 days"
    assert plural(2, "entry") == "2 entries"
    assert plural(2, "LLM call") == "2 LLM calls"
    assert plural(2, "person", "people") == "2 people"
