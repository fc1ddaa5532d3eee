"""Personas of a reputation population: a built-in set, the reference's design per game, or a
list imported from a file.

A file is YAML or JSON: a list of ``{name, persona}`` objects, each with an optional ``type``
(a label the metrics group agents by), or ``{"personas": [...]}``.

``repunet``: the published design (RepuNet, arXiv 2505.05029), written in our own words from the
paper's description: in the prisoner's dilemma half the agents are altruistic and cooperative and
half rational and self-interested; in the sign-up game half are community-minded residents and
half rational residents who put their own comfort first; in the investment game every agent is
rational and out for its own interest. The first half of the population gets the first type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.domain.errors import SpecError

BUILTIN: tuple[tuple[str, str], ...] = (
    ("Amara Okafor", "A 34-year-old nurse from Lagos who believes kindness is usually repaid."),
    (
        "Bruno Keller",
        "A 51-year-old accountant from Zurich who counts every unit and trusts figures.",
    ),
    ("Chen Wei", "A 28-year-old engineer from Chengdu, careful, curious and slow to judge."),
    ("Dalia Haddad", "A 45-year-old shop owner from Beirut who bargains hard but keeps her word."),
    ("Emil Novak", "A 39-year-old truck driver from Brno who likes simple deals and plain talk."),
    ("Fatima Zahra", "A 23-year-old student from Fez who wants to be seen as fair by everyone."),
    ("Gustavo Lima", "A 60-year-old retired teacher from Recife who values community above gain."),
    ("Hana Sato", "A 31-year-old designer from Osaka, polite, reserved and quietly competitive."),
    (
        "Ivan Petrov",
        "A 47-year-old miner from Norilsk who has learned to look after himself first.",
    ),
    ("Jade Thompson", "A 26-year-old barista from Leeds who gives people a second chance."),
    (
        "Kwame Mensah",
        "A 42-year-old farmer from Kumasi who remembers who helped him and who did not.",
    ),
    ("Lucia Romano", "A 36-year-old lawyer from Naples who reads every agreement twice."),
    ("Mateo Ruiz", "A 29-year-old startup founder from Bogota who takes risks for big returns."),
    (
        "Nadia Karim",
        "A 54-year-old pharmacist from Dhaka, cautious with money and generous with time.",
    ),
    ("Oskar Lind", "A 33-year-old fisherman from Tromso who shares a good catch with neighbours."),
    (
        "Priya Nair",
        "A 40-year-old data analyst from Kochi who decides by evidence, not by feeling.",
    ),
    ("Quentin Moreau", "A 58-year-old wine seller from Lyon who enjoys winning a negotiation."),
    ("Rosa Mendes", "A 22-year-old nursing student from Porto who hates to let anyone down."),
    ("Samir Aziz", "A 49-year-old taxi driver from Cairo who trusts people until they cheat him."),
    ("Tanya Ivanova", "A 37-year-old chess coach from Kazan who thinks several moves ahead."),
    ("Umar Farouk", "A 44-year-old builder from Kano who values his reputation in the street."),
    ("Vera Holm", "A 63-year-old librarian from Uppsala, patient and principled."),
    ("Wen Li", "A 30-year-old trader from Shenzhen who looks for the best deal every time."),
    ("Yusuf Demir", "A 52-year-old baker from Izmir who gives credit to regular customers."),
    ("Zoe Martin", "A 27-year-old social worker from Montreal who sides with the underdog."),
)


# name, age, home town: the people of the ``repunet`` set (the reference had 20 fixed people)
PEOPLE: tuple[tuple[str, int, str], ...] = (
    ("Amara Okafor", 34, "Lagos"),
    ("Bruno Keller", 51, "Zurich"),
    ("Chen Wei", 28, "Chengdu"),
    ("Dalia Haddad", 45, "Beirut"),
    ("Emil Novak", 39, "Brno"),
    ("Fatima Zahra", 23, "Fez"),
    ("Gustavo Lima", 60, "Recife"),
    ("Hana Sato", 31, "Osaka"),
    ("Ivan Petrov", 47, "Norilsk"),
    ("Jade Thompson", 26, "Leeds"),
    ("Kwame Mensah", 42, "Kumasi"),
    ("Lucia Romano", 36, "Naples"),
    ("Mateo Ruiz", 29, "Bogota"),
    ("Nadia Karim", 54, "Dhaka"),
    ("Oskar Lind", 33, "Tromso"),
    ("Priya Nair", 40, "Kochi"),
    ("Quentin Moreau", 58, "Lyon"),
    ("Rosa Mendes", 22, "Porto"),
    ("Samir Aziz", 49, "Cairo"),
    ("Tanya Ivanova", 37, "Kazan"),
)

#: The reference's persona types per game, in our words: (type, text after "You are ...").
REPUNET_TYPES: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "pd": (
        (
            "altruistic",
            "altruistic and cooperative. You care about the people you deal with and would "
            "rather everyone does well than win alone; you help others even when it costs you "
            "a little.",
        ),
        (
            "rational",
            "rational and self-interested. You weigh every choice by what it earns you and act "
            "to maximise your own gain.",
        ),
    ),
    "signup": (
        (
            "communal",
            "a resident who cares about the neighbourhood. This summer is very hot and the power "
            "grid is strained; you are ready to give up some comfort for the community's good.",
        ),
        (
            "rational",
            "an extremely rational resident. This summer is very hot and your own comfort comes "
            "first; you agree to something only when it clearly pays for you.",
        ),
    ),
    "investment": (
        (
            "rational",
            "extremely rational. In every deal you aim to maximise your personal interests.",
        ),
        (
            "rational",
            "extremely rational. In every deal you aim to maximise your personal interests.",
        ),
    ),
}


def repunet_personas(n: int, game: str) -> list[dict[str, str]]:
    """The reference's design for ``game``: the first half of the population has the game's
    first type, the rest its second (numbered copies of the 20 people beyond 20)."""
    first, second = REPUNET_TYPES[game]
    out: list[dict[str, str]] = []
    for i in range(n):
        name, age, town = PEOPLE[i % len(PEOPLE)]
        if i >= len(PEOPLE):
            name = f"{name} {i // len(PEOPLE) + 1}"
        kind, text = first if i < (n + 1) // 2 else second
        persona = f"You are {age} and live in {town}. You are {text}"
        out.append({"name": name, "persona": persona, "type": kind})
    return out


def builtin_personas(n: int) -> list[dict[str, str]]:
    """The first ``n`` built-in personas (numbered copies beyond the set's size)."""
    out: list[dict[str, str]] = []
    for i in range(n):
        name, text = BUILTIN[i % len(BUILTIN)]
        if i >= len(BUILTIN):
            name = f"{name} {i // len(BUILTIN) + 1}"
        out.append({"name": name, "persona": text})
    return out


def validate_personas(items: Any, source: str = "personas") -> list[dict[str, str]]:
    if isinstance(items, dict) and "personas" in items:
        items = items["personas"]
    if not isinstance(items, list) or not items:
        raise SpecError(f"{source}: expected a list of {{name, persona}} entries")
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise SpecError(f"{source}[{i}]: expected an object with name and persona")
        name = " ".join(str(item.get("name", "")).split())
        persona = str(item.get("persona", "")).strip()
        kind = " ".join(str(item.get("type", "") or "").split())
        if not name or not persona:
            raise SpecError(f"{source}[{i}]: both name and persona are required")
        if "|" in name:
            raise SpecError(f"{source}[{i}]: a name may not contain '|'")
        if name.casefold() in seen:
            raise SpecError(f"{source}[{i}]: the name {name!r} is used twice")
        seen.add(name.casefold())
        out.append({"name": name, "persona": persona, **({"type": kind} if kind else {})})
    return out


def load_personas_file(path: str | Path) -> list[dict[str, str]]:
    """Personas from a YAML or JSON file (stored inline in the experiment for reproducibility)."""
    from simulator.engine.spec import read_data_file

    p = Path(path)
    if not p.exists():
        raise SpecError(f"persona file {p} does not exist")
    return validate_personas(read_data_file(p), source=str(p))


def personas_for(setting: Any, n: int, game: str = "investment") -> list[dict[str, str]]:
    if setting == "builtin" or setting is None:
        return builtin_personas(n)
    if setting == "repunet":
        return repunet_personas(n, game)
    return validate_personas(setting)[:n]


__all__ = [
    "BUILTIN",
    "REPUNET_TYPES",
    "builtin_personas",
    "load_personas_file",
    "personas_for",
    "repunet_personas",
    "validate_personas",
]
