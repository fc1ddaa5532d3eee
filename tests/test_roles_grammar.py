"""The placeholder grammar, table-driven: every tag type at counts 1 and >1, irregular nouns and
verbs, multi-word roles, possessives of plurals and capitalisation (issue 4, acceptance 1)."""

from __future__ import annotations

import pytest

from simulator.domain.errors import SpecError
from simulator.domain.models import Gender, Role, StudyFactor
from simulator.roles import RenderContext, render

ROLES = [
    Role(name="Guard", gender=Gender.male),
    Role(name="Prisoner", gender=Gender.female),
    Role(name="Prison Guard"),
    Role(name="Person"),
    Role(name="Child"),
    Role(name="Wolf"),
    Role(name="Keeper of keys"),
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
    ("<KEEPER OF KEYS_NOUN>", {"Keeper of keys": 2}, "keepers of keys"),
    ("<Prison Guard_NOUN>", {"Prison Guard": 2}, "Prison guards"),
    # POSS
    ("<GUARD_POSS>", {"Guard": 1}, "guard's"),
    ("<GUARD_POSS>", {"Guard": 2}, "guards'"),
    ("<CHILD_POSS>", {"Child": 2}, "children's"),
    ("<PERSON_POSS>", {"Person": 2}, "people's"),
    ("<BOSS_POSS>", {"Boss": 1}, "boss's"),
    ("<BOSS_POSS>", {"Boss": 2}, "bosses'"),
    ("<PRISON GUARD_POSS>", {"Prison Guard": 3}, "prison guards'"),
    ("<KEEPER OF KEYS_POSS>", {"Keeper of keys": 1}, "keeper of keys'"),
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


# --------------------------------------------------------------------------- issue 20

MORE_ROLES = [
    Role(name="Guard", gender=Gender.male),
    Role(name="Prisoner", gender=Gender.female),
    Role(name="Person"),
    Role(name="Thief"),
    Role(name="Passer-by"),
    Role(name="Officer"),
    Role(name="Citizen of Rome"),
    Role(name="Attorney General"),
]


def say(text: str, counts: dict[str, int], **kw: object) -> str:
    ctx = RenderContext(roles=MORE_ROLES, counts=counts, **kw)  # type: ignore[arg-type]
    return render(text, ctx)


FOURTEEN = {"Guard": 6, "Prisoner": 8}

# (text, counts, expected): each failed before issue 20.
ISSUE_20: list[tuple[str, dict[str, int], str]] = [
    # irregular and compound plurals
    ("<THIEF_NOUN>", {"Thief": 2}, "thieves"),
    ("<THIEF_POSS>", {"Thief": 2}, "thieves'"),
    ("<PASSER-BY_NOUN>", {"Passer-by": 2}, "passers-by"),
    ("<PASSER-BY_POSS>", {"Passer-by": 2}, "passers-by's"),
    # proper nouns and titles
    ("<CITIZEN OF ROME_NOUN>", {"Citizen of Rome": 2}, "citizens of Rome"),
    ("<citizen_of_rome_noun>", {"Citizen of Rome": 1}, "citizen of Rome"),
    ("<ATTORNEY GENERAL_NOUN>", {"Attorney General": 2}, "attorneys general"),
    ("<ATTORNEY GENERAL_POSS>", {"Attorney General": 2}, "attorneys general's"),
    # capitalised counters at a sentence start
    ("<Agents_NUMWORD> agents.", FOURTEEN, "Fourteen agents."),
    ("Two roles. <Roles_NUMWORD> it is.", {}, "Two roles. Eight it is."),
    ("<Agents_NOUN> <AGENTS_VERB_be> here.", FOURTEEN, "Agents are here."),
    # singular they agrees with words between the pronoun and its verb
    ("<PERSON_PRON> always <PERSON_VERB_lie>", {"Person": 1}, "they always lie"),
    ("<PERSON_PRON> never, ever <PERSON_VERB_lie>", {"Person": 1}, "they never, ever lie"),
    ("<GUARD_PRON> always <GUARD_VERB_lie>", {"Guard": 1}, "he always lies"),
    (
        "<PERSON_PRON> <PERSON_VERB_eat> and <PERSON_VERB_drink>",
        {"Person": 1},
        "they eat and drink",
    ),
    # ... and with both tags capitalised the verb is not (it is mid-sentence)
    ("<Person_PRON> <Person_VERB_be> here.", {"Person": 1}, "They are here."),
    ("<Guard_PRON> <Guard_VERB_be> here.", {"Guard": 1}, "He is here."),
    ("<Person_PRON> <Person_PAST_be> here.", {"Person": 1}, "They were here."),
    # questions: the pronoun right after the verb is its subject
    ("<Person_VERB_be> <PERSON_PRON> ready?", {"Person": 1}, "Are they ready?"),
    ("<Guard_VERB_be> <GUARD_PRON> ready?", {"Guard": 1}, "Is he ready?"),
    # the new tags
    ("<OFFICER_ART> <OFFICER_NOUN>", {"Officer": 1}, "an officer"),
    ("<GUARD_ART> <GUARD_NOUN>", {"Guard": 1}, "a guard"),
    ("<GUARD_ART> <GUARD_NOUN>", {"Guard": 3}, "the guards"),
    ("<GUARD_PAST_be>", {"Guard": 1}, "was"),
    ("<GUARD_PAST_be>", {"Guard": 2}, "were"),
    ("<GUARD_PAST_go>", {"Guard": 2}, "went"),
    ("<GUARD_REFLPRON>", {"Guard": 1}, "himself"),
    ("<PRISONER_REFLPRON>", {"Prisoner": 1}, "herself"),
    ("<PERSON_REFLPRON>", {"Person": 1}, "themself"),
    ("<PERSON_REFLPRON>", {"Person": 2}, "themselves"),
    ("<AGENTS_VERB_be>", {"Guard": 1}, "is"),
    ("<AGENTS_VERB_be>", {"Guard": 1, "Person": 1}, "are"),
    ("<AGENTS_PAST_have>", {"Guard": 2}, "had"),
    ("<ROLES_NOUN>", {}, "roles"),
]


@pytest.mark.parametrize(("text", "counts", "expected"), ISSUE_20)
def test_issue_20_grammar(text: str, counts: dict[str, int], expected: str) -> None:
    assert say(text, counts) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<Person_PRON> <Person_VERB_be>", "They are"),
        ("Yes. <Person_PRON> <Person_VERB_be>", "Yes. They are"),
        ("yes, <Person_PRON> <Person_VERB_be>", "yes, they are"),
        ("Note: <Person_PRON> <Person_VERB_be>", "Note: they are"),
        ('He said "<Person_PRON> <Person_VERB_be>', 'He said "they are'),
        ('Done." <Person_PRON> <Person_VERB_be>', 'Done." They are'),
        ("(Done.) <Person_PRON> <Person_VERB_be>", "(Done.) They are"),
        ("line\n- <Person_PRON> <Person_VERB_be>", "line\n- They are"),
        ("## <Person_PRON> <Person_VERB_be>", "## They are"),
        ("1. <Person_PRON> <Person_VERB_be>", "1. They are"),
        ("Why? (<Person_PRON> <Person_VERB_be>", "Why? (They are"),
        ("the <Person_NOUN> and <Person_POSS> keys", "the Person and Person's keys"),
        ("<person_pron> <PERSON_VERB_be>", "they are"),
    ],
)
def test_pronouns_verbs_and_numbers_take_a_capital_only_where_a_sentence_starts(
    text: str, expected: str
) -> None:
    assert say(text, {"Person": 1}) == expected


def test_the_pronoun_decides_only_within_its_sentence_and_its_role() -> None:
    one = {"Person": 1, "Guard": 1}
    assert say("<PERSON_PRON> left. <PERSON_VERB_be> back", one) == "they left. is back"
    assert say("<PERSON_PRON> saw the <GUARD_NOUN>, who <GUARD_VERB_lie>", one) == (
        "they saw the guard, who lies"
    )
    assert say("<PERSON_PRON> and the <GUARD_NOUN> <PERSON_VERB_be>", one) == (
        "they and the guard are"
    )
    assert say("The <PERSON_NOUN> <PERSON_VERB_say> <PERSON_PRON> <PERSON_VERB_be> ill", one) == (
        "The person says they are ill"
    )
    assert say("<PERSON_PRON> know the <PERSON_NOUN> <PERSON_VERB_be> ill", one) == (
        "they know the person is ill"
    )


def test_others_names_the_other_agents_of_the_speakers_role() -> None:
    text = (
        "You share the watch with <OTHERS>. "
        "<Others_NUMWORD> other <OTHERS_NOUN> <OTHERS_VERB_be> here."
    )
    expected = {
        1: "You share the watch with no other guards. No other guards are here.",
        2: "You share the watch with the other guard. One other guard is here.",
        3: "You share the watch with the other two guards. Two other guards are here.",
    }
    for guards, wanted in expected.items():
        got = say(text, {"Guard": guards, "Person": 4}, name="Guard 1", role="Guard")
        assert got == wanted
    assert say("<OTHERS_PRON> <OTHERS_VERB_be>", {"Person": 2}, name="P", role="Person") == (
        "they are"
    )
    assert say("<OTHERS_PRON> <OTHERS_PAST_be>", {"Guard": 2}, name="Guard 2", role="Guard") == (
        "he was"
    )
    assert say("<OTHERS_POSS>", {"Guard": 2}, name="Guard 1", role="Guard") == "guard's"
    assert say("<OTHERS_NUM>", {"Guard": 3}, name="Guard 1", role="Guard") == "2"


def test_others_is_only_where_an_agent_speaks() -> None:
    with pytest.raises(SpecError, match="other agents of the speaking agent's role"):
        say("<OTHERS>", {"Guard": 2})
    with pytest.raises(SpecError, match="OTHERS"):
        say("<OTHERS_NUM>", {"Guard": 2})


def test_zero_is_no_in_words() -> None:
    assert say("<GUARD_NUMWORD> <GUARD_NOUN>", {}) == "no guards"
