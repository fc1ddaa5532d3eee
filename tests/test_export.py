"""Exports: tables round-trip (Parquet, CSV, JSONL), transcripts (Markdown, text, HTML), the HTML
page in headless Chromium, and the ``simulator export`` / ``simulator plot`` commands."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from simulator.analysis import exports
from simulator.analysis.loading import load_all, load_messages
from simulator.cli import build_parser, main
from simulator.domain.filters import ConversationFilter
from tests.plugins.analysis import AnalysisData


async def test_parquet_round_trip_equals_load_messages(
    store, analysis_data: AnalysisData, tmp_path: Path
) -> None:
    frame = await load_messages(store)
    [path] = await exports.export(store, fmt="parquet", what="messages", output=tmp_path)
    assert path == tmp_path / "messages.parquet"
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, frame)
    assert dict(back.dtypes) == dict(frame.dtypes)
    keys = list(zip(back["conversation_id"], back["seq"], strict=True))
    assert keys == sorted(keys)
    assert "factor_goal" in back.columns and "count_prisoner" in back.columns


@pytest.mark.parametrize(
    "what", ["conversations", "summaries", "metrics", "roles", "agents", "cells"]
)
async def test_every_table_round_trips_through_parquet(
    store, analysis_data: AnalysisData, tmp_path: Path, what: str
) -> None:
    conversations, messages = await load_all(store)
    frame = exports.table(what, conversations, messages)
    assert not frame.empty
    target = tmp_path / f"{what}.parquet"
    [path] = await exports.export(store, fmt="parquet", what=what, output=target)
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)


async def test_csv_and_jsonl(store, analysis_data: AnalysisData, tmp_path: Path) -> None:
    frame = await load_messages(store)
    [csv] = await exports.export(store, fmt="csv", output=tmp_path)
    back = pd.read_csv(csv)
    assert list(back.columns) == list(frame.columns)
    assert list(back["seq"]) == list(frame["seq"])
    assert list(back["content"]) == list(frame["content"])
    assert set(back["factor_goal"].dropna()) == {"Escape", "Insult"}

    [jl] = await exports.export(store, fmt="jsonl", output=tmp_path / "m.jsonl")
    rows = [json.loads(line) for line in jl.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(frame)
    first = rows[0]
    assert set(first) == set(frame.columns)
    assert first["conversation_id"] == frame["conversation_id"].iloc[0]
    private = next(r for r in rows if r["recipients"] is not None)
    assert private["public"] is False and private["recipients"] == "Prisoner 1"
    kickoff = next(r for r in rows if r["kind"] == "kickoff")
    assert kickoff["model"] is None and kickoff["created_at"].endswith("Z")


async def test_summaries_table_and_bad_output_names(
    store, analysis_data: AnalysisData, tmp_path: Path
) -> None:
    [path] = await exports.export(store, fmt="csv", what="summaries", output=tmp_path)
    assert path.name == "summaries.csv"
    assert pd.read_csv(path)["content"].tolist() == ["Day one summary.", "Day two summary here."]
    from simulator.domain.errors import ConfigurationError, NotFoundError

    with pytest.raises(ConfigurationError, match=r"does not end in \.parquet"):
        await exports.export(store, fmt="parquet", output=tmp_path / "x.csv")
    with pytest.raises(ConfigurationError, match="--what metrics is a table"):
        await exports.export(store, fmt="html", what="metrics", output=tmp_path)
    with pytest.raises(NotFoundError, match=r"days 9 matches no conversation \(days ran: 1 \| 2\)"):
        await exports.export(store, ConversationFilter(days=9), fmt="csv", output=tmp_path)


async def test_markdown_and_text_transcripts(
    store, analysis_data: AnalysisData, tmp_path: Path
) -> None:
    d = analysis_data
    paths = await exports.export(store, fmt="markdown", output=tmp_path / "md")
    assert sorted(p.name for p in paths) == sorted(f"{c.id}.md" for c in (d.a, d.b, d.c))
    md = (tmp_path / "md" / f"{d.a.id}.md").read_text(encoding="utf-8")
    assert md.startswith("# Prison study · #1")
    assert "- **Factors**: goal=Escape" in md
    assert md.index("## Day 1") < md.index("### Summary of day 1") < md.index("## Day 2")
    assert "**Prisoner 2** (Prisoner, turn 3) → Prisoner 1:" in md
    assert "**Guard 1** (Guard, turn 1) _[fallback]_:" in md
    assert "\n> Stay in your cell now.\n" in md  # message text as a block quote

    [one] = await exports.export(
        store, ConversationFilter(batch_id=d.batch.id), fmt="text", output=tmp_path / "all.txt"
    )
    text = one.read_text(encoding="utf-8")
    assert text.count("conversation ") == 2
    assert "--- Day 2 ---" in text and "[Summary of day 2]" in text
    assert "Guard 1 (Guard):\n<b>Hello</b>" in text


class _Page(HTMLParser):
    """Collects sections, messages (with their role colours) and day separators."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.messages: list[dict[str, str]] = []
        self.days: list[tuple[str, str]] = []
        self.summaries = 0
        self.scripts = 0
        self.legend: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "script":
            self.scripts += 1
        if tag == "section" and "conversation" in classes:
            self.sections.append(a["data-conversation-id"])
        if tag == "article" and "message" in classes:
            self.messages.append({**a, "section": self.sections[-1]})
        if tag == "h3" and "day-separator" in classes:
            self.days.append((self.sections[-1], a["data-day"]))
        if tag == "aside" and "summary" in classes:
            self.summaries += 1
        if "legend-role" in classes:
            self.legend[a["data-role"]] = a["data-color"]


def _parse(html_text: str) -> _Page:
    page = _Page()
    page.feed(html_text)
    return page


def test_role_palette_is_distinct_for_many_roles() -> None:
    roles = [f"role {i}" for i in range(40)]
    palette = exports.role_palette(roles)
    assert len(set(palette.values())) == 40
    assert all(len(c) == 7 and c.startswith("#") for c in palette.values())
    # colours go by position: the same for the first roles whatever their names
    assert exports.role_palette(["A", "B"]) == {"A": palette["role 0"], "B": palette["role 1"]}


async def test_html_sections_colours_and_escaping(
    store, analysis_data: AnalysisData, tmp_path: Path
) -> None:
    d = analysis_data
    [path] = await exports.export(store, fmt="html", output=tmp_path)
    assert path == tmp_path / "transcripts.html"
    text = path.read_text(encoding="utf-8")
    page = _parse(text)
    assert sorted(page.sections) == sorted([d.a.id, d.b.id, d.c.id])  # one per conversation
    assert page.scripts == 0  # "<script>" in a message is escaped, not injected
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;b&gt;Hello&lt;/b&gt;" in text
    utterances = [m for m in page.messages if "kind-utterance" in m["class"]]
    colors = {m["data-role"]: m["data-color"] for m in utterances}
    assert set(colors) == {"Guard", "Prisoner", "Trader", "Gossip"}
    assert len(set(colors.values())) == 4  # a distinct colour per role
    assert colors == {r: c for r, c in page.legend.items()}
    for m in page.messages:  # every message of a role has that role's colour
        if "kind-utterance" in m["class"]:
            assert m["data-color"] == colors[m["data-role"]]
            assert f"--role-color:{colors[m['data-role']]}" in m["style"]
    assert [s for s, _ in page.days].count(d.a.id) == 2  # day separators
    assert page.summaries == 2
    title = text[text.index("<title>") : text.index("</title>")]
    assert title.startswith("<title>Transcripts · ") and "Prison study" in title
    assert "Other" in title
    first, second = page.sections[0], page.sections[1]
    assert f'<a href="#c-{second}">next →</a>' in text
    assert f'<a href="#c-{first}">← previous</a>' in text
    assert len([m for m in page.messages if m["section"] == d.a.id]) == 7  # kickoff + 6


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError("chromium is not installed (scripts/install.sh installs it)")


async def test_html_opens_in_headless_chromium(
    store, analysis_data: AnalysisData, tmp_path: Path
) -> None:
    from PIL import Image

    d = analysis_data
    [path] = await exports.export(
        store, ConversationFilter(batch_id=d.batch.id), fmt="html", output=tmp_path / "t.html"
    )
    shot = tmp_path / "shot.png"
    proc = await asyncio.to_thread(
        subprocess.run,
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1000,800",
            path.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists(), proc.stderr.decode(errors="replace")[-2000:]
    assert shot.stat().st_size > 10_000
    image = Image.open(shot).convert("RGB")
    assert image.size == (1000, 800)
    pixels = {image.getpixel((x, y)) for x in range(0, 1000, 2) for y in range(0, 800, 2)}
    assert len(pixels) > 50  # not a blank page
    page = _parse(path.read_text(encoding="utf-8"))
    guard = next(m for m in page.messages if m["data-role"] == "Guard")
    for color in (guard["data-color"], exports.tint(guard["data-color"])):
        rgb = tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))
        near = [p for p in pixels if max(abs(p[k] - rgb[k]) for k in range(3)) <= 3]
        assert near, f"the screenshot shows no {color} (a Guard message's border or background)"


# --------------------------------------------------------------------------- the commands


def test_export_help_documents_every_format_and_filter(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["export", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for fmt in exports.FORMATS:
        assert f"\n  {fmt} " in out, fmt
    for what in exports.TABLES:
        assert f"\n  {what} " in out, what
    for option in (
        "--format",
        "--what",
        "--output",
        "--experiment",
        "--batch",
        "--model",
        "--days",
        "--counts",
        "--status",
        "--factor",
        "--conversation",
        "--kind",
    ):
        assert option in out, option
    assert "guard=1,prisoner=2" in out and "goal=Escape" in out
    # every option explains itself
    export = build_parser()._subparsers._group_actions[0].choices["export"]  # type: ignore[union-attr]
    for action in export._actions:
        assert action.help and len(action.help) > 10, action.option_strings


def test_plot_help_lists_figures(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["plot", "--help"])
    out = capsys.readouterr().out
    for name in ("tokens", "length", "share", "cells", "all", "--counts", "--factor"):
        assert name in out


@pytest.fixture
def cli_env(store, mongo_uri: str, tmp_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", store.db_name)


async def test_export_command(
    store, analysis_data: AnalysisData, cli_env, tmp_path: Path, capsys
) -> None:
    d = analysis_data
    out = tmp_path / "out.parquet"
    code = await asyncio.to_thread(
        main,
        [
            "export",
            "--format",
            "parquet",
            "--experiment",
            "Prison study",
            "--counts",
            "guard=1,prisoner=2",
            "--factor",
            "goal=Escape",
            "-o",
            str(out),
        ],
    )
    assert code == 0
    assert str(out) in capsys.readouterr().out
    back = pd.read_parquet(out)
    assert set(back["conversation_id"]) == {d.a.id}
    pd.testing.assert_frame_equal(back, await load_messages(store, conversation_ids=[d.a.id]))

    code = await asyncio.to_thread(
        main, ["export", "--what", "metrics", "--status", "failed", "-o", str(tmp_path)]
    )
    assert code == 0
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert metrics["conversation_id"].tolist() == [d.b.id]

    code = await asyncio.to_thread(
        main,
        ["export", "--kind", "summary", "--kind", "kickoff", "-o", str(tmp_path / "k.csv")],
    )
    assert code == 0
    kinds = pd.read_csv(tmp_path / "k.csv")["kind"]
    assert set(kinds) == {"summary", "kickoff"} and len(kinds) == 2 + 3

    code = await asyncio.to_thread(main, ["export", "--counts", "guard=x"])
    assert code == 2
    assert "whole number" in capsys.readouterr().err
    code = await asyncio.to_thread(main, ["export", "--experiment", "Nope", "-o", str(tmp_path)])
    assert code == 2
    assert "error: Not found: No experiment 'Nope'" in capsys.readouterr().err


async def test_plot_command_writes_pngs(
    store, analysis_data: AnalysisData, cli_env, tmp_path: Path
) -> None:
    code = await asyncio.to_thread(
        main, ["plot", "--batch", analysis_data.batch.id, "--figure", "all", "-o", str(tmp_path)]
    )
    assert code == 0
    for name in ("tokens", "prompt-tokens", "length", "latency", "share", "cells"):
        png = tmp_path / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 5_000
    one = tmp_path / "one.png"
    assert await asyncio.to_thread(main, ["plot", "--figure", "length", "-o", str(one)]) == 0
    assert one.exists()
