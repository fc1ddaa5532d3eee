"""docs/roles.md is the contract: every row of its tag tables and its worked example render exactly
as the page says (issue 20: one table of every tag with an example at counts 1 and 3)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simulator.domain.models import Gender, Role
from simulator.roles import RenderContext, render

DOC = Path(__file__).resolve().parents[1] / "docs" / "roles.md"
ROLES = [Role(name="Guard", gender=Gender.male), Role(name="Prisoner"), Role(name="Officer")]
CODE = re.compile(r"`([^`]*)`")


def _table(heading: str) -> list[tuple[str, str, str]]:
    """(tag text, result at count 1, result at count 3) of the first table under ``heading``."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1]
    rows: list[tuple[str, str, str]] = []
    for line in section.splitlines():
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        codes = [CODE.fullmatch(c) for c in cells[:3]]
        if all(codes):
            rows.append(tuple(m.group(1) for m in codes if m is not None))  # type: ignore[arg-type]
    return rows


def _context(tags: str, count: int) -> RenderContext:
    """The page's setting: Guard (male), Prisoner and Officer (neutral); Guard 1 speaks; the
    count goes to the roles the row names (Guard when it names none), ROLES counts roles."""
    named = {r.name for r in ROLES if re.search(rf"<{r.name}_", tags, re.IGNORECASE)}
    roles = ROLES[:count] if re.search(r"<ROLES_", tags, re.IGNORECASE) else ROLES
    counts = {name: count for name in named or {"Guard"}}
    if "Guard" not in counts:
        counts["Guard"] = 1
    return RenderContext(
        roles=roles,
        counts=counts,
        factors={"goal": "Escape"},
        factor_levels={"goal": ["Escape", "Yard Time"]},
        name="Guard 1",
        role="Guard",
        day=2,
        days=3,
    )


EVERY_TAG = _table("## Every tag")
CAPITALS = _table("## Capitalisation")


def test_the_tables_are_complete() -> None:
    """One table lists every tag type, counters, factor, name, day and days."""
    tags = " ".join(row[0] for row in EVERY_TAG)
    for needed in [
        *(f"_{t}>" for t in ("NUM", "NUMWORD", "NOUN", "POSS", "ART", "PRON", "OBJPRON")),
        *(f"_{t}>" for t in ("POSSPRON", "REFLPRON")),
        "_VERB_",
        "_PAST_",
        "<AGENTS_",
        "<ROLES_",
        "<OTHERS>",
        "<OTHERS_",
        "<FACTOR:",
        "<NAME>",
        "<DAY>",
        "<DAYS>",
    ]:
        assert needed in tags, needed
    assert len(EVERY_TAG) >= 35 and len(CAPITALS) >= 8


@pytest.mark.parametrize(("text", "one", "three"), EVERY_TAG + CAPITALS)
def test_documented_rows_render_as_documented(text: str, one: str, three: str) -> None:
    assert render(text, _context(text, 1)) == one
    assert render(text, _context(text, 3)) == three


def test_documented_example_renders_as_documented() -> None:
    example = DOC.read_text(encoding="utf-8").split("\n## Example\n", 1)[1]
    source, expected = re.findall(r"```\n(.*?)```", example, re.DOTALL)[:2]
    ctx = RenderContext(
        roles=[Role(name="Guard"), Role(name="Prisoner")],
        counts={"Guard": 2, "Prisoner": 1},
        name="Guard 2",
        role="Guard",
    )
    assert render(source, ctx) == expected
