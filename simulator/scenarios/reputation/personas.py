"""Personas of a reputation population: a built-in set, or a list imported from a file.

A file is YAML or JSON: a list of ``{name, persona}`` objects (or ``{"personas": [...]}``).
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
        if not name or not persona:
            raise SpecError(f"{source}[{i}]: both name and persona are required")
        if "|" in name:
            raise SpecError(f"{source}[{i}]: a name may not contain '|'")
        if name.casefold() in seen:
            raise SpecError(f"{source}[{i}]: the name {name!r} is used twice")
        seen.add(name.casefold())
        out.append({"name": name, "persona": persona})
    return out


def load_personas_file(path: str | Path) -> list[dict[str, str]]:
    """Personas from a YAML or JSON file (stored inline in the experiment for reproducibility)."""
    from simulator.engine.spec import read_data_file

    p = Path(path)
    if not p.exists():
        raise SpecError(f"persona file {p} does not exist")
    return validate_personas(read_data_file(p), source=str(p))


def personas_for(setting: Any, n: int) -> list[dict[str, str]]:
    if setting == "builtin" or setting is None:
        return builtin_personas(n)
    return validate_personas(setting)[:n]


__all__ = ["BUILTIN", "builtin_personas", "load_personas_file", "personas_for", "validate_personas"]
