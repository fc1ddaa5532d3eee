"""docs/findings.md stays true: its worked example (the prison study on dryrun, judged with the
shipped rubric, moderation-scored at a local server, coded by two simulated coders, the agreement,
the human labels stored, the models and the Granger tests, two figures) is run command by
command and each command's output compared with the documented one; the figures it draws carry
the same data as the PNGs checked into docs/img, and a test reads facets, n and intervals from
that data; every option of ``simulator coding`` and ``simulator stats`` is documented.

``UPDATE_FINDINGS_DOC=1`` rewrites the documented outputs and the figures from a fresh run
(review the diff before committing it).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulator.analysis.plots import read_figure_data
from simulator.cli import build_parser
from tests.conftest import unique_db_name
from tests.test_annotations_docs import DOC_PORT, Step, _free_port, normalised, run_step

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "findings.md"
FIGURES = {"outcome.png": "findings_outcome.png", "trajectory.png": "findings_trajectory.png"}
UPDATE = os.environ.get("UPDATE_FINDINGS_DOC") == "1"


@dataclass
class Block:
    """A ``console`` block: its position in the doc and its steps (raw command lines kept)."""

    start: int
    end: int
    steps: list[tuple[list[str], Step]]


def blocks(text: str) -> list[Block]:
    section_start = text.index("<!-- walkthrough -->")
    section_end = text.index("<!-- walkthrough -->", section_start + 1)
    out = []
    for match in re.finditer(r"```console\n(.*?)```", text[section_start:section_end], flags=re.S):
        lines = match.group(1).splitlines()
        steps: list[tuple[list[str], Step]] = []
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                raise AssertionError(f"output before any command: {lines[i]!r}")
            raw = [lines[i]]
            command = lines[i][2:]
            while command.endswith("\\"):
                i += 1
                raw.append(lines[i])
                command = command[:-1].rstrip() + " " + lines[i].strip()
            i += 1
            expected: list[str] = []
            while i < len(lines) and not lines[i].startswith("$ "):
                expected.append(lines[i])
                i += 1
            steps.append((raw, Step(command, expected)))
        out.append(Block(section_start + match.start(1), section_start + match.end(1), steps))
    return out


def files(text: str) -> dict[str, str]:
    """The files the walkthrough saves: a ``<!-- file: NAME -->`` line before a code block."""
    found = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", text, flags=re.S)
    return {name: body for name, body in found}


def in_grid_order(output: str) -> str:
    """The ``done #N`` lines of a batch (in the order conversations finished) by number."""
    lines = output.splitlines()
    done = [i for i, line in enumerate(lines) if re.match(r"^\s+done\s+#\d+", line)]
    if done:
        ordered = sorted((lines[i] for i in done), key=lambda x: int(re.findall(r"#(\d+)", x)[0]))
        for i, line in zip(done, ordered, strict=True):
            lines[i] = line
    return "\n".join(lines)


_VERSION = re.compile(r"(human:persuasion, version \d+)-[0-9a-f]{8}")


def compare(actual: str, expected: list[str], host: str) -> tuple[list[str], list[str]]:
    got = [_VERSION.sub(r"\1-<v>", line) for line in normalised(actual.splitlines(), host)]
    want = [_VERSION.sub(r"\1-<v>", line) for line in normalised(expected, host)]
    return got, want


async def test_the_worked_example_runs_as_documented(
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
    text = DOC.read_text(encoding="utf-8")
    for name, body in files(text).items():
        (checkout / name).write_text(body, encoding="utf-8")
    host = f"127.0.0.1:{_free_port()}"
    found = blocks(text)
    assert sum(len(b.steps) for b in found) >= 14
    background: list[subprocess.Popen[bytes]] = []
    rewritten: list[tuple[Block, str]] = []
    try:
        for block in found:
            lines: list[str] = []
            for raw, step in block.steps:
                actual = await asyncio.to_thread(run_step, step, checkout, host, background)
                actual = actual.rstrip("\n")
                got, want = compare(actual, step.expected, host)
                if UPDATE:
                    shown = in_grid_order(actual.replace(host, f"127.0.0.1:{DOC_PORT}"))
                    lines += raw + ([shown] if shown else [])
                else:
                    assert got == want, f"$ {step.command}\n" + "\n".join(got)
            rewritten.append((block, "\n".join(lines) + "\n"))
    finally:
        for proc in background:
            proc.terminate()
            proc.wait(timeout=10)
        from pymongo import MongoClient

        client: MongoClient[dict[str, object]] = MongoClient(mongo_uri)
        client.drop_database(db)
        client.close()

    for drawn, checked_in in FIGURES.items():
        if UPDATE:
            shutil.copyfile(checkout / drawn, REPO / "docs" / "img" / checked_in)
        title, facets, data = read_figure_data(checkout / drawn)
        ref_title, ref_facets, ref_data = read_figure_data(REPO / "docs" / "img" / checked_in)
        assert (title, facets) == (ref_title, ref_facets), checked_in
        assert data.round(9).astype(object).where(data.notna(), None).values.tolist() == (
            ref_data.round(9).astype(object).where(ref_data.notna(), None).values.tolist()
        ), f"docs/img/{checked_in} is not the figure the walkthrough draws"

    # what the two figures show, read from their data
    _, facets, outcome = read_figure_data(checkout / "outcome.png")
    assert facets == ["goal=Escape", "goal=Yard Time"]
    assert len(outcome) == 10 and set(outcome["n"]) == {3}  # ten cells of three repeats
    assert set(outcome["interval"]) == {"wilson"}
    assert (outcome["ci_low"] <= outcome["mean"]).all()
    assert (outcome["mean"] <= outcome["ci_high"]).all()
    _, facets, trajectory = read_figure_data(checkout / "trajectory.png")
    assert len(facets) == 5 and all(f.startswith("persona=") for f in facets)  # goal=Escape
    assert set(trajectory["series"]) == {"Guard", "Prisoner"}
    assert set(trajectory["n"]) == {3} and set(trajectory["x"]) == set(range(1, 21))
    assert trajectory["ci_low"].notna().all() and set(trajectory["interval"]) == {"t"}

    if UPDATE:
        out = text
        for block, body in reversed(rewritten):
            out = out[: block.start] + body + out[block.end :]
        DOC.write_text(out, encoding="utf-8")


def test_every_option_of_coding_and_stats_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in ("coding", "stats"):
        steps = commands[name]._subparsers._group_actions[0].choices  # type: ignore[union-attr]
        assert steps, name
        for step, parser in steps.items():
            assert f"simulator {name} {step}" in text, f"{name} {step}"
            options = {o for a in parser._actions for o in a.option_strings}
            for option in sorted(options - {"-h", "--help", "-o"}):
                filters = {"--experiment", "--batch", "--model", "--days", "--counts"}
                filters |= {"--status", "--factor", "--kind", "--conversation"}
                if option.startswith("--") and option not in filters:
                    assert f"`{option}" in text, f"{name} {step} {option}"
