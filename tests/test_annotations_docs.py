"""docs/annotations.md stays true: its walkthrough (the prison study run on dryrun, judged with
the shipped rubric, moderation-scored at a local server speaking OpenAI's chat and moderation
APIs, scored by a Python scorer, interviewed, exported and merged with pandas) is run command by
command and each command's output compared with the documented one; every column, annotator
option and answer type is documented.

The commands run in a directory holding the checkout's ``simulator/`` and ``tests/`` (as in a
clean checkout), against a fresh database on the session's embedded server (``MONGODB_URI``;
without it they would start their own, as a reader's do). Ids, elapsed times and the local
server's port vary and are normalised on both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from simulator.annotations.tables import ANNOTATION_COLUMNS
from simulator.cli import build_parser, main
from simulator.domain.rubric import ANSWER_TYPES
from tests.conftest import unique_db_name

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "annotations.md"
DOC_PORT = "8765"


@dataclass
class Step:
    command: str
    expected: list[str]


def walkthrough(text: str) -> list[Step]:
    """The ``console`` blocks of the walkthrough: ``$ command`` lines (``\\`` continues a line)
    followed by their output."""
    section = text.split("<!-- walkthrough -->", 2)[1]
    steps: list[Step] = []
    for block in re.findall(r"```console\n(.*?)```", section, flags=re.S):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if not line.startswith("$ "):
                raise AssertionError(f"output before any command: {line!r}")
            command = line[2:]
            while command.endswith("\\"):
                i += 1
                command = command[:-1].rstrip() + " " + lines[i].strip()
            i += 1
            expected: list[str] = []
            while i < len(lines) and not lines[i].startswith("$ "):
                expected.append(lines[i])
                i += 1
            steps.append(Step(command, expected))
    return steps


_HEX = re.compile(r"\b[0-9a-f]{32}\b")
_HEX8 = re.compile(r"\b(batch|Batch) [0-9a-f]{8}\b")
_TIME = re.compile(r"\b\d+:\d\d:\d\d\b")


def normalised(lines: list[str], host: str) -> list[str]:
    out = []
    for line in lines:
        line = line.replace(host, f"127.0.0.1:{DOC_PORT}").rstrip()
        line = _HEX.sub("<id>", line)
        line = _HEX8.sub(r"\1 <id>", line)
        line = _TIME.sub("<time>", line)
        out.append(line)
    # conversations of a batch finish in an order that may vary: compare those lines as sets
    blocks: list[str] = []
    run: list[str] = []
    for line in [*out, ""]:
        if re.match(r"^\s+done\s+#", line):
            run.append(line)
            continue
        blocks += sorted(run)
        run = []
        blocks.append(line)
    return blocks[:-1]  # without the sentinel


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def env(assignments: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in assignments}
    os.environ.update(assignments)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_step(step: Step, cwd: Path, host: str, background: list[subprocess.Popen[bytes]]) -> str:
    command = step.command.replace(f"127.0.0.1:{DOC_PORT}", host)
    port = host.rsplit(":", 1)[1]
    command = command.replace(f"--port {DOC_PORT}", f"--port {port}")
    words = shlex.split(command)
    assignments: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        assignments[name] = value
    if words[-1] == "&":
        assert words[0] == "python", step.command
        proc = subprocess.Popen(
            [sys.executable, *words[1:-1]],
            cwd=cwd,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(cwd)},
        )
        background.append(proc)
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        deadline = time.monotonic() + 30  # wait deadline
        while time.monotonic() < deadline:  # answers before the next command runs
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://{host}/v1/models", timeout=2).status_code == 200:
                    return first
            time.sleep(0.05)
        raise AssertionError(f"the local server did not come up: {first}")
    if words[0] == "python":
        done = subprocess.run(
            [sys.executable, *words[1:]],
            cwd=cwd,
            capture_output=True,
            text=True,
            env={**os.environ, **assignments, "PYTHONPATH": str(cwd)},
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout
    assert words[0] == "simulator", step.command
    out, err = io.StringIO(), io.StringIO()
    with env(assignments), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(words[1:])
    assert code == 0, f"{step.command}\n{out.getvalue()}\n{err.getvalue()}"
    return out.getvalue() + err.getvalue()


async def test_the_walkthrough_runs_as_documented(
    mongo_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PRICE_TABLE", "OLLAMA_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    db = unique_db_name()
    monkeypatch.setenv("MONGODB_DB", db)
    monkeypatch.setenv("SIMULATOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SIMULATOR_CONFIG_DIR", str(tmp_path / "config"))
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("simulator", "tests"):
        (checkout / name).symlink_to(REPO / name)
    monkeypatch.chdir(checkout)
    host = f"127.0.0.1:{_free_port()}"
    steps = walkthrough(DOC.read_text(encoding="utf-8"))
    assert len(steps) >= 10
    background: list[subprocess.Popen[bytes]] = []
    try:
        for step in steps:
            actual = await asyncio.to_thread(run_step, step, checkout, host, background)
            got = normalised(actual.rstrip("\n").splitlines(), host)
            want = normalised(step.expected, host)
            assert got == want, f"$ {step.command}\n" + "\n".join(got)
    finally:
        for proc in background:
            proc.terminate()
            proc.wait(timeout=10)
        from pymongo import MongoClient

        client: MongoClient[dict[str, object]] = MongoClient(mongo_uri)
        client.drop_database(db)
        client.close()


def _documented() -> set[str]:
    text = re.sub(r"```.*?```", "", DOC.read_text(encoding="utf-8"), flags=re.S)
    return set(re.findall(r"`([^`\n]+)`", text))


def test_every_column_option_and_answer_type_is_documented() -> None:
    doc = _documented()
    missing = [c for c in ANNOTATION_COLUMNS if c not in doc]
    assert missing == []
    missing = [t for t in ANSWER_TYPES if t not in doc]
    assert missing == []
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    text = DOC.read_text(encoding="utf-8")
    for name in ("annotate", "interview"):
        options = {o for a in commands[name]._actions for o in a.option_strings}
        for option in sorted(options - {"-h", "--help"}):
            if option.startswith("--"):
                assert option in text, f"{name} {option}"
    for option in ("--wide", "--annotator"):
        assert option in text
