"""Validation: every invalid tag names its section and position and suggests the closest valid tag
(issue 4, acceptance 2); valid lower-case tags pass."""

from __future__ import annotations

import pytest

from simulator.domain.errors import SpecError
from simulator.domain.models import Section
from simulator.roles import RenderContext, render, validate_experiment, validate_text
from tests.plugins.roles import make_experiment

ROLES = ["Guard", "Prisoner", "Prison Guard"]
FACTORS = ["goal"]

# (text, expected tag as reported, words the message must contain, expected suggestion or None)
INVALID: list[tuple[str, str, str, str | None]] = [
    ("Hello <GAURD_NOUN> there", "<GAURD_NOUN>", "unknown role", "<GUARD_NOUN>"),
    ("Hello <gaurd_noun> there", "<gaurd_noun>", "unknown role", "<guard_noun>"),
    ("<WARDEN_NOUN>", "<WARDEN_NOUN>", "unknown role", None),
    ("<GUARD_NOUNS>", "<GUARD_NOUNS>", "unknown placeholder type", "<GUARD_NOUN>"),
    ("<guard_nuon>", "<guard_nuon>", "unknown placeholder type", "<guard_noun>"),
    ("<Guard_Pronoun>", "<Guard_Pronoun>", "unknown placeholder type", "<Guard_PRON>"),
    ("<Gaurd_NOUN>", "<Gaurd_NOUN>", "unknown role", "<Guard_NOUN>"),
    ("<GUARD_VERB>", "<GUARD_VERB>", "needs the verb", "<GUARD_VERB_make>"),
    ("<GUARD_VERB_>", "<GUARD_VERB_>", "base form", "<GUARD_VERB_make>"),
    ("<GUARD_VERB_make it>", "<GUARD_VERB_make it>", "base form", None),
    ("<GUARD_VERB_makes>", "<GUARD_VERB_makes>", "base form", "<GUARD_VERB_make>"),
    ("<guard_verb_is>", "<guard_verb_is>", "base form", "<guard_verb_be>"),
    ("<Guard_VERB_HAS>", "<Guard_VERB_HAS>", "base form", "<Guard_VERB_HAVE>"),
    ("<GUARD_VERB_watches>", "<GUARD_VERB_watches>", "base form", "<GUARD_VERB_watch>"),
    ("<GUARD>", "<GUARD>", "expected <ROLE_TYPE>", "<GUARD_NUM>"),
    ("<GUARD NOUN>", "<GUARD NOUN>", "expected <ROLE_TYPE>", "<GUARD_NOUN>"),
    ("The <GUARD_NOUN watches", "<GUARD_NOUN", "unclosed", "<GUARD_NOUN>"),
    ("The <guard_noun.", "<guard_noun.", "unclosed", "<guard_noun>"),
    ("end <PRISONER_NUM", "<PRISONER_NUM", "unclosed", "<PRISONER_NUM>"),
    ("<PRISON GUARD_NOUN\nnext", "<PRISON GUARD_NOUN", "unclosed", "<PRISON GUARD_NOUN>"),
    ("empty <> tag", "<>", "empty tag", None),
    ("empty < > tag", "< >", "empty tag", None),
    ("<FACTOR:gaol>", "<FACTOR:gaol>", "unknown study factor", "<FACTOR:goal>"),
    ("<factor:persona>", "<factor:persona>", "unknown study factor", None),
    ("<GUARD:NOUN>", "<GUARD:NOUN>", "colon", "<GUARD_NOUN>"),
    ("<AGENTS_PRON>", "<AGENTS_PRON>", "takes NUM, NUMWORD, NOUN, VERB_<verb>", "<AGENTS_NOUN>"),
    ("<roles_poss>", "<roles_poss>", "takes NUM, NUMWORD, NOUN, VERB_<verb>", None),
    ("<NAMES>", "<NAMES>", "expected <ROLE_TYPE>", "<NAME>"),
    ("<b>bold</b>", "<b>", "expected <ROLE_TYPE>", None),
    # issue 20: the new types are checked like the old ones
    ("<GUARD_PAST>", "<GUARD_PAST>", "needs the verb", "<GUARD_PAST_make>"),
    ("<GUARD_PAST_made>", "<GUARD_PAST_made>", "base form", "<GUARD_PAST_make>"),
    ("<guard_past_was>", "<guard_past_was>", "base form", "<guard_past_be>"),
    ("<GUARD_VERB_went>", "<GUARD_VERB_went>", "base form", "<GUARD_VERB_go>"),
    ("<GUARD_VERB_lies>", "<GUARD_VERB_lies>", "base form", "<GUARD_VERB_lie>"),
    ("<GUARD_VERB_don't>", "<GUARD_VERB_don't>", "<GUARD_VERB_do>n't", "<GUARD_VERB_do>"),
    ("<GUARD_VERB_ain't>", "<GUARD_VERB_ain't>", "without a contraction", None),
    ("<GUARD_REFLPRONS>", "<GUARD_REFLPRONS>", "unknown placeholder type", "<GUARD_REFLPRON>"),
    ("<Guard_ARTICLE>", "<Guard_ARTICLE>", "unknown placeholder type", "<Guard_ART>"),
    ("<OTHER_NUM>", "<OTHER_NUM>", "unknown role", "<OTHERS_NUM>"),
    ("<AGENTS_PRON>", "<AGENTS_PRON>", "takes NUM, NUMWORD, NOUN, VERB_<verb>", "<AGENTS_NOUN>"),
    ("<OTHERS_FOO>", "<OTHERS_FOO>", "unknown placeholder type", None),
]


@pytest.mark.parametrize(("text", "tag", "words", "suggestion"), INVALID)
def test_invalid_tag_is_reported(text: str, tag: str, words: str, suggestion: str | None) -> None:
    issues = validate_text(text, section="Guard section 'Goal'", roles=ROLES, factors=FACTORS)
    assert len(issues) == 1, issues
    issue = issues[0]
    assert issue.tag == tag
    assert words.lower() in issue.message.lower()
    assert issue.position == text.index(tag)
    if suggestion is None:
        assert issue.suggestion is None or issue.suggestion.startswith("<")
    else:
        assert issue.suggestion == suggestion
    text_of = str(issue)
    assert text_of.startswith("Guard section 'Goal', line 1, column ")
    assert tag in text_of


@pytest.mark.parametrize(("text", "tag", "words", "suggestion"), INVALID)
def test_render_refuses_invalid_tags(
    text: str, tag: str, words: str, suggestion: str | None
) -> None:
    ctx = RenderContext(roles=[], counts={}, factor_levels={"goal": ["x"]})
    with pytest.raises(SpecError):
        render(text, ctx)


VALID_LOWER = [
    "<guard_noun>",
    "<guard_verb_make>",
    "<prison guard_poss>",
    "<prison_guard_numword>",
    "<agents_num>",
    "<roles_numword>",
    "<factor:goal>",
    "<name>",
    "<day> of <days>",
    "<Prisoner_possPron>",
    "<guard_verb_miss>",
    "<GUARD_VERB_discuss>",
    "<GUARD_VERB_can>",
    "<GUARD_VERB_can't>",
    "<guard_art>",
    "<Guard_REFLPRON>",
    "<GUARD_PAST_be>",
    "<guard_past_make>",
    "<GUARD_VERB_found>",
    "<GUARD_VERB_need>",
    "<AGENTS_NOUN> <AGENTS_VERB_be> <ROLES_PAST_be>",
    "<OTHERS> <others_numword> <Others_NOUN> <OTHERS_VERB_be> <OTHERS_PAST_go>",
]


@pytest.mark.parametrize("text", VALID_LOWER)
def test_valid_lower_and_mixed_case_tags_pass(text: str) -> None:
    assert validate_text(text, section="s", roles=ROLES, factors=FACTORS) == []


@pytest.mark.parametrize("text", ["a < b", "x<3", "</b>", "<<GUARD_NOUN>> literal", "1 <= 2 > 0"])
def test_text_that_is_not_a_tag_is_fine(text: str) -> None:
    assert validate_text(text, section="s", roles=ROLES) == []


def test_line_and_column_are_counted_from_one() -> None:
    text = "first line\n  second <GAURD_NOUN> line"
    (issue,) = validate_text(text, section="shared section 'Environment'", roles=ROLES)
    assert (issue.line, issue.column) == (2, 10)
    assert str(issue).startswith("shared section 'Environment', line 2, column 10: <GAURD_NOUN>")


def test_validate_experiment_names_every_section_kind() -> None:
    exp = make_experiment(starting_message="Begin, <NAME>. <GAURD_NOUN>")
    exp.shared_sections[0].content = "ok <GUARD_NOUN>\n<PRISONER_NOUNS>"
    exp.roles[0].sections[1].title = "Goal of <GUARD_POS>"
    exp.roles[1].sections[1].variants = {"Escape": "fine", "Yard Time": "<FACTOR:gaol>"}
    exp.summarizer_sections[0].content = "Summarise for <NAME>"
    issues = validate_experiment(exp)
    labels = {(i.section, i.tag) for i in issues}
    assert labels == {
        ("starting message", "<NAME>"),
        ("starting message", "<GAURD_NOUN>"),
        ("shared section 'Environment'", "<PRISONER_NOUNS>"),
        ("title of Guard section 'Goal of <GUARD_POS>'", "<GUARD_POS>"),
        ("Prisoner section 'Goal' (level 'Yard Time')", "<FACTOR:gaol>"),
        ("summarizer section 'Summarizer'", "<NAME>"),
    }
    roles = {i.tag: i.role for i in issues}
    assert roles["<GUARD_POS>"] == "Guard"
    assert roles["<PRISONER_NOUNS>"] is None
    name_issue = next(i for i in issues if i.section == "starting message" and i.tag == "<NAME>")
    assert "agent's own name" in name_issue.message


def test_others_is_refused_where_no_agent_speaks() -> None:
    exp = make_experiment(starting_message="With <OTHERS>.")
    exp.summarizer_sections[0].content = "Summarise <OTHERS_NUM> others."
    exp.shared_sections[0].content = "You and <OTHERS>."
    issues = validate_experiment(exp)
    assert {(i.section, i.tag) for i in issues} == {
        ("starting message", "<OTHERS>"),
        ("summarizer section 'Summarizer'", "<OTHERS_NUM>"),
    }
    assert all("only in the sections agents see" in i.message for i in issues)


def test_valid_example_experiment_has_no_issues() -> None:
    assert validate_experiment(make_experiment()) == []


def test_untitled_section_is_labelled_by_number() -> None:
    exp = make_experiment()
    exp.shared_sections.append(Section(title="", content="<X_NOUN>", position=5))
    (issue,) = validate_experiment(exp)
    assert issue.section == "shared section #2"
