"""The tests' wait helper: it returns what the condition returned, and when it gives up it says
why: the condition's own last exception (not swallowed), or that the condition stayed false."""

from __future__ import annotations

import pytest

from tests.plugins.waiting import wait_until, wait_until_sync


async def test_returns_the_conditions_value_once_it_holds() -> None:
    checks: list[int] = []

    def third_time() -> str | None:
        checks.append(1)
        return "ready" if len(checks) >= 3 else None

    assert await wait_until(third_time, what="the third check") == "ready"
    assert len(checks) == 3


async def test_an_async_condition_is_awaited() -> None:
    async def ready() -> bool:
        return True

    assert await wait_until(ready) is True


async def test_gives_up_with_the_conditions_last_exception() -> None:
    def stored() -> bool:
        raise AssertionError("3 of 4 conversations done")

    with pytest.raises(AssertionError, match="3 of 4 conversations done") as failure:
        await wait_until(stored, within=0, what="every conversation")  # at once: already past
    assert "timed out after 0 s waiting for every conversation" in "".join(failure.value.__notes__)


async def test_a_condition_that_stayed_false_times_out_saying_what_was_awaited() -> None:
    with pytest.raises(AssertionError, match="timed out after 0 s waiting for the monitor"):
        await wait_until(lambda: False, within=0, what="the monitor")


def test_the_sync_helper_says_the_same() -> None:
    def gone() -> bool:
        raise ProcessLookupError("pid 42 still there")

    with pytest.raises(ProcessLookupError, match="pid 42") as failure:
        wait_until_sync(gone, within=0, what="the server to stop")
    assert "waiting for the server to stop" in "".join(failure.value.__notes__)
    assert wait_until_sync(lambda: 7) == 7
