"""Rendering whole prompts: section order and headings, every count combination up to 3x3
(issue 4, acceptance 3), agent names, and a property test (acceptance 4)."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.domain.errors import SpecError
from simulator.domain.models import Role, Section
from simulator.roles import (
    RenderContext,
    agent_names,
    render,
    render_starting_message,
    render_summarizer_prompt,
    render_system_prompt,
)
from tests.plugins.roles import make_experiment

UNRESOLVED = re.compile(r"<[^<>\n]*>")


@pytest.mark.parametrize(("guards", "prisoners"), list(itertools.product(range(1, 4), range(1, 4))))
def test_every_combination_up_to_3x3_resolves_every_tag(guards: int, prisoners: int) -> None:
    exp = make_experiment()
    counts = {"Guard": guards, "Prisoner": prisoners}
    texts = [render_starting_message(exp, counts), render_summarizer_prompt(exp, counts)]
    for level in ("Escape", "Yard Time"):
        for name, role in agent_names(exp.roles, counts):
            texts.append(
                render_system_prompt(exp, role, counts, name=name, factors={"goal": level})
            )
    assert len(texts) == 2 + 2 * (guards + prisoners)
    for text in texts:
        assert text.strip()
        assert not UNRESOLVED.search(text), text
    guard_prompt = texts[2]
    if guards == 1:
        assert "one of 1 guard watching" in guard_prompt
        assert "He is in charge." in guard_prompt
    else:
        assert f"one of {guards} guards watching" in guard_prompt
        assert "They are in charge." in guard_prompt
    assert f"{guards + prisoners} agents in 2 roles" in texts[0]


def test_system_prompt_interleaves_sections_as_arranged_with_headings() -> None:
    exp = make_experiment()
    prompt = render_system_prompt(
        exp, "Guard", {"Guard": 1, "Prisoner": 2}, name="Guard 1", factors={"goal": "Escape"}
    )
    assert prompt == (
        "You are Guard 1, one of 1 guard watching two prisoners. He is in charge.\n\n"
        "## Environment\n\n"
        "A simulated prison where guard watches prisoners. Goal: Escape.\n\n"
        "## Goal\n\n"
        "Keep prisoners' cells in order; they are watched by his team."
    )


def test_factor_variant_chooses_section_text() -> None:
    exp = make_experiment()
    counts = {"Guard": 2, "Prisoner": 1}
    escape = render_system_prompt(exp, "Prisoner", counts, name="P", factors={"goal": "Escape"})
    yard = render_system_prompt(exp, "Prisoner", counts, name="P", factors={"goal": "Yard Time"})
    assert "## Goal\n\nTry to escape." in escape
    assert "extra hour in the yard" in yard and "escape." not in yard
    assert "The guards have the keys." in escape


def test_empty_variant_omits_the_section() -> None:
    exp = make_experiment()
    exp.roles[1].sections[1].variants = {"Escape": "", "Yard Time": "Yard."}
    prompt = render_system_prompt(exp, "Prisoner", {"Guard": 1, "Prisoner": 1}, name="P 1")
    assert "## Goal" not in prompt


def test_starting_message_and_summarizer_use_day_and_days() -> None:
    exp = make_experiment()
    counts = {"Guard": 2, "Prisoner": 2}
    assert render_starting_message(exp, counts, day=2, days=3) == (
        "Day 2 of 3: 4 agents in 2 roles. Begin."
    )
    assert render_summarizer_prompt(exp, counts, day=3, days=3) == (
        "Summarise day 3 of four agents."
    )


def test_unknown_role_for_system_prompt_is_a_clear_error() -> None:
    with pytest.raises(SpecError, match="no role 'Warden'"):
        render_system_prompt(make_experiment(), "Warden", {}, name="W 1")


def test_render_error_lists_every_bad_tag_with_a_suggestion() -> None:
    ctx = RenderContext(roles=[Role(name="Guard")], counts={"Guard": 1})
    with pytest.raises(SpecError) as err:
        render("<GAURD_NOUN> and <GUARD_NOUNS>", ctx)
    text = str(err.value)
    assert "<GAURD_NOUN>" in text and "<GUARD_NOUNS>" in text and "did you mean" in text


def test_agent_names_are_readable_unique_and_keep_their_role() -> None:
    roles = [Role(name="Guard"), Role(name="prisoner"), Role(name="Guard 1")]
    names = agent_names(roles, {"Guard": 11, "PRISONER": 2, "Guard 1": 1})
    assert names[:2] == [("Guard 1", "Guard"), ("Guard 2", "Guard")]
    assert ("Prisoner 1", "prisoner") in names
    assert ("Guard 1 1", "Guard 1") in names
    assert len({n for n, _ in names}) == len(names) == 14


def test_agent_names_skip_roles_without_agents() -> None:
    assert agent_names([Role(name="A"), Role(name="B")], {"B": 1}) == [("B 1", "B")]


def test_name_is_only_resolved_when_an_agent_is_given() -> None:
    ctx = RenderContext(roles=[], counts={})
    with pytest.raises(SpecError, match="own name"):
        render("Hi <NAME>", ctx)


def test_section_titles_are_rendered_too() -> None:
    exp = make_experiment()
    exp.shared_sections[0].title = "About the <Prisoner_NOUN>"
    prompt = render_system_prompt(exp, "Guard", {"Guard": 1, "Prisoner": 3}, name="Guard 1")
    assert "## About the Prisoners" in prompt


def test_sections_keep_order_even_when_private_comes_after_shared() -> None:
    exp = make_experiment()
    exp.roles[0].sections.append(Section(title="Last", content="Last words.", position=9))
    exp.shared_sections.append(Section(title="First shared", content="Rules.", position=-1))
    prompt = render_system_prompt(exp, "Guard", {"Guard": 1, "Prisoner": 1}, name="Guard 1")
    assert prompt.startswith("Rules.\n\n## Opening\n\nYou are Guard 1")
    assert prompt.endswith("## Last\n\nLast words.")


NO_TAG = re.compile(r"<[A-Za-z]|<[ \t]*>")
TAGLESS = st.text(
    alphabet=st.one_of(st.characters(blacklist_categories=("Cs",)), st.sampled_from("<<>>_: \n")),
    max_size=300,
).filter(lambda t: not NO_TAG.search(t))


@settings(max_examples=300, deadline=None)
@given(TAGLESS)
def test_text_without_tags_is_unchanged(text: str) -> None:
    ctx = RenderContext(roles=[Role(name="Guard")], counts={"Guard": 2})
    assert render(text, ctx) == text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_render_never_raises_anything_but_spec_error(text: str) -> None:
    ctx = RenderContext(roles=[Role(name="Guard")], counts={"Guard": 2}, name="Guard 1")
    try:
        out = render(text, ctx)
    except SpecError:
        return
    assert isinstance(out, str)


def test_docs_example_renders_as_documented() -> None:
    text = (
        "You are <NAME>, one of <GUARD_NUMWORD> <GUARD_NOUN> in charge of <PRISONER_NUM> "
        "<PRISONER_NOUN>.\n<Prisoner_POSS> cell is on your floor; <PRISONER_PRON> "
        "<PRISONER_VERB_have> one hour in the yard."
    )
    ctx = RenderContext(
        roles=[Role(name="Guard"), Role(name="Prisoner")],
        counts={"Guard": 2, "Prisoner": 1},
        name="Guard 2",
    )
    assert render(text, ctx) == (
        "You are Guard 2, one of two guards in charge of 1 prisoner.\n"
        "Prisoner's cell is on your floor; they have one hour in the yard."
    )


def test_double_angle_is_an_escape_only_before_a_letter() -> None:
    ctx = RenderContext(roles=[Role(name="Guard")], counts={"Guard": 2})
    assert render("a << b <<< c", ctx) == "a << b <<< c"
    assert render("<<GUARD_NOUN> is <GUARD_NOUN>", ctx) == "<GUARD_NOUN> is guards"
