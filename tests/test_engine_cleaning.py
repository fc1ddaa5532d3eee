"""Output cleaning: a table of what models write and what is kept."""

from __future__ import annotations

import pytest

from simulator.engine.cleaning import clean_output

NAMES = ["Guard 1", "Guard 2", "Prisoner 1", "Researcher"]
ROLES = ["Guard", "Prisoner"]

CASES = [
    # (id, speaker, role, raw, expected)
    ("plain", "Guard 1", "Guard", "Line up, now.", "Line up, now."),
    ("self label", "Guard 1", "Guard", "Guard 1: Line up.", "Line up."),
    ("self label bold", "Guard 1", "Guard", "**Guard 1:** Line up.", "Line up."),
    ("self label bold colon outside", "Guard 1", "Guard", "**Guard 1**: Line up.", "Line up."),
    ("self label lower case", "Guard 1", "Guard", "guard 1: Line up.", "Line up."),
    ("self role label", "Guard 1", "Guard", "Guard: Line up.", "Line up."),
    ("self label underscore", "Prisoner 1", "Prisoner", "Prisoner_1: I want out.", "I want out."),
    ("self label twice", "Guard 1", "Guard", "Guard 1: Guard 1: Quiet.", "Quiet."),
    ("self label bracket", "Guard 1", "Guard", "[Guard 1]: Quiet.", "Quiet."),
    (
        "other agent name",
        "Guard 1",
        "Guard",
        "Line up.\nPrisoner 1: No way.\nGuard 1: Do it.",
        "Line up.",
    ),
    (
        "other agent of the same role",
        "Guard 1",
        "Guard",
        "Line up.\n\nGuard 2: You heard him.",
        "Line up.",
    ),
    ("role name", "Guard 1", "Guard", "Line up.\nPrisoner: Never.", "Line up."),
    ("role with unknown number", "Guard 1", "Guard", "Line up.\nPrisoner 3: Never.", "Line up."),
    ("bold other", "Guard 1", "Guard", "Line up.\n**Prisoner 1:** Never.", "Line up."),
    ("bold other colon outside", "Guard 1", "Guard", "Line up.\n**Prisoner 1**: No.", "Line up."),
    ("italic other", "Guard 1", "Guard", "Line up.\n*Prisoner 1*: No.", "Line up."),
    ("upper case other", "Guard 1", "Guard", "Line up.\nPRISONER 1: No.", "Line up."),
    ("indented other", "Guard 1", "Guard", "Line up.\n   Prisoner 1: No.", "Line up."),
    ("researcher", "Prisoner 1", "Prisoner", "Fine.\nResearcher: Day 2 begins.", "Fine."),
    (
        "mid-line mention stays",
        "Guard 1",
        "Guard",
        "I told Prisoner 1: stay in line.",
        "I told Prisoner 1: stay in line.",
    ),
    (
        "name without colon stays",
        "Guard 1",
        "Guard",
        "Prisoner 1, stand up.\nGuard 2 will watch you.",
        "Prisoner 1, stand up.\nGuard 2 will watch you.",
    ),
    (
        "own label on a new line stays",
        "Guard 1",
        "Guard",
        "Line up.\nGuard 1: And be quick.",
        "Line up.\nGuard 1: And be quick.",
    ),
    ("empty after cut", "Guard 1", "Guard", "Prisoner 1: I refuse.", ""),
    ("empty after self label and cut", "Guard 1", "Guard", "Guard 1:\nPrisoner 1: No.", ""),
    ("whitespace only", "Guard 1", "Guard", "   \n  ", ""),
    (
        "multi-paragraph kept until other",
        "Prisoner 1",
        "Prisoner",
        "I need water.\n\nPlease.\n\nGuard 1: Later.",
        "I need water.\n\nPlease.",
    ),
    ("guard 10 vs guard 1", "Guard 1", "Guard", "Move.\nGuard 10: Hm.", "Move."),
]


@pytest.mark.parametrize(
    ("speaker", "role", "raw", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_clean_output(speaker: str, role: str, raw: str, expected: str) -> None:
    assert clean_output(raw, speaker, NAMES, ROLES, role=role) == expected


def test_at_least_fifteen_cases() -> None:
    assert len(CASES) >= 15


def test_single_agent_has_nobody_else_to_cut() -> None:
    assert clean_output("Solo: hi\nthere", "Solo", ["Solo"], []) == "hi\nthere"
