"""The experiment editor's working copy: plain data the screens edit, turned into an ``Experiment``
only when previewing or saving.

An ``Experiment`` refuses to exist half-made (no roles, a factor without levels), yet an editor must
hold exactly that while the user types. ``Draft`` keeps the pieces (each still a validated domain
object: Role, Section, ModelRef) and ``to_experiment()`` reports what is missing in words a user can
act on. No Textual here: this is tested without a terminal.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from simulator.domain.errors import SpecError
from simulator.domain.models import (
    Experiment,
    ExperimentKind,
    ModelRef,
    Role,
    Section,
    SectionKind,
    StudyFactor,
)

NEW_ROLE_DEFAULT_SECTIONS = ("Goal", "Personality")


def format_factors(factors: list[StudyFactor]) -> str:
    """One line per factor: ``goal = Escape | Yard Time`` (levels may contain commas)."""
    return "\n".join(f"{f.name} = {' | '.join(f.levels)}" for f in factors)


def parse_factors(text: str) -> list[StudyFactor]:
    """The inverse of ``format_factors``; SpecError naming the line when a line is malformed."""
    factors: list[StudyFactor] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if "=" not in line:
            raise SpecError(
                f"study factors, line {number}: write 'name = level | level' "
                f"(for example 'goal = Escape | Yard Time'), got {line!r}"
            )
        name, _, levels = line.partition("=")
        try:
            factors.append(
                StudyFactor(name=name.strip(), levels=[lv.strip() for lv in levels.split("|")])
            )
        except ValidationError as exc:
            raise SpecError(f"study factors, line {number}: {_first_error(exc)}") from None
    names = [f.name.casefold() for f in factors]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"study factors: {', '.join(dupes)} defined twice")
    return factors


def _with_kind(sections: list[Section], kind: SectionKind) -> list[Section]:
    return [s if s.kind is kind else s.model_copy(update={"kind": kind}) for s in sections]


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    msg = str(err.get("msg", exc))
    return msg.removeprefix("Value error, ")


def describe_validation_error(exc: ValidationError) -> str:
    """A pydantic error as short sentences (``field: problem``), no URLs, no input dumps."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


@dataclass
class Draft:
    """What the editor edits. ``base`` is the stored experiment (None for a new one)."""

    base: Experiment | None = None
    name: str = "New experiment"
    kind: ExperimentKind = ExperimentKind.dialogue
    starting_message: str = "Start the experiment."
    note: str = ""
    factors_text: str = ""
    roles: list[Role] = field(default_factory=list)
    shared: list[Section] = field(default_factory=list)
    summarizer: list[Section] = field(default_factory=list)
    models: list[ModelRef] = field(default_factory=lambda: [ModelRef()])
    # Game parameters per kind, so trying another kind and coming back loses nothing; and what
    # the Game tab could not parse, per kind (field name -> problem), which blocks saving.
    games: dict[ExperimentKind, dict[str, Any]] = field(default_factory=dict)
    problems_by_kind: dict[ExperimentKind, dict[str, str]] = field(default_factory=dict)
    # A value the Models tab's form shows but the model refused (not applied): blocks saving.
    model_problem: str = ""

    @property
    def game(self) -> dict[str, Any]:
        """The game parameters of the current kind (the Game tab edits this dict in place)."""
        return self.games.setdefault(self.kind, {})

    @property
    def game_problems(self) -> dict[str, str]:
        return self.problems_by_kind.setdefault(self.kind, {})

    # ------------------------------------------------------------------ conversion

    @classmethod
    def from_experiment(cls, exp: Experiment) -> Draft:
        copy = exp.model_copy(deep=True)
        # Where a section sits decides who sees it; make its ``kind`` say the same.
        copy.shared_sections = _with_kind(copy.shared_sections, SectionKind.shared)
        copy.summarizer_sections = _with_kind(copy.summarizer_sections, SectionKind.summarizer)
        for i, role in enumerate(copy.roles):
            copy.roles[i] = role.model_copy(
                update={"sections": _with_kind(role.sections, SectionKind.private)}
            )
        return cls(
            base=copy,
            name=copy.name,
            kind=copy.kind,
            starting_message=copy.starting_message,
            note=copy.note,
            factors_text=format_factors(copy.factors),
            roles=list(copy.roles),
            shared=list(copy.shared_sections),
            summarizer=list(copy.summarizer_sections),
            models=list(copy.models),
            games={copy.kind: dict(copy.game)},
        )

    @classmethod
    def new(cls) -> Draft:
        """A new experiment: two roles to start from, a shared and a summarizer section."""
        d = cls()
        d.add_section(SectionKind.shared, title="Environment")
        d.add_role("Role A")
        d.add_role("Role B")
        d.add_section(SectionKind.summarizer, title="")
        return d

    def factors(self) -> list[StudyFactor]:
        return parse_factors(self.factors_text)

    def to_experiment(self) -> Experiment:
        """The experiment as it would be saved; SpecError saying what is wrong otherwise."""
        factors = self.factors()
        data = self.base.model_dump() if self.base is not None else {}
        data.update(
            name=self.name,
            kind=self.kind,
            starting_message=self.starting_message,
            note=self.note,
            factors=factors,
            roles=[r.model_copy(deep=True) for r in self.roles],
            shared_sections=[s.model_copy(deep=True) for s in self.shared],
            summarizer_sections=[s.model_copy(deep=True) for s in self.summarizer],
            models=[m.model_copy(deep=True) for m in self.models],
            game=deepcopy(self.games.get(self.kind, {})),
        )
        first = data.get("dialogue", {}).get("first_role") if data.get("dialogue") else None
        if first is not None and first not in [r.name for r in self.roles]:
            data["dialogue"] = {**data["dialogue"], "first_role": None}
        try:
            return Experiment.model_validate(data)
        except ValidationError as exc:
            raise SpecError(describe_validation_error(exc)) from None

    # ------------------------------------------------------------------ roles

    def role_names(self) -> list[str]:
        return [r.name for r in self.roles]

    def add_role(self, name: str) -> Role:
        """A new role; it gets empty private sections with the first role's titles."""
        if name.strip().casefold() in [n.casefold() for n in self.role_names()]:
            raise SpecError(f"There is already a role named {name.strip()!r}.")
        try:
            role = Role(name=name)
        except ValidationError as exc:
            raise SpecError(_first_error(exc)) from None
        titles = (
            [s.title for s in self.roles[0].sections]
            if self.roles
            else list(NEW_ROLE_DEFAULT_SECTIONS)
        )
        self.roles.append(role)
        for title in titles:
            self.add_section(SectionKind.private, title=title, role=role.name)
        return role

    def rename_role(self, index: int, new_name: str) -> str:
        old = self.roles[index].name
        others = [n.casefold() for i, n in enumerate(self.role_names()) if i != index]
        if new_name.strip().casefold() in others:
            raise SpecError(f"There is already a role named {new_name.strip()!r}.")
        try:
            self.roles[index] = self.roles[index].model_copy(
                update={"name": Role(name=new_name).name}
            )
        except ValidationError as exc:
            raise SpecError(_first_error(exc)) from None
        return old

    def remove_role(self, index: int) -> Role:
        return self.roles.pop(index)

    def move_role(self, index: int, delta: int) -> int:
        target = index + delta
        if not 0 <= target < len(self.roles):
            return index
        self.roles[index], self.roles[target] = self.roles[target], self.roles[index]
        return target

    # ------------------------------------------------------------------ sections

    def agent_sections(self) -> list[tuple[Section, str | None]]:
        """Shared and private sections in the order agents see them, with the owning role."""
        items: list[tuple[Section, str | None]] = [(s, None) for s in self.shared]
        for role in self.roles:
            items += [(s, role.name) for s in role.sections]
        return sorted(items, key=lambda it: it[0].position)

    def all_sections(self) -> list[tuple[Section, str | None]]:
        """Every section as the editor lists it: agent sections, then the summarizer's."""
        summ = sorted(self.summarizer, key=lambda s: s.position)
        return self.agent_sections() + [(s, None) for s in summ]

    def find_section(self, section_id: str) -> tuple[Section, str | None]:
        for sec, role in self.all_sections():
            if sec.id == section_id:
                return sec, role
        raise KeyError(section_id)

    def _container(self, kind: SectionKind, role: str | None) -> list[Section]:
        if kind is SectionKind.shared:
            return self.shared
        if kind is SectionKind.summarizer:
            return self.summarizer
        for r in self.roles:
            if r.name == role:
                return r.sections
        raise SpecError(f"A private section needs a role; there is no role {role!r}.")

    def add_section(
        self, kind: SectionKind, *, title: str = "", role: str | None = None, content: str = ""
    ) -> Section:
        container = self._container(kind, role)
        pool = (
            self.summarizer
            if kind is SectionKind.summarizer
            else [s for s, _ in self.agent_sections()]
        )
        position = max((s.position for s in pool), default=-1) + 1
        sec = Section(title=title, content=content, kind=kind, position=position)
        container.append(sec)
        return sec

    def remove_section(self, section_id: str) -> None:
        sec, role = self.find_section(section_id)
        self._container(sec.kind, role).remove(sec)

    def update_section(self, section_id: str, **fields: object) -> Section:
        """Replace the section with a copy carrying ``fields`` (kind/role changes move it)."""
        sec, role = self.find_section(section_id)
        new_kind = SectionKind(fields.pop("kind", sec.kind))  # type: ignore[arg-type]
        new_role = fields.pop("role", role)
        if new_kind is not SectionKind.private:
            new_role = None
        elif new_role is None:
            if not self.roles:
                raise SpecError("Add a role before making a section private.")
            new_role = self.roles[0].name
        old_container = self._container(sec.kind, role)
        index = old_container.index(sec)
        updated = sec.model_copy(update={**fields, "kind": new_kind})
        if new_kind is sec.kind and new_role == role:
            old_container[index] = updated
            return updated
        old_container.pop(index)
        if (new_kind is SectionKind.summarizer) != (sec.kind is SectionKind.summarizer):
            pool = (
                self.summarizer
                if new_kind is SectionKind.summarizer
                else [s for s, _ in self.agent_sections()]
            )
            updated = updated.model_copy(
                update={"position": max((s.position for s in pool), default=-1) + 1}
            )
        self._container(new_kind, new_role).append(updated)  # type: ignore[arg-type]
        return updated

    def move_section(self, section_id: str, delta: int) -> None:
        """Move a section up or down in its list (agent sections, or the summarizer's)."""
        sec, _ = self.find_section(section_id)
        if sec.kind is SectionKind.summarizer:
            ordered = sorted(self.summarizer, key=lambda s: s.position)
        else:
            ordered = [s for s, _ in self.agent_sections()]
        index = next(i for i, s in enumerate(ordered) if s.id == section_id)
        target = index + delta
        if not 0 <= target < len(ordered):
            return
        ordered[index], ordered[target] = ordered[target], ordered[index]
        new_positions = {s.id: i for i, s in enumerate(ordered)}
        self._renumber(new_positions)

    def _renumber(self, positions: dict[str, int]) -> None:
        def fix(items: list[Section]) -> list[Section]:
            return [
                s.model_copy(update={"position": positions[s.id]}) if s.id in positions else s
                for s in items
            ]

        self.shared = fix(self.shared)
        self.summarizer = fix(self.summarizer)
        for i, role in enumerate(self.roles):
            self.roles[i] = role.model_copy(update={"sections": fix(role.sections)})
