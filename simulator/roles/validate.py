"""Validation of every placeholder of an experiment, before anything runs.

Each problem becomes a ``PlaceholderIssue`` naming the section, the line and column, the tag,
what was expected and the closest valid tag. The experiment service refuses to save an experiment
with issues (``SpecError`` listing them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from simulator.domain.models import Experiment, Section
from simulator.roles import grammar
from simulator.roles.grammar import TagError


@dataclass(frozen=True)
class PlaceholderIssue:
    section: str  # a human label: "starting message", "Guard section 'Goal'", ...
    role: str | None  # the role whose section it is (None for shared/summarizer/starting message)
    position: int  # character offset in the text
    line: int  # 1-based
    column: int  # 1-based
    tag: str
    message: str
    suggestion: str | None = None

    def __str__(self) -> str:
        hint = f" Did you mean {self.suggestion}?" if self.suggestion else ""
        return (
            f"{self.section}, line {self.line}, column {self.column}: {self.tag}: "
            f"{self.message}.{hint}"
        )


def line_column(text: str, position: int) -> tuple[int, int]:
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return line, column


def validate_text(
    text: str,
    *,
    section: str,
    roles: Iterable[str],
    factors: Iterable[str] = (),
    role: str | None = None,
    allow_name: bool = True,
) -> list[PlaceholderIssue]:
    """Every problem with the placeholders of one text."""
    roles, factors = list(roles), list(factors)
    issues: list[PlaceholderIssue] = []
    for tok in grammar.scan(text):
        if not tok.is_tag and tok.problem is None:
            continue
        message, suggestion = tok.problem, None
        if message is not None:
            body = tok.text[1:].rstrip(">").strip()
            suggestion = (
                grammar.closest_tag(body, roles, factors, allow_name=allow_name) if body else None
            )
        else:
            try:
                grammar.parse_tag(tok.body, roles, factors, allow_name=allow_name)
                continue
            except TagError as exc:
                message, suggestion = str(exc), exc.suggestion
        line, column = line_column(text, tok.start)
        issues.append(
            PlaceholderIssue(
                section=section,
                role=role,
                position=tok.start,
                line=line,
                column=column,
                tag=tok.text,
                message=message.rstrip("."),
                suggestion=suggestion,
            )
        )
    return issues


def _label(kind: str, sec: Section, index: int) -> str:
    title = sec.title.strip()
    return f"{kind} section {title!r}" if title else f"{kind} section #{index + 1}"


def _section_issues(
    sec: Section, label: str, role: str | None, roles: list[str], factors: list[str], name: bool
) -> list[PlaceholderIssue]:
    kw = {"roles": roles, "factors": factors, "role": role, "allow_name": name}
    issues = validate_text(sec.title, section=f"title of {label}", **kw)  # type: ignore[arg-type]
    issues += validate_text(sec.content, section=label, **kw)  # type: ignore[arg-type]
    for level, text in sec.variants.items():
        issues += validate_text(text, section=f"{label} (level {level!r})", **kw)  # type: ignore[arg-type]
    return issues


def validate_experiment(experiment: Experiment) -> list[PlaceholderIssue]:
    """Every placeholder problem in the sections, the starting message and the summarizer."""
    roles = [r.name for r in experiment.roles]
    factors = [f.name for f in experiment.factors]
    issues = validate_text(
        experiment.starting_message,
        section="starting message",
        roles=roles,
        factors=factors,
        allow_name=False,
    )
    for i, sec in enumerate(experiment.shared_sections):
        issues += _section_issues(sec, _label("shared", sec, i), None, roles, factors, True)
    for role in experiment.roles:
        for i, sec in enumerate(role.sections):
            issues += _section_issues(
                sec, _label(role.name, sec, i), role.name, roles, factors, True
            )
    for i, sec in enumerate(experiment.summarizer_sections):
        issues += _section_issues(sec, _label("summarizer", sec, i), None, roles, factors, False)
    return issues
