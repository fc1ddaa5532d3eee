"""Day budgets: exact totals, remainder to the first days."""

from __future__ import annotations

import pytest

from simulator.domain.errors import SpecError
from simulator.engine.budget import day_budgets


@pytest.mark.parametrize(
    ("total", "days", "expected"),
    [
        (20, 1, [20]),
        (20, 2, [10, 10]),
        (20, 3, [7, 7, 6]),
        (7, 2, [4, 3]),
        (1, 1, [1]),
        (10, 4, [3, 3, 2, 2]),
        (5, 5, [1, 1, 1, 1, 1]),
    ],
)
def test_day_budgets(total: int, days: int, expected: list[int]) -> None:
    got = day_budgets(total, days)
    assert got == expected
    assert sum(got) == total


def test_more_days_than_messages_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="3 days"):
        day_budgets(2, 3)


def test_zero_days_is_a_spec_error() -> None:
    with pytest.raises(SpecError):
        day_budgets(5, 0)
