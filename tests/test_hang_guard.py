"""A hung test fails with the stacks that show where it hangs, and the session goes on
(tests/plugins/hang_guard.py): a sync test blocked in a call, an async test whose task waits on
an event nobody sets, and a test after them that passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

HANGING = """
import asyncio
import threading


def test_blocked_in_a_call():
    threading.Event().wait(600)


async def wait_for_nobody(event):
    await event.wait()


async def test_task_waits_for_ever():
    await asyncio.create_task(wait_for_nobody(asyncio.Event()), name="the-waiter")


def test_after_them():
    assert True
"""


def test_a_hung_test_fails_with_its_stacks_and_the_session_goes_on(tmp_path: Path) -> None:
    (tmp_path / "test_hangs.py").write_text(HANGING, encoding="utf-8")
    (tmp_path / "conftest.py").write_text(
        'pytest_plugins = ["tests.plugins.hang_guard"]\n', encoding="utf-8"
    )
    env = {**os.environ, "TEST_HANG_S": "2", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", str(tmp_path)]
    proc = subprocess.run(
        [*command, "-o", "asyncio_mode=auto"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,  # a guard that never fires would otherwise hold this test for 600 s
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "2 failed, 1 passed" in out, out
    assert "FAILED test_hangs.py::test_blocked_in_a_call" in out, out
    assert "FAILED test_hangs.py::test_task_waits_for_ever" in out, out
    assert "did not finish within 2 s" in out, out
    assert "test still running after 2 s" in out, out
    # the thread dump names where the sync test blocks; the task dump names the waiting task
    assert "test_blocked_in_a_call" in out.split("=== test still running", 1)[1], out
    assert "the-waiter" in out and "wait_for_nobody" in out, out
