"""A test that hangs fails after ``TEST_HANG_S`` seconds (default 300) instead of stalling the run.

Why: a hung test held a CI run until the job's own limit, so nothing after it ran and the log
said only that time ran out. Here the test's main thread gets SIGALRM at the deadline; the
handler prints every thread's stack and, when an event loop runs, every task's stack (an async
test hangs in ``select`` with the culprit in a task), then raises ``TestHung`` there, which
fails that test and lets the session go on. Not a time limit on anything a test measures: the
deadline is 300 s against the slowest test's 60-90 s on a loaded CI machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

import pytest

#: Seconds a single test (set-up, call and tear-down each) may take before it is failed.
HANG_S = float(os.environ.get("TEST_HANG_S", "300"))
#: After the first deadline, how long the test's clean-up (an event loop cancelling its tasks)
#: may take before it is interrupted again.
AGAIN_S = 60.0
ENABLED = HANG_S > 0 and hasattr(signal, "SIGALRM")


class TestHung(Exception):
    """Raised in a test's main thread at its deadline."""

    __test__ = False  # not a test class, whatever pytest's name rule says


def _dump_tasks(out: Any) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    for task in asyncio.all_tasks(loop):
        print(f"--- task {task.get_name()}: {task.get_coro()!r}", file=out)
        task.print_stack(file=out)


def _on_deadline(signum: int, frame: Any) -> None:
    out = sys.stderr
    print(f"\n=== test still running after {HANG_S:.0f} s: stacks follow ===", file=out)
    faulthandler.dump_traceback(file=out, all_threads=True)
    _dump_tasks(out)
    out.flush()
    signal.setitimer(signal.ITIMER_REAL, AGAIN_S)  # should the clean-up hang too
    raise TestHung(f"the test did not finish within {HANG_S:.0f} s (stacks on stderr)")


@contextlib.contextmanager
def _deadline() -> Iterator[None]:
    """Each phase of a test (set-up, call, tear-down) gets its own ``HANG_S``."""
    if ENABLED:
        signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        yield
    finally:
        if ENABLED:
            signal.setitimer(signal.ITIMER_REAL, 0)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[Any]:
    if not ENABLED:
        return (yield)
    previous = signal.signal(signal.SIGALRM, _on_deadline)
    try:
        return (yield)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[Any]:
    with _deadline():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[Any]:
    with _deadline():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[Any]:
    with _deadline():
        return (yield)
