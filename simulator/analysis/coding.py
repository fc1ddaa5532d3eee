"""Human coding: sheets from a rubric, coders' answers read back and checked, agreement, and the
agreed labels stored as annotations of the ``human:<rubric>`` annotator.

The rubric is the one an LLM judge answers (``simulator annotate judge --rubric``): the same
questions, answer types and conditions. A **coding sheet** (CSV, or XLSX with the allowed answers
as drop-down lists) has one row per item the judge would be asked about (a conversation, or a
message for message questions), what the judge is shown (``instructions``: the rubric's
instructions for that conversation; ``shown``: the participants, the numbered transcript and the
questions with their answer formats) and an empty column per question. The sheet does not show
the study factors unless the rubric names them: coders are as blind as the judge.

Reading a coder's sheet checks every answer against its question's type (and range, choices,
condition); a problem is reported with the file, the row (as a spreadsheet numbers it: the header
is row 1) and the column. Agreement is per question: Cohen's kappa (two coders; weighted for
ordered answers on request) and Krippendorff's alpha (any number of coders, missing answers
allowed, at the question's level of measurement), with the list of disagreements. The resolved
labels (every coder agrees, a strict majority, or an adjudicator settles disagreements) are
stored as annotations like any other: they export, join and widen with the judge's answers.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.analysis.agreement import (
    LEVELS,
    WEIGHTS,
    cohen_kappa,
    krippendorff_alpha,
    percent_agreement,
)
from simulator.analysis.loading import FLOAT, INT, STRING, typed
from simulator.annotations.base import digest
from simulator.domain import Conversation, Message, ModelRef, Provider
from simulator.domain.annotations import Annotation, AnnotatorEntry, Target
from simulator.domain.errors import SimulatorError
from simulator.domain.rubric import Question, Rubric

KIND = "human"
#: The columns of a sheet before the answer columns; ``comment`` follows them.
SHEET_COLUMNS = (
    "item",
    "conversation_id",
    "seq",
    "conversation_number",
    "experiment",
    "rubric",
    "turns",
    "instructions",
    "shown",
)
COMMENT = "comment"
#: Excel's limit of characters in one cell; longer texts continue in ``<column> (2)``, ...
XLSX_CELL_LIMIT = 32_767
SHEET_FORMATS = (".csv", ".xlsx")
RESOLUTIONS = ("unanimous", "majority", "adjudicator")
#: Answer type -> the default level of measurement of its agreement.
DEFAULT_LEVELS = {
    "yes_no": "nominal",
    "yes_no_not_tried": "nominal",
    "category": "nominal",
    "third": "ordinal",
    "likert": "ordinal",
    "turn": "interval",
    "number": "interval",
}
MAX_PROBLEMS = 20


class CodingError(SimulatorError):
    """A coding sheet or a coding option that cannot be used (names the file, row and column)."""

    title = "Coding sheet"


def annotator_name(rubric: Rubric) -> str:
    return f"{KIND}:{rubric.name}"


def rubric_tag(rubric: Rubric) -> str:
    """What a sheet's ``rubric`` column holds: the rubric's name, version and digest."""
    return f"{rubric.name} {rubric.version} ({rubric.digest})"


# --------------------------------------------------------------------------- the sheet


@dataclass(frozen=True)
class SheetItem:
    """One row of a sheet: what the judge would be asked, and what it is shown."""

    conversation: Conversation
    seq: int | None
    questions: tuple[str, ...]
    instructions: str
    shown: str
    turns: int
    experiment: str

    @property
    def key(self) -> tuple[str, int | None]:
        return (self.conversation.id, self.seq)


def _judge(rubric: Rubric, experiment_names: Mapping[str, str]) -> Any:
    """The rubric's judge, to build exactly what a judge is shown (it calls no model here)."""
    from simulator.annotations.judge import JudgeAnnotator

    model = ModelRef(provider=Provider.dryrun, model="judge")
    return JudgeAnnotator(rubric, model, None, experiment_names=experiment_names)


ANSWER_FORMAT = "\n\nAnswer with one JSON object"


async def sheet_items(
    rubric: Rubric,
    conversations: Sequence[Conversation],
    messages: Mapping[str, list[Message]],
    experiment_names: Mapping[str, str],
) -> list[SheetItem]:
    """The items of the rubric in these conversations (those a judge would be asked about), in
    conversation order."""
    judge = _judge(rubric, experiment_names)
    out: list[SheetItem] = []
    for conv in conversations:
        for item in await judge.items(conv, messages.get(conv.id, [])):
            request, questions, transcript = judge.request(item)
            system, user = request.messages[0].content, request.messages[1].content
            shown = user.split(ANSWER_FORMAT, 1)[0]  # the JSON instruction is the judge's alone
            out.append(
                SheetItem(
                    conversation=conv,
                    seq=item.seq,
                    questions=tuple(q.id for q in questions),
                    instructions=system,
                    shown=shown,
                    turns=transcript.turns,
                    experiment=experiment_names.get(conv.experiment_id, ""),
                )
            )
    return out


async def load_items(store: Any, rubric: Rubric, flt: Any) -> list[SheetItem]:
    """The sheet items of the conversations ``flt`` selects (finished ones unless a status is
    asked for, as for judges); the rubric's placeholders are checked against each experiment."""
    from simulator.annotations.service import select_finished

    convs, experiments, _ = await select_finished(store, flt)
    for exp in experiments.values():
        rubric.check_placeholders([f.name for f in exp.factors], exp.name)
    messages: dict[str, list[Message]] = {c.id: [] for c in convs}
    for start in range(0, len(convs), 50):
        chunk = [c.id for c in convs[start : start + 50]]
        for m in await store.messages.list_many(chunk):
            messages.setdefault(m.conversation_id, []).append(m)
    names = {k: e.name for k, e in experiments.items()}
    items = await sheet_items(rubric, convs, messages, names)
    if not items:
        raise CodingError(
            f"the rubric {rubric.name!r} finds nothing to code in the {len(convs)} selected "
            "conversation(s) (no message of the kinds or roles it asks about)"
        )
    return items


def sheet_frame(rubric: Rubric, items: Sequence[SheetItem]) -> pd.DataFrame:
    """The sheet as a frame: the item columns, an empty column per question, ``comment``."""
    rows = []
    for i, item in enumerate(items, start=1):
        rows.append(
            {
                "item": i,
                "conversation_id": item.conversation.id,
                "seq": item.seq,
                "conversation_number": item.conversation.cell_index + 1,
                "experiment": item.experiment,
                "rubric": rubric_tag(rubric),
                "turns": item.turns,
                "instructions": item.instructions,
                "shown": item.shown,
            }
        )
    columns = {c: STRING for c in SHEET_COLUMNS}
    columns.update({"item": INT, "seq": INT, "conversation_number": INT, "turns": INT})
    columns.update({q.id: STRING for q in rubric.questions})
    columns[COMMENT] = STRING
    return typed(pd.DataFrame(rows), columns)


def allowed_answers(question: Question) -> list[str] | None:
    """The answers of a question with a short list of them (a drop-down in XLSX), else None."""
    if question.answer == "yes_no":
        return ["yes", "no"]
    if question.answer == "yes_no_not_tried":
        return ["yes", "no", "not_tried"]
    if question.answer == "third":
        return ["1", "2", "3"]
    if question.answer == "likert":
        return [str(i) for i in range(1, int(question.scale or 5) + 1)]
    if question.answer == "category":
        return list(question.choices)
    return None


def write_sheet(rubric: Rubric, items: Sequence[SheetItem], path: Path) -> Path:
    """Write a blank sheet as CSV or XLSX (by ``path``'s extension)."""
    suffix = path.suffix.lower()
    if suffix not in SHEET_FORMATS:
        raise CodingError(f"{path}: a coding sheet is a .xlsx or .csv file")
    frame = sheet_frame(rubric, items)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)
        return path
    _write_xlsx(rubric, frame, path)
    return path


def _short(text: str, limit: int = 255) -> str:
    """A text cut to Excel's limit of a validation's message (255 characters)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _split(text: str) -> list[str]:
    return [text[i : i + XLSX_CELL_LIMIT] for i in range(0, len(text), XLSX_CELL_LIMIT)] or [""]


def _write_xlsx(rubric: Rubric, frame: pd.DataFrame, path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    wb = Workbook()
    ws = wb.active
    ws.title = "coding"
    # long texts continue in extra columns (Excel keeps at most 32,767 characters in a cell)
    parts = {
        c: max((len(_split(str(v))) for v in frame[c].dropna()), default=1)
        for c in ("instructions", "shown")
    }
    header: list[str] = []
    for c in frame.columns:
        header.append(c)
        header += [f"{c} ({i})" for i in range(2, parts.get(c, 1) + 1)]
    ws.append(header)
    for row in frame.itertuples(index=False):
        cells: list[Any] = []
        for c, v in zip(frame.columns, row, strict=True):
            v = None if v is pd.NA else v
            if c in parts:
                chunks = _split("" if v is None else str(v))
                cells += chunks + [None] * (parts[c] - len(chunks))
            else:
                cells.append(v)
        ws.append(cells)
    n = len(frame)
    bold = Font(bold=True)
    answer_fill = PatternFill("solid", fgColor="FFF2CC")
    for cell in ws[1]:
        cell.font = bold
    col = {name: i + 1 for i, name in enumerate(header)}
    wrap = Alignment(wrap_text=True, vertical="top")
    for name in header:
        letter = get_column_letter(col[name])
        width = 90 if name.startswith("shown") else 50 if name.startswith("instructions") else 16
        ws.column_dimensions[letter].width = width
        if name.startswith(("shown", "instructions")):
            for r in range(2, n + 2):
                ws[f"{letter}{r}"].alignment = wrap
    ws.freeze_panes = "C2"
    lists = wb.create_sheet("lists")
    lists.sheet_state = "hidden"
    turns_letter = get_column_letter(col["turns"])
    list_column = 0
    for q in rubric.questions:
        letter = get_column_letter(col[q.id])
        for r in range(1, n + 2):
            ws[f"{letter}{r}"].fill = answer_fill
        if n == 0:
            continue
        span = f"{letter}2:{letter}{n + 1}"
        allowed = allowed_answers(q)
        dv: DataValidation | None = None
        if allowed is not None:
            list_column += 1
            lcol = get_column_letter(list_column)
            for i, value in enumerate(allowed, start=1):
                lists[f"{lcol}{i}"] = value
            dv = DataValidation(
                type="list", formula1=f"=lists!${lcol}$1:${lcol}${len(allowed)}", allow_blank=True
            )
            dv.error = f"{q.id}: one of {', '.join(allowed)}"
        elif q.answer == "turn":
            dv = DataValidation(
                type="whole", operator="between", formula1="1", formula2=f"${turns_letter}2"
            )
            dv.error = f"{q.id}: a turn number from 1 to the row's turns"
        elif q.answer == "number":
            kind = "whole" if q.integer else "decimal"
            if q.min is not None and q.max is not None:
                dv = DataValidation(
                    type=kind, operator="between", formula1=f"{q.min:g}", formula2=f"{q.max:g}"
                )
            elif q.min is not None:
                dv = DataValidation(type=kind, operator="greaterThanOrEqual", formula1=f"{q.min:g}")
            elif q.max is not None:
                dv = DataValidation(type=kind, operator="lessThanOrEqual", formula1=f"{q.max:g}")
            else:
                dv = DataValidation(
                    type=kind, operator="between", formula1="-1e300", formula2="1e300"
                )
            dv.error = f"{q.id}: {q.how_to_answer(10**6)}"
        if dv is not None:
            dv.allow_blank = True
            dv.showErrorMessage = True
            dv.errorTitle = "Not an answer of the rubric"
            dv.error = _short(dv.error or "")
            dv.prompt = _short(q.ask)
            dv.showInputMessage = True
            ws.add_data_validation(dv)
            dv.add(span)
    guide = wb.create_sheet("rubric")
    guide.append(["question", "ask", "answer", "allowed answers", "only when"])
    for cell in guide[1]:
        cell.font = bold
    for q in rubric.questions:
        when = " and ".join(
            f"{k} is " + " or ".join(str(v) for v in vs) for k, vs in q.when.items()
        )
        allowed = allowed_answers(q)
        guide.append(
            [q.id, q.ask, q.answer, ", ".join(allowed) if allowed else q.how_to_answer(10**6), when]
        )
    guide.append([])
    guide.append(["rubric", rubric_tag(rubric)])
    guide.append(["instructions", rubric.instructions])
    for letter, width in zip("ABCDE", (18, 70, 18, 30, 30), strict=True):
        guide.column_dimensions[letter].width = width
    wb.save(path)


# --------------------------------------------------------------------------- reading sheets


@dataclass
class CoderSheet:
    """One coder's answers: per item key (conversation id, seq or None), per question, the
    canonical answer (``None``: not applicable; absent: left empty)."""

    coder: str
    path: Path
    answers: dict[tuple[str, int | None], dict[str, Any]] = field(default_factory=dict)
    not_applicable: dict[tuple[str, int | None], set[str]] = field(default_factory=dict)
    turns: dict[tuple[str, int | None], int] = field(default_factory=dict)
    rows: dict[tuple[str, int | None], int] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)  # conversation id -> its number


def parse_sheet_specs(specs: Sequence[str]) -> list[tuple[str, Path]]:
    """``NAME=PATH`` or ``PATH`` (the coder is the file's name without extension)."""
    out: list[tuple[str, Path]] = []
    for spec in specs:
        name, sep, rest = spec.partition("=")
        if sep and name.strip() and not Path(spec).exists():
            coder, path = name.strip(), Path(rest.strip())
        else:
            path = Path(spec)
            coder = path.stem
        out.append((coder, path.expanduser()))
    coders = [c for c, _ in out]
    repeated = sorted({c for c in coders if coders.count(c) > 1})
    if repeated:
        raise CodingError(
            f"two sheets have the coder {repeated[0]!r}: name each as CODER=PATH "
            "(e.g. ana=sheets/a.xlsx)"
        )
    return out


def _rows(path: Path) -> tuple[list[str], list[list[Any]]]:
    """The header and the rows of a sheet (CSV: texts; XLSX: the cells' values)."""
    if not path.is_file():
        raise CodingError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            with path.open(newline="", encoding="utf-8-sig") as fh:
                table = list(csv.reader(fh))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise CodingError(f"{path}: cannot be read as CSV ({exc})") from None
    elif suffix == ".xlsx":
        from openpyxl import load_workbook

        try:
            wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds for a broken file
            raise CodingError(f"{path}: cannot be read as XLSX ({exc})") from None
        ws = wb["coding"] if "coding" in wb.sheetnames else wb.worksheets[0]
        table = [list(r) for r in ws.iter_rows(values_only=True)]
        wb.close()
    else:
        raise CodingError(f"{path}: a coding sheet is a .xlsx or .csv file")
    if not table:
        raise CodingError(f"{path}: the sheet is empty (no header row)")
    header = [str(h).strip() if h is not None else "" for h in table[0]]
    return header, table[1:]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return int(number) if number.is_integer() else None
    return None


def read_sheet(path: Path, rubric: Rubric, coder: str) -> tuple[CoderSheet, list[str]]:
    """A coder's sheet and the problems found in it (each naming the row and the column)."""
    header, rows = _rows(path)
    sheet = CoderSheet(coder=coder, path=path)
    problems: list[str] = []
    col = {name: i for i, name in enumerate(header) if name}
    needed = ["conversation_id", "seq", "turns", *(q.id for q in rubric.questions)]
    missing = [c for c in needed if c not in col]
    if missing:
        return sheet, [
            f"column {c}: missing (a sheet of this rubric has the columns {', '.join(needed)})"
            for c in missing
        ]
    tag = rubric_tag(rubric)
    scope = {q.id: q.scope for q in rubric.questions}
    for number, raw in enumerate(rows, start=2):  # the header is row 1, as a spreadsheet shows
        cells = list(raw) + [None] * (len(header) - len(raw))
        if all(_blank(v) for v in cells):
            continue

        def cell(name: str, cells: list[Any] = cells) -> Any:
            return cells[col[name]]

        where = f"row {number}"
        cid = cell("conversation_id")
        if _blank(cid):
            problems.append(f"{where}, column conversation_id: empty")
            continue
        cid = str(cid).strip()
        seq_raw = cell("seq")
        seq = None if _blank(seq_raw) else _whole(seq_raw)
        if not _blank(seq_raw) and seq is None:
            problems.append(f"{where}, column seq: {seq_raw!r} is not a message number")
            continue
        turns = _whole(cell("turns"))
        if turns is None or turns < 0:
            problems.append(f"{where}, column turns: {cell('turns')!r} is not a number of turns")
            continue
        if "rubric" in col and not _blank(cell("rubric")) and str(cell("rubric")).strip() != tag:
            problems.append(
                f"{where}, column rubric: the sheet was made from {cell('rubric')!r}, not from "
                f"this rubric ({tag}); make a new sheet with 'simulator coding sheet'"
            )
            continue
        key = (cid, seq)
        if key in sheet.rows:
            problems.append(
                f"{where}: the same item as row {sheet.rows[key]} (conversation {cid}"
                + (f", message {seq}" if seq is not None else "")
                + ")"
            )
            continue
        sheet.rows[key] = number
        sheet.turns[key] = turns
        if "conversation_number" in col and _whole(cell("conversation_number")) is not None:
            sheet.numbers[cid] = int(_whole(cell("conversation_number")))  # type: ignore[arg-type]
        answers: dict[str, Any] = {}
        not_applicable: set[str] = set()
        row_scope = "message" if seq is not None else "conversation"
        for q in rubric.questions:
            value = cell(q.id)
            if scope[q.id] != row_scope:
                if not _blank(value):
                    problems.append(
                        f"{where}, column {q.id}: a {scope[q.id]} question; leave it empty on "
                        f"{row_scope} rows"
                    )
                continue
            if q.when and not q.applies(answers):
                if not _blank(value):
                    cond = " and ".join(
                        f"{k} is " + " or ".join(str(v) for v in vs) for k, vs in q.when.items()
                    )
                    problems.append(
                        f"{where}, column {q.id}: answered {value!r}, but {q.id} applies only "
                        f"when {cond}; leave it empty"
                    )
                elif all(k in answers for k in q.when):
                    not_applicable.add(q.id)
                continue
            if _blank(value):
                continue
            text = value.strip() if isinstance(value, str) else value
            try:
                answers[q.id] = q.validate(text, turns)
            except ValueError as exc:
                problems.append(f"{where}, column {q.id}: {exc}")
        sheet.answers[key] = answers
        sheet.not_applicable[key] = not_applicable
    return sheet, problems


def read_sheets(specs: Sequence[str], rubric: Rubric) -> list[CoderSheet]:
    """Every coder's sheet, checked; one CodingError listing the problems of every file (the
    file, the row and the column of each) when there are any."""
    sheets: list[CoderSheet] = []
    report: list[str] = []
    for coder, path in parse_sheet_specs(specs):
        sheet, problems = read_sheet(path, rubric, coder)
        sheets.append(sheet)
        if problems:
            shown = problems[:MAX_PROBLEMS]
            more = len(problems) - len(shown)
            lines = [f"{path} (coder {coder}) has {len(problems)} problem(s):"]
            lines += [f"  {p}" for p in shown]
            if more:
                lines.append(f"  ... and {more} more")
            report.append("\n".join(lines))
    if report:
        raise CodingError("\n".join(report))
    if not sheets:
        raise CodingError("give at least one coding sheet")
    return sheets


# --------------------------------------------------------------------------- agreement


def item_keys(sheets: Sequence[CoderSheet]) -> list[tuple[str, int | None]]:
    """Every item some coder coded, in the order of the first sheet, then the others'."""
    keys: dict[tuple[str, int | None], None] = {}
    for s in sheets:
        keys.update(dict.fromkeys(s.rows))
    return list(keys)


def parse_levels(specs: Iterable[str], rubric: Rubric) -> dict[str, str]:
    """The level of measurement per question: the answer type's default, overridden by
    ``--level LEVEL`` (every question) or ``--level QUESTION=LEVEL``."""
    levels = {q.id: DEFAULT_LEVELS.get(q.answer, "nominal") for q in rubric.questions}
    ids = [q.id for q in rubric.questions]
    for spec in specs:
        name, sep, level = spec.partition("=")
        level = (level if sep else name).strip()
        if level not in LEVELS:
            raise CodingError(
                f"--level {spec}: the level of measurement is one of {', '.join(LEVELS)}"
            )
        if not sep:
            levels = dict.fromkeys(levels, level)
            continue
        if name.strip() not in levels:
            raise CodingError(
                f"--level {spec}: no question {name.strip()!r} (questions: {', '.join(ids)})"
            )
        levels[name.strip()] = level
    return levels


def _order(question: Question) -> list[Any] | None:
    if question.answer == "category":
        return list(question.choices)
    if question.answer in ("yes_no", "yes_no_not_tried"):
        return ["no", "not_tried", "yes"] if question.answer != "yes_no" else ["no", "yes"]
    return None


AGREEMENT_COLUMNS: dict[str, str] = {
    "question": STRING,
    "answer": STRING,
    "level": STRING,
    "coders": INT,
    "items": INT,
    "agreement": FLOAT,
    "kappa": FLOAT,
    "weighted_kappa": FLOAT,
    "alpha": FLOAT,
    "note": STRING,
}


def _values(sheets: Sequence[CoderSheet], key: tuple[str, int | None], qid: str) -> list[Any]:
    return [s.answers.get(key, {}).get(qid) for s in sheets]


def agreement_table(
    rubric: Rubric,
    sheets: Sequence[CoderSheet],
    levels: Mapping[str, str] | None = None,
    weights: str | None = None,
) -> pd.DataFrame:
    """Per question: coders, items coded by two coders or more, percent agreement, Cohen's
    kappa (exactly two coders), the weighted kappa (``weights``, ordered answers, two coders) and
    Krippendorff's alpha at the question's level. An answer a condition made not applicable is
    missing here."""
    if weights is not None and weights not in WEIGHTS:
        raise CodingError(f"--weights: one of {', '.join(WEIGHTS)}")
    levels = dict(levels or parse_levels([], rubric))
    keys = item_keys(sheets)
    rows = []
    for q in rubric.questions:
        units = [_values(sheets, k, q.id) for k in keys]
        pairable = sum(1 for u in units if sum(v is not None for v in u) >= 2)
        row: dict[str, Any] = {
            "question": q.id,
            "answer": q.answer,
            "level": levels[q.id],
            "coders": len(sheets),
            "items": pairable,
        }
        if q.answer == "text":
            rows.append({**row, "level": None, "note": "free text: no agreement statistic"})
            continue
        order = _order(q)
        row["agreement"] = percent_agreement(units)
        row["alpha"] = krippendorff_alpha(units, levels[q.id], order=order)
        if len(sheets) == 2:
            a, b = [u[0] for u in units], [u[1] for u in units]
            row["kappa"] = cohen_kappa(a, b)
            if weights is not None and levels[q.id] != "nominal":
                row["weighted_kappa"] = cohen_kappa(a, b, weights=weights, order=order)
        notes = []
        if pairable == 0:
            notes.append("no item coded by two coders")
        elif row["alpha"] is None:
            notes.append("every answer the same: agreement beyond chance is undefined")
        if len(sheets) != 2:
            notes.append("kappa needs exactly two coders")
        row["note"] = "; ".join(notes) or None
        rows.append(row)
    return typed(pd.DataFrame(rows), AGREEMENT_COLUMNS)


# --------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class Label:
    """The resolved answer of one question about one item (``applicable`` False: the resolved
    answers it depends on make it not apply; ``value`` is then None)."""

    key: tuple[str, int | None]
    question: str
    value: Any
    applicable: bool
    coders: dict[str, Any]
    agreed: bool


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _resolve_one(
    values: dict[str, Any], rule: str, adjudicator: str | None, coders: int
) -> tuple[Any, bool] | None:
    """(value, everyone agreed) for one item and question, or None when unresolved."""
    given = {c: v for c, v in values.items() if v is not None}
    distinct = list(dict.fromkeys(given.values()))
    unanimous = len(given) == coders and len(distinct) == 1
    if unanimous:
        return distinct[0], True
    if rule == "majority":
        for v in distinct:
            if sum(1 for x in given.values() if x == v) * 2 > coders:
                return v, False
        return None
    if rule == "adjudicator" and adjudicator is not None and adjudicator in given:
        return given[adjudicator], False
    return None


def resolve(
    rubric: Rubric,
    sheets: Sequence[CoderSheet],
    rule: str = "unanimous",
    adjudicator: str | None = None,
) -> tuple[list[Label], list[tuple[tuple[str, int | None], str]]]:
    """The resolved labels (question by question in the rubric's order, so a condition reads the
    resolved answers) and the (item, question) pairs left unresolved."""
    if rule not in RESOLUTIONS:
        raise CodingError(f"--resolve: one of {', '.join(RESOLUTIONS)}")
    names = [s.coder for s in sheets]
    if rule == "adjudicator":
        if adjudicator is None:
            raise CodingError("--resolve adjudicator needs --adjudicator NAME (one of the coders)")
        if adjudicator not in names:
            raise CodingError(
                f"--adjudicator {adjudicator!r} is not a coder (coders: {', '.join(names)})"
            )
    labels: list[Label] = []
    unresolved: list[tuple[tuple[str, int | None], str]] = []
    scope = {q.id: q.scope for q in rubric.questions}
    for key in item_keys(sheets):
        row_scope = "message" if key[1] is not None else "conversation"
        resolved: dict[str, Any] = {}
        missing: set[str] = set()
        for q in rubric.questions:
            if scope[q.id] != row_scope:
                continue
            values = {s.coder: s.answers.get(key, {}).get(q.id) for s in sheets}
            if q.when:
                if any(dep in missing for dep in q.when):
                    missing.add(q.id)
                    unresolved.append((key, q.id))
                    continue
                if not q.applies(resolved):
                    labels.append(Label(key, q.id, None, False, values, True))
                    resolved[q.id] = None
                    continue
            outcome = _resolve_one(values, rule, adjudicator, len(sheets))
            if outcome is None:
                missing.add(q.id)
                unresolved.append((key, q.id))
                continue
            value, agreed = outcome
            resolved[q.id] = value
            labels.append(Label(key, q.id, value, True, values, agreed))
    return labels, unresolved


DISAGREEMENT_COLUMNS: dict[str, str] = {
    "conversation_id": STRING,
    "conversation_number": INT,
    "seq": INT,
    "question": STRING,
}


def disagreements(
    rubric: Rubric, sheets: Sequence[CoderSheet], labels: Sequence[Label] = ()
) -> pd.DataFrame:
    """One row per (item, question) on which the coders' answers differ: each coder's answer
    (``coder:<name>``; empty: left empty or not applicable) and the resolved label, if any."""
    resolved = {(lab.key, lab.question): lab for lab in labels}
    rows = []
    for key in item_keys(sheets):
        for q in rubric.questions:
            values = _values(sheets, key, q.id)
            given = [v for v in values if v is not None]
            if len(set(given)) <= 1:
                continue
            lab = resolved.get((key, q.id))
            number = next((sh.numbers[key[0]] for sh in sheets if key[0] in sh.numbers), None)
            row: dict[str, Any] = {
                "conversation_id": key[0],
                "conversation_number": number,
                "seq": key[1],
                "question": q.id,
            }
            row.update({f"coder:{s.coder}": _text(v) for s, v in zip(sheets, values, strict=True)})
            row["resolved"] = _text(lab.value) if lab is not None else None
            rows.append(row)
    columns = dict(DISAGREEMENT_COLUMNS)
    columns.update({f"coder:{s.coder}": STRING for s in sheets})
    columns["resolved"] = STRING
    return typed(pd.DataFrame(rows), columns)


# --------------------------------------------------------------------------- storing


def human_version(
    rubric: Rubric,
    sheets: Sequence[CoderSheet],
    rule: str,
    adjudicator: str | None,
    labels: Sequence[Label],
) -> str:
    """The rubric's version and a digest of the coders, the rule and the labels: the same
    sheets give the same version (importing again stores nothing); corrected sheets a new one,
    kept apart from the old as a changed rubric is."""
    content = [
        rubric.digest,
        sorted(s.coder for s in sheets),
        rule,
        adjudicator,
        [[lab.key[0], lab.key[1], lab.question, lab.value, lab.applicable] for lab in labels],
    ]
    return f"{rubric.version}-{digest(*content)}"


@dataclass
class ImportReport:
    annotator: str
    version: str
    labels: int
    stored: int
    unresolved: int
    conversations: int


async def store_labels(
    store: Any,
    rubric: Rubric,
    sheets: Sequence[CoderSheet],
    labels: Sequence[Label],
    *,
    rule: str,
    adjudicator: str | None = None,
    unresolved: int = 0,
) -> ImportReport:
    """Store the labels as annotations of ``human:<rubric>`` (and its catalogue entries); every
    item's conversation must exist (a CodingError names the sheet and row of one that does not)."""
    name = annotator_name(rubric)
    version = human_version(rubric, sheets, rule, adjudicator, labels)
    ids = list(dict.fromkeys(lab.key[0] for lab in labels))
    conversations: dict[str, Conversation] = {}
    for cid in ids:
        conv = await store.conversations.get(cid)
        if conv is None:
            sheet = next(s for s in sheets if any(k[0] == cid for k in s.rows))
            row = next(r for k, r in sheet.rows.items() if k[0] == cid)
            raise CodingError(
                f"{sheet.path}, row {row}, column conversation_id: no conversation {cid} in this "
                "database"
            )
        conversations[cid] = conv
    messages: dict[str, dict[int, Message]] = {}
    if any(lab.key[1] is not None for lab in labels) or any(
        q.answer == "turn" for q in rubric.questions
    ):
        for m in await store.messages.list_many(ids):
            messages.setdefault(m.conversation_id, {})[m.seq] = m
    questions = {q.id: q for q in rubric.questions}
    judge = _judge(rubric, {})
    entries: list[AnnotatorEntry] = []
    for exp_id in dict.fromkeys(c.experiment_id for c in conversations.values()):
        for i, q in enumerate(rubric.questions):
            target = Target.message if q.scope == "message" else Target.conversation
            entries.append(
                AnnotatorEntry(
                    experiment_id=exp_id,
                    annotator=name,
                    annotator_version=version,
                    question=q.id,
                    target=target,
                    kind=KIND,
                    label=q.ask,
                    position=i,
                )
            )
    await store.annotations.register(entries)
    annotations: list[Annotation] = []
    rule_text = rule if rule != "adjudicator" else f"adjudicator {adjudicator}"
    for lab in labels:
        conv = conversations[lab.key[0]]
        q = questions[lab.question]
        data: dict[str, Any] = {
            "coders": {c: v for c, v in lab.coders.items()},
            "resolution": "unanimous" if lab.agreed else rule_text,
        }
        if not lab.applicable:
            data["applicable"] = False
        elif q.answer == "turn" and isinstance(lab.value, int):
            from simulator.annotations.judge import render_transcript

            conv_messages = sorted(messages.get(conv.id, {}).values(), key=lambda m: m.seq)
            shown = rubric.show  # as the judge reads it (a message item: its kinds too)
            if lab.key[1] is not None:
                shown = tuple(dict.fromkeys([*rubric.show, *judge.kinds]))
            transcript = render_transcript(conv_messages, shown, upto_seq=lab.key[1])
            data["seq"] = transcript.seq_of_turn.get(lab.value)
        annotations.append(
            Annotation(
                conversation_id=conv.id,
                seq=lab.key[1],
                annotator=name,
                annotator_version=version,
                question=lab.question,
                kind=KIND,
                value=lab.value,
                data=data,
                experiment_id=conv.experiment_id,
                batch_id=conv.batch_id,
            )
        )
    stored = await store.annotations.insert(annotations)
    return ImportReport(name, version, len(annotations), stored, unresolved, len(conversations))


__all__ = [
    "AGREEMENT_COLUMNS",
    "DEFAULT_LEVELS",
    "RESOLUTIONS",
    "SHEET_COLUMNS",
    "CoderSheet",
    "CodingError",
    "ImportReport",
    "Label",
    "SheetItem",
    "agreement_table",
    "allowed_answers",
    "annotator_name",
    "disagreements",
    "load_items",
    "parse_levels",
    "parse_sheet_specs",
    "read_sheet",
    "read_sheets",
    "resolve",
    "sheet_frame",
    "sheet_items",
    "store_labels",
    "write_sheet",
]
