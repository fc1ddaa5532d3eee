"""Speaker-selection rules (pure): round-robin interleaving, seeded random, manager answers."""

from __future__ import annotations

import itertools

import pytest

from simulator.domain import Agent, ModelRef
from simulator.engine.speakers import (
    eligible,
    parse_choice,
    random_pick,
    round_robin_order,
    round_robin_pick,
)


def agents(**counts: int) -> list[Agent]:
    return [
        Agent(name=f"{role} {i}", role=role, model=ModelRef())
        for role, n in counts.items()
        for i in range(1, n + 1)
    ]


def test_round_robin_interleaves_roles() -> None:
    order = round_robin_order(agents(Guard=2, Prisoner=2))
    assert order == ["Guard 1", "Prisoner 1", "Guard 2", "Prisoner 2"]


def test_round_robin_uneven_counts() -> None:
    order = round_robin_order(agents(Guard=1, Prisoner=3))
    assert order == ["Guard 1", "Prisoner 1", "Prisoner 2", "Prisoner 3"]
    assert round_robin_order(agents(Guard=3, Prisoner=1)) == [
        "Guard 1",
        "Prisoner 1",
        "Guard 2",
        "Guard 3",
    ]


def test_round_robin_first_role_configurable() -> None:
    order = round_robin_order(agents(Guard=2, Prisoner=1), first_role="prisoner")
    assert order == ["Prisoner 1", "Guard 1", "Guard 2"]


def test_round_robin_pick_cycles_by_turn() -> None:
    order = ["A", "B", "C"]
    assert [round_robin_pick(order, t) for t in range(1, 8)] == list("ABCABCA")
    # as a fallback it never repeats the previous speaker
    assert round_robin_pick(order, 2, previous="B") == "C"


def test_eligible_excludes_previous_unless_alone() -> None:
    assert eligible(["A", "B"], "A") == ["B"]
    assert eligible(["A"], "A") == ["A"]
    assert eligible(["A", "B"], None) == ["A", "B"]


def test_random_is_seeded_and_never_repeats() -> None:
    names = ["G1", "P1", "P2"]

    def run(seed: int) -> list[str]:
        prev, out = None, []
        for turn in range(1, 40):
            prev = random_pick(seed, 1, turn, names, prev)
            out.append(prev)
        return out

    a, b, c = run(7), run(7), run(8)
    assert a == b
    assert a != c
    assert all(x != y for x, y in itertools.pairwise(a))
    assert set(a) == set(names)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Guard 1", "Guard 1"),
        ("guard 1.", "Guard 1"),
        ('"Prisoner 1"', "Prisoner 1"),
        ("**Prisoner 1**", "Prisoner 1"),
        ("Next speaker: Prisoner 1", "Prisoner 1"),
        ("I think Guard 1 should speak now.", "Guard 1"),
        ("Guard 1 or Prisoner 1", None),
        ("banana", None),
        ("", None),
        ("Guard 10", None),
    ],
)
def test_parse_choice(answer: str, expected: str | None) -> None:
    assert parse_choice(answer, ["Guard 1", "Prisoner 1"]) == expected
