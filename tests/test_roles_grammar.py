"""The placeholder grammar, table-driven: every tag type at counts 1 and >1, irregular nouns and
verbs, multi-word roles, possessives of plurals and capitalisation (issue 4, acceptance 1)."""

from __future__ import annotations

import pytest

from simulator.domain.models import Role, StudyFactor
from simulator.roles import RenderContext, render

ROLES = [
    Role(name="Guard", gender="male"),
    Role(name="Prisoner", gender="female"),
    Role(name="Prison Guard"),
    Role(name="Person"),
    Role(name="Child"),
    Role(name="Wolf"),
    Role(name="Keeper of Keys"),
    Role(name="CEO"),
    Role(name="Boss"),
    Role(name="Sheep"),
]


def ctx(counts: dict[str, int], **kw: object) -> RenderContext:
    return RenderContext(
        roles=ROLES,
        counts=counts,
        factor_levels={"goal": ["Escape", "Yard Time"], "persona": ["good", "bad"]},
        **kw,  # type: ignore[arg-type]
    )


# (text, role -> count, expected)
CASES: list[tuple[str, dict[str, int], str]] = [
    # NUM / NUMWORD
    ("<GUARD_NUM>", {"Guard": 1}, "1"),
    ("<GUARD_NUM>", {"Guard": 3}, "3"),
    ("<GUARD_NUMWORD>", {"Guard": 1}, "one"),
    ("<GUARD_NUMWORD>", {"Guard": 2}, "two"),
    ("<Guard_NUMWORD> of them", {"Guard": 21}, "Twenty-one of them"),
    ("<guard_num>", {}, "0"),
    # NOUN, regular and irregular
    ("<GUARD_NOUN>", {"Guard": 1}, "guard"),
    ("<GUARD_NOUN>", {"Guard": 2}, "guards"),
    ("<PERSON_NOUN>", {"Person": 1}, "person"),
    ("<PERSON_NOUN>", {"Person": 4}, "people"),
    ("<CHILD_NOUN>", {"Child": 2}, "children"),
    ("<WOLF_NOUN>", {"Wolf": 3}, "wolves"),
    ("<SHEEP_NOUN>", {"Sheep": 3}, "sheep"),
    ("<BOSS_NOUN>", {"Boss": 2}, "bosses"),
    ("<CEO_NOUN>", {"CEO": 2}, "CEOs"),
    # multi-word roles: plural of the head noun
    ("<PRISON GUARD_NOUN>", {"Prison Guard": 1}, "prison guard"),
    ("<PRISON GUARD_NOUN>", {"Prison Guard": 2}, "prison guards"),
    ("<prison_guard_noun>", {"Prison Guard": 2}, "prison guards"),
    ("<KEEPER OF KEYS_NOUN>", {"Keeper of Keys": 2}, "keepers of keys"),
    ("<Prison Guard_NOUN>", {"Prison Guard": 2}, "Prison guards"),
    # POSS
    ("<GUARD_POSS>", {"Guard": 1}, "guard's"),
    ("<GUARD_POSS>", {"Guard": 2}, "guards'"),
    ("<CHILD_POSS>", {"Child": 2}, "children's"),
    ("<PERSON_POSS>", {"Person": 2}, "people's"),
    ("<BOSS_POSS>", {"Boss": 1}, "boss's"),
    ("<BOSS_POSS>", {"Boss": 2}, "bosses'"),
    ("<PRISON GUARD_POSS>", {"Prison Guard": 3}, "prison guards'"),
    ("<KEEPER OF KEYS_POSS>", {"Keeper of Keys": 1}, "keeper of keys'"),
    # PRON / OBJPRON / POSSPRON by gender and count
    ("<GUARD_PRON>", {"Guard": 1}, "he"),
    ("<PRISONER_PRON>", {"Prisoner": 1}, "she"),
    ("<PERSON_PRON>", {"Person": 1}, "they"),
    ("<GUARD_PRON>", {"Guard": 2}, "they"),
    ("<GUARD_OBJPRON>", {"Guard": 1}, "him"),
    ("<PRISONER_OBJPRON>", {"Prisoner": 3}, "them"),
    ("<GUARD_POSSPRON>", {"Guard": 1}, "his"),
    ("<PRISONER_POSSPRON>", {"Prisoner": 1}, "her"),
    ("<PRISONER_POSSPRON>", {"Prisoner": 2}, "their"),
    # VERB agreement, regular and irregular
    ("the <GUARD_NOUN> <GUARD_VERB_make>", {"Guard": 1}, "the guard makes"),
    ("the <GUARD_NOUN> <GUARD_VERB_make>", {"Guard": 3}, "the guards make"),
    ("<GUARD_VERB_be>", {"Guard": 1}, "is"),
    ("<GUARD_VERB_be>", {"Guard": 2}, "are"),
    ("<GUARD_VERB_have>", {"Guard": 1}, "has"),
    ("<GUARD_VERB_have>", {"Guard": 2}, "have"),
    ("<GUARD_VERB_do>", {"Guard": 1}, "does"),
    ("<GUARD_VERB_do>", {"Guard": 2}, "do"),
    ("<GUARD_VERB_go>", {"Guard": 1}, "goes"),
    ("<GUARD_VERB_watch>", {"Guard": 1}, "watches"),
    ("<GUARD_VERB_carry>", {"Guard": 1}, "carries"),
    ("<GUARD_VERB_play>", {"Guard": 1}, "plays"),
    ("<GUARD_VERB_can>", {"Guard": 1}, "can"),
    ("<PRISON GUARD_VERB_make>", {"Prison Guard": 1}, "makes"),
    ("<guard_verb_MAKE>", {"Guard": 1}, "makes"),
    # singular "they" agrees like a plural; he/she do not
    ("<PERSON_PRON> <PERSON_VERB_be>", {"Person": 1}, "they are"),
    ("<PERSON_NOUN> <PERSON_VERB_be>", {"Person": 1}, "person is"),
    ("<GUARD_PRON> <GUARD_VERB_be>", {"Guard": 1}, "he is"),
    # capitalisation follows the tag's first letter
    ("<Guard_NOUN> first.", {"Guard": 1}, "Guard first."),
    ("<Guard_NOUN> first.", {"Guard": 2}, "Guards first."),
    ("<Guard_PRON> <GUARD_VERB_be>", {"Guard": 2}, "They are"),
    ("<Guard_POSS>", {"Guard": 2}, "Guards'"),
    ("<Guard_VERB_be>", {"Guard": 1}, "Is"),
    # experiment level
    ("<AGENTS_NUM>", {"Guard": 2, "Prisoner": 3}, "5"),
    ("<agents_numword>", {"Guard": 2, "Prisoner": 3}, "five"),
    ("<ROLES_NUM>", {"Guard": 1}, str(len(ROLES))),
    ("<FACTOR:goal>", {}, "Escape"),
    ("<factor:GOAL>", {}, "Escape"),
]


@pytest.mark.parametrize(("text", "counts", "expected"), CASES)
def test_placeholder_table(text: str, counts: dict[str, int], expected: str) -> None:
    assert render(text, ctx(counts)) == expected


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 40


def test_factor_level_name_day_days() -> None:
    c = ctx({"Guard": 1}, factors={"goal": "Yard Time"}, name="Guard 1", day=2, days=5)
    assert render("<NAME>: <FACTOR:goal>, day <DAY>/<DAYS>", c) == "Guard 1: Yard Time, day 2/5"


def test_factor_tag_never_collides_with_a_role_named_like_the_factor() -> None:
    roles = [*ROLES, Role(name="Goal")]
    c = RenderContext(roles=roles, counts={"Goal": 2}, factors={"goal": "Escape"})
    assert render("<GOAL_NOUN> / <FACTOR:goal>", c) == "goals / Escape"


def test_role_lookup_tolerates_case_and_spacing() -> None:
    assert render("<prison   guard_NOUN>", ctx({"prison guard": 2})) == "prison guards"


def test_experiment_factor_is_defined_in_models() -> None:
    # The grammar's factor tag form relies on factor names never containing a colon.
    with pytest.raises(ValueError):
        StudyFactor(name="a:b", levels=["x"])


def test_agents_and_roles_counters_win_over_a_role_of_that_name() -> None:
    roles = [Role(name="Agents"), Role(name="Guard")]
    c = RenderContext(roles=roles, counts={"Agents": 1, "Guard": 3})
    assert render("<AGENTS_NUM> <ROLES_NUM> <Agents_NOUN>", c) == "4 2 Agents"
