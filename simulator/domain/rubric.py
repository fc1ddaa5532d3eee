"""Rubrics: the questions an LLM judge answers, with typed answers, written by the researcher.

A rubric is a YAML (or JSON) file beside the study (read by :mod:`simulator.annotations.rubric`)
or one of the experiment's named ``rubrics``; it is applied after the runs (its content is part of
the judge's version, so a changed rubric never mixes with answers to the old one). It lives in the
domain so that an experiment checks the rubrics it carries. See docs/annotations.md.

```yaml
rubric:
  name: persuasion
  version: 1
  instructions: You code transcripts of a role-play ...   # the judge's system prompt
  questions:
    - id: goal_achieved
      ask: Did the prisoner reach the goal ({goal})?
      answer: yes_no_not_tried
    - id: goal_third
      ask: In which third of the conversation was the goal reached?
      answer: third
      when: {goal_achieved: "yes"}
```

Answer types: ``yes_no``, ``yes_no_not_tried``, ``third`` (1, 2 or 3: which third of the
dialogue), ``turn`` (a turn number of the transcript), ``likert`` (1..``scale``), ``category``
(one of ``choices``), ``number`` (optional ``min``/``max``, ``integer``), ``text``.
Questions are asked per ``conversation`` (default) or per ``message``. ``when`` asks a question
only if earlier answers have the given values; otherwise its answer is null (not applicable).
Braces in ``ask`` and ``instructions`` name a study factor of the conversation (``{goal}``) or a
built-in: ``{agents}``, ``{roles}``, ``{experiment}``, ``{turns}``.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.domain.annotations import digest
from simulator.domain.errors import AnnotationError

YES_NO = ("yes", "no")
YES_NO_NOT_TRIED = ("yes", "no", "not_tried")
ANSWER_TYPES = (
    "yes_no",
    "yes_no_not_tried",
    "third",
    "turn",
    "likert",
    "category",
    "number",
    "text",
)
SCOPES = ("conversation", "message")
BUILT_INS = ("agents", "roles", "experiment", "turns")
RUBRIC_KEYS = (
    "name",
    "version",
    "description",
    "instructions",
    "questions",
    "show",
    "messages",
    "rationale",
)
QUESTION_KEYS = (
    "id",
    "ask",
    "answer",
    "scope",
    "when",
    "scale",
    "labels",
    "choices",
    "min",
    "max",
    "integer",
    "max_length",
)
MESSAGE_KINDS = ("kickoff", "utterance", "summary", "action", "system")
_ID = re.compile(r"[a-z][a-z0-9_]{0,39}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,59}")


class RubricError(AnnotationError):
    """A rubric file that cannot be used; the message names the file and the field."""

    title = "Invalid rubric"


@dataclass(frozen=True)
class Question:
    id: str
    ask: str
    answer: str
    scope: str = "conversation"
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    scale: int | None = None
    labels: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    integer: bool = False
    max_length: int | None = None

    # ------------------------------------------------------------------ what is asked

    def schema(self, turns: int) -> dict[str, Any]:
        """The JSON schema of this question's answer (nullable when it has a condition)."""
        kind = self.answer
        out: dict[str, Any]
        if kind == "yes_no":
            out = {"type": "string", "enum": list(YES_NO)}
        elif kind == "yes_no_not_tried":
            out = {"type": "string", "enum": list(YES_NO_NOT_TRIED)}
        elif kind == "third":
            out = {"type": "integer", "minimum": 1, "maximum": 3}
        elif kind == "turn":
            out = {"type": "integer", "minimum": 1, "maximum": max(1, turns)}
        elif kind == "likert":
            out = {"type": "integer", "minimum": 1, "maximum": int(self.scale or 5)}
        elif kind == "category":
            out = {"type": "string", "enum": list(self.choices)}
        elif kind == "number":
            out = {"type": "integer" if self.integer else "number"}
            if self.min is not None:
                out["minimum"] = self.min
            if self.max is not None:
                out["maximum"] = self.max
        else:
            out = {"type": "string"}
            if self.max_length is not None:
                out["maxLength"] = self.max_length
        out["description"] = self.ask
        if self.when:
            return {"anyOf": [out, {"type": "null"}], "description": self.ask}
        return out

    def how_to_answer(self, turns: int) -> str:
        """The answer format in words, for the prompt."""
        kind = self.answer
        if kind == "yes_no":
            text = 'answer "yes" or "no"'
        elif kind == "yes_no_not_tried":
            text = 'answer "yes", "no" or "not_tried" (no attempt was made)'
        elif kind == "third":
            text = "answer 1, 2 or 3: " + "; ".join(
                f"{i} = turns {lo}-{hi}" for i, (lo, hi) in enumerate(thirds(turns), start=1)
            )
        elif kind == "turn":
            text = f"answer a turn number from 1 to {max(1, turns)}"
        elif kind == "likert":
            scale = int(self.scale or 5)
            text = f"answer a whole number from 1 to {scale}"
            if self.labels:
                text += " (" + ", ".join(f"{i} = {lab}" for i, lab in enumerate(self.labels, 1))
                text += ")"
        elif kind == "category":
            text = "answer one of: " + ", ".join(f'"{c}"' for c in self.choices)
        elif kind == "number":
            text = "answer a whole number" if self.integer else "answer a number"
            if self.min is not None and self.max is not None:
                text += f" from {_num(self.min)} to {_num(self.max)}"
            elif self.min is not None:
                text += f" of at least {_num(self.min)}"
            elif self.max is not None:
                text += f" of at most {_num(self.max)}"
        else:
            text = "answer in free text"
            if self.max_length is not None:
                text += f" of at most {self.max_length} characters"
        if self.when:
            cond = " and ".join(
                f"{q} is " + " or ".join(_show(v) for v in values)
                for q, values in self.when.items()
            )
            text += f"; only if {cond}, otherwise null"
        return text

    # ------------------------------------------------------------------ what comes back

    def applies(self, answers: Mapping[str, Any]) -> bool:
        """Whether the question's condition holds for these (valid) answers."""
        return all(answers.get(q) in values for q, values in self.when.items())

    def validate(self, value: Any, turns: int) -> Any:
        """The answer in its canonical form; ValueError saying what is wrong."""
        kind = self.answer
        if value is None:
            raise ValueError("is missing (null)")
        if kind in ("yes_no", "yes_no_not_tried", "category"):
            options = (
                YES_NO
                if kind == "yes_no"
                else YES_NO_NOT_TRIED
                if kind == "yes_no_not_tried"
                else self.choices
            )
            if isinstance(value, bool) and kind != "category":
                value = "yes" if value else "no"
            if not isinstance(value, str):
                raise ValueError(f"must be one of {', '.join(options)}, not {value!r}")
            found = _match(value, options)
            if found is None:
                raise ValueError(f"must be one of {', '.join(options)}, not {value!r}")
            return found
        if kind in ("third", "turn", "likert"):
            top = {"third": 3, "turn": max(1, turns), "likert": int(self.scale or 5)}[kind]
            whole = _whole(value)
            if whole is None or not 1 <= whole <= top:
                raise ValueError(f"must be a whole number from 1 to {top}, not {value!r}")
            return whole
        if kind == "number":
            number = _number(value)
            if number is None:
                raise ValueError(f"must be a number, not {value!r}")
            if self.integer:
                whole = _whole(number)
                if whole is None:
                    raise ValueError(f"must be a whole number, not {value!r}")
                number = whole
            if self.min is not None and number < self.min:
                raise ValueError(f"must be at least {_num(self.min)}, not {value!r}")
            if self.max is not None and number > self.max:
                raise ValueError(f"must be at most {_num(self.max)}, not {value!r}")
            return number
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"must be a non-empty text, not {value!r}")
        if self.max_length is not None and len(value) > self.max_length:
            raise ValueError(f"must be at most {self.max_length} characters")
        return value.strip()


@dataclass(frozen=True)
class Rubric:
    name: str
    version: str
    instructions: str
    questions: tuple[Question, ...]
    description: str = ""
    show: tuple[str, ...] = ("kickoff", "utterance", "action")
    roles: tuple[str, ...] = ()  # per-message questions: messages of these roles (empty: all)
    kinds: tuple[str, ...] = ("utterance",)  # per-message questions: messages of these kinds
    rationale: bool = False
    source: str = ""

    def scoped(self, scope: str) -> list[Question]:
        return [q for q in self.questions if q.scope == scope]

    @property
    def digest(self) -> str:
        """Changes whenever anything the judge is asked changes."""
        return digest(
            self.name,
            self.instructions,
            [q.__dict__ for q in self.questions],
            self.show,
            self.roles,
            self.kinds,
            self.rationale,
        )

    def placeholders(self) -> set[str]:
        names: set[str] = set()
        for text in [self.instructions, *(q.ask for q in self.questions)]:
            names.update(placeholders_in(text))
        return names

    def check_placeholders(self, factors: list[str], experiment: str) -> None:
        """Every placeholder is a built-in or a factor of the experiment (case-insensitive)."""
        known = {f.casefold() for f in factors} | set(BUILT_INS)
        unknown = sorted(p for p in self.placeholders() if p.casefold() not in known)
        if unknown:
            choices = ", ".join([*factors, *BUILT_INS])
            raise RubricError(
                f"{self.source or 'rubric'}: {{{unknown[0]}}} is neither a study factor of "
                f"experiment {experiment!r} nor a built-in (known: {choices})"
            )


def placeholders_in(text: str) -> list[str]:
    out = []
    for _, name, _, _ in string.Formatter().parse(text):
        if name is not None and name != "":
            out.append(name)
    return out


def fill(text: str, values: Mapping[str, str]) -> str:
    """``text`` with ``{name}`` replaced (case-insensitive names; unknown ones stay as written)."""
    lowered = {k.casefold(): v for k, v in values.items()}

    def one(match: re.Match[str]) -> str:
        return lowered.get(match.group(1).casefold(), match.group(0))

    return re.sub(r"\{([^{}]+)\}", one, text)


def thirds(turns: int) -> list[tuple[int, int]]:
    """Turn ranges of the three thirds of a dialogue of ``turns`` turns (1-based, inclusive;
    a third of a very short dialogue may be empty: then lo > hi)."""
    turns = max(0, turns)
    bounds = [0, math.ceil(turns / 3), math.ceil(2 * turns / 3), turns]
    return [(bounds[i] + 1, bounds[i + 1]) for i in range(3)]


def third_of(turn: int, turns: int) -> int:
    for i, (lo, hi) in enumerate(thirds(turns), start=1):
        if lo <= turn <= hi:
            return i
    return 3


# --------------------------------------------------------------------------- loading


def parse_rubric(data: Any, *, source: str = "rubric") -> Rubric:
    problems: list[str] = []
    if isinstance(data, Mapping) and "rubric" in data:
        extra = [k for k in data if k not in ("rubric", "format", "format_version")]
        problems += [f"{k}: unknown field; a rubric file has rubric: (and format:)" for k in extra]
        data = data["rubric"]
    if not isinstance(data, Mapping):
        raise RubricError(f"{source}: must be a mapping with name, instructions and questions")
    problems += [
        f"{k}: unknown field; expected one of {', '.join(RUBRIC_KEYS)}"
        for k in data
        if k not in RUBRIC_KEYS
    ]
    name = str(data.get("name") or "").strip()
    if not _NAME.fullmatch(name):
        problems.append(
            "name: required; letters, digits, '_', '.' or '-' (it names the annotator: "
            "judge:<name>)"
        )
    version = str(data.get("version", 1)).strip() or "1"
    instructions = str(data.get("instructions") or "").strip()
    if not instructions:
        problems.append("instructions: required (the judge's instructions, its system prompt)")
    show = _kinds(data.get("show", ["kickoff", "utterance", "action"]), "show", problems)
    roles: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ("utterance",)
    selection = data.get("messages")
    if selection is not None:
        if not isinstance(selection, Mapping):
            problems.append("messages: must be a mapping with roles and/or kinds")
        else:
            for key in selection:
                if key not in ("roles", "kinds"):
                    problems.append(f"messages.{key}: unknown field; expected roles or kinds")
            raw_roles = selection.get("roles") or []
            if not isinstance(raw_roles, list) or not all(isinstance(r, str) for r in raw_roles):
                problems.append("messages.roles: must be a list of role names")
            else:
                roles = tuple(r.strip() for r in raw_roles if r.strip())
            if "kinds" in selection:
                kinds = _kinds(selection["kinds"], "messages.kinds", problems)
    rationale = data.get("rationale", False)
    if not isinstance(rationale, bool):
        problems.append("rationale: must be true or false")
        rationale = False
    questions: list[Question] = []
    raw_questions = data.get("questions")
    if not isinstance(raw_questions, list) or not raw_questions:
        problems.append("questions: required, a list of questions")
        raw_questions = []
    for i, raw in enumerate(raw_questions):
        q = _question(raw, f"questions.{i}", questions, problems)
        if q is not None:
            questions.append(q)
    if problems:
        listed = "\n".join(f"  {p}" for p in problems)
        raise RubricError(f"{source} has {len(problems)} problem(s):\n{listed}")
    return Rubric(
        name=name,
        version=version,
        instructions=instructions,
        questions=tuple(questions),
        description=str(data.get("description") or "").strip(),
        show=show,
        roles=roles,
        kinds=kinds,
        rationale=rationale,
        source=source,
    )


def _kinds(value: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        problems.append(f"{where}: must be a list of message kinds ({', '.join(MESSAGE_KINDS)})")
        return ()
    bad = [k for k in value if k not in MESSAGE_KINDS]
    if bad:
        problems.append(
            f"{where}: {bad[0]!r} is not a message kind (choose from {', '.join(MESSAGE_KINDS)})"
        )
    return tuple(k for k in value if k in MESSAGE_KINDS)


def _question(
    raw: Any, where: str, earlier: list[Question], problems: list[str]
) -> Question | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a mapping with id, ask and answer")
        return None
    before = len(problems)
    problems += [
        f"{where}.{k}: unknown field; expected one of {', '.join(QUESTION_KEYS)}"
        for k in raw
        if k not in QUESTION_KEYS
    ]
    qid = str(raw.get("id") or "").strip()
    if not _ID.fullmatch(qid):
        problems.append(
            f"{where}.id: required; lower-case letters, digits and _ (a column name), "
            "starting with a letter"
        )
    elif qid in {q.id for q in earlier}:
        problems.append(f"{where}.id: {qid!r} is used by an earlier question")
    ask = str(raw.get("ask") or "").strip()
    if not ask:
        problems.append(f"{where}.ask: required (the question, in words)")
    answer = str(raw.get("answer") or "").strip()
    if answer not in ANSWER_TYPES:
        problems.append(f"{where}.answer: must be one of {', '.join(ANSWER_TYPES)}")
    scope = str(raw.get("scope", "conversation")).strip()
    if scope not in SCOPES:
        problems.append(f"{where}.scope: must be conversation or message")
    scale = raw.get("scale")
    labels: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    if answer == "likert":
        if scale is None:
            scale = 5
        if isinstance(scale, bool) or not isinstance(scale, int) or not 2 <= scale <= 11:
            problems.append(f"{where}.scale: a whole number from 2 to 11 (the points of the scale)")
            scale = 5
        raw_labels = raw.get("labels") or []
        if not isinstance(raw_labels, list) or (raw_labels and len(raw_labels) != scale):
            problems.append(f"{where}.labels: a list of {scale} labels, one per point")
        else:
            labels = tuple(str(x) for x in raw_labels)
    elif scale is not None or raw.get("labels") is not None:
        problems.append(f"{where}: scale and labels belong to likert questions")
    if answer == "category":
        raw_choices = raw.get("choices")
        if not isinstance(raw_choices, list) or len(raw_choices) < 2:
            problems.append(f"{where}.choices: a list of at least two categories")
        else:
            choices = tuple(str(c).strip() for c in raw_choices)
            if len({c.casefold() for c in choices}) != len(choices) or not all(choices):
                problems.append(f"{where}.choices: categories must be distinct and non-empty")
    elif raw.get("choices") is not None:
        problems.append(f"{where}.choices: only category questions have choices")
    bounds: dict[str, float | None] = {"min": None, "max": None}
    for key in ("min", "max"):
        if raw.get(key) is not None:
            if answer != "number":
                problems.append(f"{where}.{key}: only number questions have bounds")
            elif isinstance(raw[key], bool) or not isinstance(raw[key], int | float):
                problems.append(f"{where}.{key}: must be a number")
            else:
                bounds[key] = float(raw[key])
    if bounds["min"] is not None and bounds["max"] is not None and bounds["min"] > bounds["max"]:
        problems.append(f"{where}: min is above max")
    integer = raw.get("integer", False)
    if not isinstance(integer, bool):
        problems.append(f"{where}.integer: must be true or false")
        integer = False
    max_length = raw.get("max_length")
    if max_length is not None and (
        isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1
    ):
        problems.append(f"{where}.max_length: a positive whole number")
        max_length = None
    when: dict[str, tuple[Any, ...]] = {}
    raw_when = raw.get("when")
    if raw_when is not None:
        if not isinstance(raw_when, Mapping) or not raw_when:
            problems.append(f"{where}.when: a mapping of earlier question ids to answers")
        else:
            known = {q.id: q for q in earlier}
            for other, values in raw_when.items():
                ref = known.get(str(other))
                if ref is None:
                    problems.append(
                        f"{where}.when.{other}: not an earlier question (conditions may only "
                        "name questions listed before this one)"
                    )
                    continue
                if ref.scope != scope:
                    problems.append(f"{where}.when.{other}: must have the same scope")
                listed = values if isinstance(values, list) else [values]
                canonical = []
                for v in listed:
                    try:
                        canonical.append(ref.validate(v, turns=10**6))
                    except ValueError as exc:
                        problems.append(f"{where}.when.{other}: {v!r} {exc}")
                when[str(other)] = tuple(canonical)
    if len(problems) > before:
        return None
    return Question(
        id=qid,
        ask=ask,
        answer=answer,
        scope=scope,
        when=when,
        scale=int(scale) if answer == "likert" and scale is not None else None,
        labels=labels,
        choices=choices,
        min=bounds["min"],
        max=bounds["max"],
        integer=bool(integer),
        max_length=max_length,
    )


# --------------------------------------------------------------------------- helpers


def _match(value: str, options: tuple[str, ...]) -> str | None:
    key = re.sub(r"[\s\-]+", "_", value.strip().casefold()).strip("_\"'.")
    for option in options:
        if key == re.sub(r"[\s\-]+", "_", option.casefold()):
            return option
    return None


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        if not math.isfinite(number):
            return None
        return int(number) if number.is_integer() and "." not in value else number
    return None


def _whole(value: Any) -> int | None:
    number = _number(value)
    if number is None or float(number) != int(number):
        return None
    return int(number)


def _num(x: float) -> str:
    return f"{x:g}"


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


__all__ = [
    "ANSWER_TYPES",
    "Question",
    "Rubric",
    "RubricError",
    "fill",
    "parse_rubric",
    "third_of",
    "thirds",
]
