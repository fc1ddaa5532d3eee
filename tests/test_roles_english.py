"""The English of role placeholders, checked against standard English grammar rather than against
the implementation (issue 20): irregular and compound plurals, possessives, proper nouns and
titles, articles, pronouns, present and past tense. Each case goes through the public ``render``
with a role of that name, at one agent and at three."""

from __future__ import annotations

import pytest

from simulator.domain.models import Gender, Role
from simulator.roles import RenderContext, render


def say(text: str, role: str, count: int, gender: str = "neutral") -> str:
    ctx = RenderContext(roles=[Role(name=role, gender=Gender(gender))], counts={role: count})
    return render(text, ctx)


def tag(role: str, kind: str) -> str:
    return f"<{role.upper()}_{kind}>"


# (role name, one agent, three agents)
NOUNS: list[tuple[str, str, str]] = [
    # -f / -fe
    ("Thief", "thief", "thieves"),
    ("Knife", "knife", "knives"),
    ("Wife", "wife", "wives"),
    ("Leaf", "leaf", "leaves"),
    ("Half", "half", "halves"),
    ("Shelf", "shelf", "shelves"),
    ("Calf", "calf", "calves"),
    ("Wolf", "wolf", "wolves"),
    ("Elf", "elf", "elves"),
    ("Roof", "roof", "roofs"),
    ("Chief", "chief", "chiefs"),
    ("Belief", "belief", "beliefs"),
    ("Chef", "chef", "chefs"),
    # -o
    ("Hero", "hero", "heroes"),
    ("Potato", "potato", "potatoes"),
    ("Echo", "echo", "echoes"),
    ("Tomato", "tomato", "tomatoes"),
    ("Piano", "piano", "pianos"),
    ("Photo", "photo", "photos"),
    ("Radio", "radio", "radios"),
    ("Zoo", "zoo", "zoos"),
    ("Gaucho", "gaucho", "gauchos"),
    ("Maestro", "maestro", "maestros"),
    ("Superhero", "superhero", "superheroes"),
    # vowel change and -en
    ("Mouse", "mouse", "mice"),
    ("Goose", "goose", "geese"),
    ("Tooth", "tooth", "teeth"),
    ("Foot", "foot", "feet"),
    ("Man", "man", "men"),
    ("Woman", "woman", "women"),
    ("Fireman", "fireman", "firemen"),
    ("Policewoman", "policewoman", "policewomen"),
    ("Chairman", "chairman", "chairmen"),
    ("German", "german", "germans"),
    ("Human", "human", "humans"),
    ("Child", "child", "children"),
    ("Person", "person", "people"),
    ("Ox", "ox", "oxen"),
    # unchanged plurals
    ("Sheep", "sheep", "sheep"),
    ("Deer", "deer", "deer"),
    ("Fish", "fish", "fish"),
    ("Series", "series", "series"),
    ("Species", "species", "species"),
    ("Aircraft", "aircraft", "aircraft"),
    # Greek and Latin
    ("Criterion", "criterion", "criteria"),
    ("Phenomenon", "phenomenon", "phenomena"),
    ("Analysis", "analysis", "analyses"),
    ("Crisis", "crisis", "crises"),
    ("Thesis", "thesis", "theses"),
    ("Cactus", "cactus", "cacti"),
    ("Alumnus", "alumnus", "alumni"),
    ("Fungus", "fungus", "fungi"),
    # sibilants, -y
    ("Bus", "bus", "buses"),
    ("Boss", "boss", "bosses"),
    ("Box", "box", "boxes"),
    ("Church", "church", "churches"),
    ("Brush", "brush", "brushes"),
    ("Waltz", "waltz", "waltzes"),
    ("Monarch", "monarch", "monarchs"),
    ("Patriarch", "patriarch", "patriarchs"),
    ("City", "city", "cities"),
    ("Spy", "spy", "spies"),
    ("Day", "day", "days"),
    ("Boy", "boy", "boys"),
    ("Attorney", "attorney", "attorneys"),
    ("Jones", "jones", "joneses"),
    # compounds
    ("Mother-in-law", "mother-in-law", "mothers-in-law"),
    ("Son-in-law", "son-in-law", "sons-in-law"),
    ("Commander-in-chief", "commander-in-chief", "commanders-in-chief"),
    ("Passer-by", "passer-by", "passers-by"),
    ("Runner-up", "runner-up", "runners-up"),
    ("Hanger-on", "hanger-on", "hangers-on"),
    ("Man-of-war", "man-of-war", "men-of-war"),
    ("Lady-in-waiting", "lady-in-waiting", "ladies-in-waiting"),
    ("Stand-in", "stand-in", "stand-ins"),
    ("Grown-up", "grown-up", "grown-ups"),
    ("Vice-President", "vice-president", "vice-presidents"),
    ("Attorney General", "attorney general", "attorneys general"),
    ("Secretary General", "secretary general", "secretaries general"),
    ("Court Martial", "court martial", "courts martial"),
    ("Notary Public", "notary public", "notaries public"),
    ("President-elect", "president-elect", "presidents-elect"),
    ("Major General", "major general", "major generals"),
    ("Prison Guard", "prison guard", "prison guards"),
    ("Police Officer", "police officer", "police officers"),
    ("Woman Doctor", "woman doctor", "women doctors"),
    ("Chief of staff", "chief of staff", "chiefs of staff"),
    ("Keeper of keys", "keeper of keys", "keepers of keys"),
    # proper nouns in the complement and acronyms keep their case
    ("Citizen of Rome", "citizen of Rome", "citizens of Rome"),
    ("Member of Parliament", "member of Parliament", "members of Parliament"),
    ("Keeper of the Seal", "keeper of the Seal", "keepers of the Seal"),
    ("Citizen Of Rome", "citizen of Rome", "citizens of Rome"),
    ("CEO", "CEO", "CEOs"),
    ("NPC", "NPC", "NPCs"),
    ("FBI Agent", "FBI agent", "FBI agents"),
    ("PhD Student", "PhD student", "PhD students"),
    ("AI Assistant", "AI assistant", "AI assistants"),
]


@pytest.mark.parametrize(("role", "one", "three"), NOUNS)
def test_nouns(role: str, one: str, three: str) -> None:
    assert say(tag(role, "NOUN"), role, 1) == one
    assert say(tag(role, "NOUN"), role, 3) == three


# (role name, possessive of one, possessive of three)
POSSESSIVES: list[tuple[str, str, str]] = [
    ("Guard", "guard's", "guards'"),
    ("Boss", "boss's", "bosses'"),
    ("James", "james's", "jameses'"),
    ("Bus", "bus's", "buses'"),
    ("Thief", "thief's", "thieves'"),
    ("Wolf", "wolf's", "wolves'"),
    ("Child", "child's", "children's"),
    ("Person", "person's", "people's"),
    ("Man", "man's", "men's"),
    ("Woman", "woman's", "women's"),
    ("Mouse", "mouse's", "mice's"),
    ("Goose", "goose's", "geese's"),
    ("Sheep", "sheep's", "sheep's"),
    ("Ox", "ox's", "oxen's"),
    ("Series", "series's", "series'"),
    ("Hero", "hero's", "heroes'"),
    ("City", "city's", "cities'"),
    ("CEO", "CEO's", "CEOs'"),
    ("Prison Guard", "prison guard's", "prison guards'"),
    ("Mother-in-law", "mother-in-law's", "mothers-in-law's"),
    ("Passer-by", "passer-by's", "passers-by's"),
    ("Attorney General", "attorney general's", "attorneys general's"),
    ("Citizen of Rome", "citizen of Rome's", "citizens of Rome's"),
    ("Keeper of keys", "keeper of keys'", "keepers of keys'"),
    ("Prince of Wales", "prince of Wales's", "princes of Wales's"),
]


@pytest.mark.parametrize(("role", "one", "three"), POSSESSIVES)
def test_possessives(role: str, one: str, three: str) -> None:
    assert say(tag(role, "POSS"), role, 1) == one
    assert say(tag(role, "POSS"), role, 3) == three


def test_proper_names_keep_their_capital_when_the_tag_has_one() -> None:
    assert say("Ask <Jones_NOUN>.", "Jones", 1) == "Ask Jones."
    assert say("<Jones_POSS> keys", "Jones", 1) == "Jones's keys"
    assert say("the <James_POSS> keys", "James", 1) == "the James's keys"
    assert say("the <Jones_NOUN>", "Jones", 3) == "the Joneses"
    assert say("<Attorney General_NOUN> ruled", "Attorney General", 3) == (
        "Attorneys general ruled"
    )


# (role name, article and noun for one agent)
ARTICLES: list[tuple[str, str]] = [
    ("Guard", "a guard"),
    ("Officer", "an officer"),
    ("Unicorn", "a unicorn"),
    ("Hour Keeper", "an hour keeper"),
    ("Honest Broker", "an honest broker"),
    ("Heir", "an heir"),
    ("Eunuch", "a eunuch"),
    ("Useful Idiot", "a useful idiot"),
    ("User", "a user"),
    ("University Dean", "a university dean"),
    ("One-eyed Pirate", "a one-eyed pirate"),
    ("FBI Agent", "an FBI agent"),
    ("MP", "an MP"),
    ("NPC", "an NPC"),
    ("Umpire", "an umpire"),
    ("Elf", "an elf"),
]


@pytest.mark.parametrize(("role", "one"), ARTICLES)
def test_articles_agree_with_the_count_and_the_sound_of_the_next_word(role: str, one: str) -> None:
    text = f"{tag(role, 'ART')} {tag(role, 'NOUN')}"
    assert say(text, role, 1) == one
    assert say(text, role, 3) == "the " + say(tag(role, "NOUN"), role, 3)
    assert say(text, role, 0) == "no " + say(tag(role, "NOUN"), role, 0)


def test_article_looks_at_the_next_word_whatever_it_comes_from() -> None:
    assert say("<GUARD_ART> old <GUARD_NOUN>", "Guard", 1) == "an old guard"
    assert say("<GUARD_ART> <GUARD_NUM>-year veteran", "Guard", 8) == "the 8-year veteran"
    assert say('<GUARD_ART> "honest" guard', "Guard", 1) == 'an "honest" guard'
    assert say("one is <GUARD_ART>.", "Guard", 1) == "one is a."
    assert say("<Guard_ART> <GUARD_NOUN> waits.", "Guard", 1) == "A guard waits."


# gender -> (one agent: PRON, OBJPRON, POSSPRON, REFLPRON)
PRONOUNS = {
    "male": ("he", "him", "his", "himself"),
    "female": ("she", "her", "her", "herself"),
    "neutral": ("they", "them", "their", "themself"),
}


@pytest.mark.parametrize("gender", list(PRONOUNS))
def test_pronouns_by_gender_and_count(gender: str) -> None:
    kinds = ("PRON", "OBJPRON", "POSSPRON", "REFLPRON")
    one = tuple(say(f"<X_{k}>", "X", 1, gender) for k in kinds)
    three = tuple(say(f"<X_{k}>", "X", 3, gender) for k in kinds)
    assert one == PRONOUNS[gender]
    assert three == ("they", "them", "their", "themselves")


# (verb, present with one agent, simple past)
VERBS: list[tuple[str, str, str]] = [
    ("be", "is", "was"),
    ("have", "has", "had"),
    ("do", "does", "did"),
    ("go", "goes", "went"),
    ("make", "makes", "made"),
    ("say", "says", "said"),
    ("pay", "pays", "paid"),
    ("lie", "lies", "lied"),
    ("die", "dies", "died"),
    ("watch", "watches", "watched"),
    ("fix", "fixes", "fixed"),
    ("push", "pushes", "pushed"),
    ("buzz", "buzzes", "buzzed"),
    ("carry", "carries", "carried"),
    ("try", "tries", "tried"),
    ("play", "plays", "played"),
    ("obey", "obeys", "obeyed"),
    ("echo", "echoes", "echoed"),
    ("veto", "vetoes", "vetoed"),
    ("stop", "stops", "stopped"),
    ("plan", "plans", "planned"),
    ("admit", "admits", "admitted"),
    ("prefer", "prefers", "preferred"),
    ("visit", "visits", "visited"),
    ("open", "opens", "opened"),
    ("offer", "offers", "offered"),
    ("travel", "travels", "travelled"),
    ("panic", "panics", "panicked"),
    ("agree", "agrees", "agreed"),
    ("hope", "hopes", "hoped"),
    ("take", "takes", "took"),
    ("bring", "brings", "brought"),
    ("think", "thinks", "thought"),
    ("teach", "teaches", "taught"),
    ("catch", "catches", "caught"),
    ("speak", "speaks", "spoke"),
    ("write", "writes", "wrote"),
    ("steal", "steals", "stole"),
    ("hide", "hides", "hid"),
    ("run", "runs", "ran"),
    ("swim", "swims", "swam"),
    ("begin", "begins", "began"),
    ("forget", "forgets", "forgot"),
    ("understand", "understands", "understood"),
    ("overcome", "overcomes", "overcame"),
    ("withdraw", "withdraws", "withdrew"),
    ("put", "puts", "put"),
    ("set", "sets", "set"),
    ("let", "lets", "let"),
    ("read", "reads", "read"),
    ("lead", "leads", "led"),
    ("feel", "feels", "felt"),
    ("leave", "leaves", "left"),
    ("find", "finds", "found"),
    ("fight", "fights", "fought"),
    ("behave", "behaves", "behaved"),
    ("can", "can", "could"),
    ("will", "will", "would"),
    ("must", "must", "must"),
]


@pytest.mark.parametrize(("verb", "one", "past"), VERBS)
def test_verbs_present_and_past(verb: str, one: str, past: str) -> None:
    present_many = {"be": "are", "have": "have"}.get(verb, verb)
    past_many = "were" if verb == "be" else past
    assert say(f"<X_VERB_{verb}>", "X", 1, "male") == one
    assert say(f"<X_VERB_{verb}>", "X", 3, "male") == present_many
    assert say(f"<X_PAST_{verb}>", "X", 1, "male") == past
    assert say(f"<X_PAST_{verb}>", "X", 3, "male") == past_many


def test_contractions_are_written_after_the_tag() -> None:
    assert say("<X_VERB_do>n't", "X", 1) == "doesn't"
    assert say("<X_VERB_do>n't", "X", 2) == "don't"
    assert say("<X_PAST_be>n't", "X", 1) == "wasn't"
    assert say("<X_PRON> <X_PAST_be>n't", "X", 1) == "they weren't"
    assert say("<X_VERB_can't>", "X", 1) == "can't"
