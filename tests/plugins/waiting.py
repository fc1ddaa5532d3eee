"""Waiting for an event in tests: the one helper every test uses (STYLE.md, lesson 23).

A test never sleeps for a fixed time and never bounds how long something took: it waits until a
condition holds, polling it, with a deadline generous enough to fail only a run that is truly
stuck (``DEADLINE_S``; a loaded CI machine makes a healthy run slower, never stuck). When the
deadline passes, the last exception the condition raised is re-raised (with a note saying what
was awaited), so a failing check shows its own message; a condition that merely stayed false
fails with "timed out waiting for ...".
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

#: How long a test waits for an event before calling the run stuck. Events a test waits for take
#: well under a second on a quiet machine and a few seconds on a loaded one.
DEADLINE_S = 60.0
#: How often the condition is checked.
POLL_S = 0.05

Condition = Callable[[], Any]  # returns a truth value, or an awaitable of one


class _Deadline:
    def __init__(self, within: float, what: str, condition: Condition) -> None:
        self.at = time.monotonic() + within  # wait deadline
        self.within = within
        self.what = what or getattr(condition, "__qualname__", repr(condition))

    def check(self, last: Exception | None) -> None:
        """Past the deadline: re-raise the condition's last exception, else time out."""
        if time.monotonic() <= self.at:  # wait deadline
            return
        message = f"timed out after {self.within:g} s waiting for {self.what}"
        if last is None:
            raise AssertionError(message)
        last.add_note(f"(the last check, {message})")
        raise last


async def wait_until(
    condition: Condition,
    *,
    within: float = DEADLINE_S,
    what: str = "",
    pause: Callable[[], Awaitable[Any]] | None = None,
) -> Any:
    """Poll ``condition()`` (sync or async) until it returns a true value, which is returned.

    ``pause`` lets the code under test run between two checks (default: sleep ``POLL_S``; the
    TUI tests pass the Pilot's pause). An exception raised by the condition counts as "not yet"
    (a widget not mounted yet, a document not written yet) until the deadline."""
    deadline = _Deadline(within, what, condition)
    while True:
        last: Exception | None = None
        try:
            value = condition()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
        except Exception as exc:
            last = exc
        deadline.check(last)
        await (pause() if pause is not None else asyncio.sleep(POLL_S))  # poll interval


def wait_until_sync(condition: Condition, *, within: float = DEADLINE_S, what: str = "") -> Any:
    """``wait_until`` for synchronous code (subprocesses, servers started in threads)."""
    deadline = _Deadline(within, what, condition)
    while True:
        last: Exception | None = None
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:
            last = exc
        deadline.check(last)
        time.sleep(POLL_S)  # poll interval
