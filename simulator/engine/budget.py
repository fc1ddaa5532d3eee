"""How a conversation's agent messages are shared among its days."""

from __future__ import annotations

from simulator.domain.errors import SpecError


def day_budgets(total: int, days: int) -> list[int]:
    """Agent messages per day: an equal share each, the remainder to the first days.

    The shares always add up to ``total`` exactly: ``day_budgets(20, 3) == [7, 7, 6]``.
    The kickoff and the summaries are not agent messages and are not counted.
    """
    if days < 1:
        raise SpecError(f"a conversation needs at least one day, got {days}")
    if total < days:
        raise SpecError(
            f"{total} agent message(s) cannot be spread over {days} days: every day needs at "
            "least one message. Lower the number of days or raise the total."
        )
    share, extra = divmod(total, days)
    return [share + (1 if d < extra else 0) for d in range(days)]


__all__ = ["day_budgets"]
