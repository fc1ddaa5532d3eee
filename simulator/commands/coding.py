"""``simulator coding``: human coding with a rubric (sheets, agreement, agreed labels stored).

See docs/findings.md. The rubric is the LLM judge's (``simulator annotate judge --rubric``).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from simulator.commands.export import add_filter_arguments, filter_from_args
from simulator.domain.errors import ConfigurationError

EPILOG = """\
steps:
  sheet       a blank coding sheet of the selected conversations: one row per item the judge
              would be asked about, what the judge is shown, an empty column per question
              (XLSX: the rubric's answers as drop-down lists; or CSV)
  agreement   read coders' sheets (checked against the rubric), print the agreement per
              question (Cohen's kappa, Krippendorff's alpha) and the disagreements
  import      the same, then store the agreed labels as annotations of human:<rubric>

examples:
  simulator coding sheet --rubric simulator/examples/rubrics/persuasion.yaml \\
      --experiment "Prison study" --coder ana --coder ben -o sheets/
  simulator coding agreement --rubric simulator/examples/rubrics/persuasion.yaml \\
      sheets/ana.xlsx sheets/ben.xlsx -o agreement/
  simulator coding import --rubric simulator/examples/rubrics/persuasion.yaml \\
      sheets/ana.xlsx sheets/ben.xlsx --resolve adjudicator --adjudicator ana
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    coding = subparsers.add_parser(
        "coding",
        help="human coding with a rubric: coding sheets, agreement (kappa, alpha), agreed labels",
        description=(
            "Human coding of transcripts with the rubric an LLM judge answers: write blank "
            "coding sheets, read the coders' sheets back (every answer checked against the "
            "rubric), measure their agreement per question, and store the agreed labels as "
            "annotations of the 'human:<rubric>' annotator, beside the judge's answers."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    steps = coding.add_subparsers(dest="step", metavar="STEP", required=True)

    sheet = steps.add_parser(
        "sheet",
        help="write a blank coding sheet (XLSX or CSV)",
        description="Write a blank coding sheet of the selected conversations (finished ones "
        "unless --status says otherwise).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sheet.add_argument("--rubric", type=Path, required=True, metavar="FILE", help="the rubric")
    sheet.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="PATH",
        help="a .xlsx or .csv file, or a directory (default: coding_sheet.xlsx in the current "
        "directory; with --coder, <coder>.xlsx per coder)",
    )
    sheet.add_argument(
        "--coder",
        action="append",
        metavar="NAME",
        help="write one sheet per coder, named after the coder (repeatable)",
    )
    sheet.add_argument(
        "--format",
        choices=("xlsx", "csv"),
        default=None,
        help="the sheets' format when -o is a directory (default xlsx)",
    )
    add_filter_arguments(sheet)
    sheet.set_defaults(func=cmd_sheet, uses_database=True)

    for name, helptext in (
        ("agreement", "measure the coders' agreement per question and list disagreements"),
        ("import", "store the agreed labels as annotations of human:<rubric>"),
    ):
        p = steps.add_parser(
            name,
            help=helptext,
            description=helptext[0].upper() + helptext[1:] + ". Each SHEET is CODER=PATH or "
            "a PATH whose file name (without extension) names the coder.",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--rubric", type=Path, required=True, metavar="FILE", help="the rubric")
        p.add_argument("sheets", nargs="+", metavar="SHEET", help="coders' sheets (.xlsx, .csv)")
        p.add_argument(
            "--level",
            action="append",
            default=[],
            metavar="[QUESTION=]LEVEL",
            help="level of measurement of Krippendorff's alpha: nominal, ordinal, interval or "
            "ratio, for every question or one (repeatable); default by answer type",
        )
        p.add_argument(
            "--weights",
            choices=("linear", "quadratic"),
            help="also a weighted kappa for ordered answers (two coders)",
        )
        p.add_argument(
            "-o",
            "--output",
            type=Path,
            metavar="DIR",
            help="write agreement.csv, agreement.md and disagreements.csv there",
        )
        if name == "import":
            p.add_argument(
                "--resolve",
                choices=("unanimous", "majority", "adjudicator"),
                default="unanimous",
                help="which labels are stored: unanimous (every coder gave the same answer; "
                "default), majority (more than half of the coders), adjudicator (unanimous, "
                "else the --adjudicator's answer)",
            )
            p.add_argument(
                "--adjudicator", metavar="NAME", help="the coder who settles disagreements"
            )
            p.add_argument(
                "--dry-run",
                action="store_true",
                help="check the sheets and say what would be stored; store nothing",
            )
        p.set_defaults(
            func=cmd_agreement if name == "agreement" else cmd_import,
            uses_database=name == "import",  # agreement reads the sheets only
        )


def _rubric(path: Path) -> Any:
    from simulator.annotations.rubric import load_rubric

    return load_rubric(path)


def _sheet_paths(args: argparse.Namespace) -> list[Path]:
    out: Path | None = args.output
    coders: list[str] = args.coder or []
    fmt = args.format
    if out is not None and out.suffix.lower() in (".xlsx", ".csv"):
        if coders and len(coders) > 1:
            raise ConfigurationError("-o names one file; give a directory for several --coder")
        if fmt is not None and f".{fmt}" != out.suffix.lower():
            raise ConfigurationError(f"-o {out} does not end in .{fmt}")
        return [out]
    if out is not None and out.suffix and not out.is_dir():
        raise ConfigurationError(f"-o {out}: give a .xlsx or .csv file, or a directory")
    folder = out or Path.cwd()
    ext = f".{fmt or 'xlsx'}"
    if not coders:
        return [folder / f"coding_sheet{ext}"]
    if len(set(coders)) != len(coders):
        raise ConfigurationError("--coder: each coder once")
    return [folder / f"{c}{ext}" for c in coders]


def cmd_sheet(args: argparse.Namespace) -> int:
    from simulator.analysis.coding import load_items, write_sheet
    from simulator.commands.common import open_session

    if args.kind:
        raise ConfigurationError(
            "--kind: the rubric says which messages are coded (its 'messages: kinds')"
        )
    rubric = _rubric(args.rubric)
    paths = _sheet_paths(args)
    flt = filter_from_args(args)

    async def go() -> list[Any]:
        async with open_session() as services:
            store = services.store
            return await load_items(store, rubric, flt)

    items = asyncio.run(go())
    conversations = len({i.conversation.id for i in items})
    print(
        f"Rubric: {rubric.name} {rubric.version}; {len(items)} item(s) in {conversations} "
        f"conversation(s); questions: {', '.join(q.id for q in rubric.questions)}"
    )
    for path in paths:
        print(write_sheet(rubric, items, path))
    return 0


def _agreement(args: argparse.Namespace) -> tuple[Any, list[Any], Any]:
    from simulator.analysis.coding import agreement_table, parse_levels, read_sheets
    from simulator.analysis.reporting import markdown_table

    rubric = _rubric(args.rubric)
    sheets = read_sheets(args.sheets, rubric)
    levels = parse_levels(args.level, rubric)
    table = agreement_table(rubric, sheets, levels, args.weights)
    items = len({k for s in sheets for k in s.rows})
    print(f"Coders: {', '.join(s.coder for s in sheets)}; items: {items}")
    shown = table.drop(columns=["answer"])
    if args.weights is None:
        shown = shown.drop(columns=["weighted_kappa"])
    if shown["note"].isna().all():
        shown = shown.drop(columns=["note"])
    print(markdown_table(shown))
    return rubric, sheets, table


def _write(args: argparse.Namespace, table: Any, disagreements: Any) -> None:
    from simulator.analysis.reporting import markdown_table, write_text

    out: Path | None = args.output
    if out is None:
        return
    if out.suffix:
        raise ConfigurationError(f"-o {out}: give a directory")
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "agreement.csv", index=False)
    write_text(out / "agreement.md", markdown_table(table))
    disagreements.to_csv(out / "disagreements.csv", index=False)
    for name in ("agreement.csv", "agreement.md", "disagreements.csv"):
        print(out / name)


def _print_disagreements(frame: Any) -> None:
    from simulator.analysis.reporting import markdown_table

    print(f"Disagreements: {len(frame)}")
    if len(frame):
        shown = frame.head(20).drop(columns=["conversation_id"])
        if shown["seq"].isna().all():
            shown = shown.drop(columns=["seq"])
        print(markdown_table(shown.rename(columns={"conversation_number": "conversation"})))
        if len(frame) > 20:
            print(f"... and {len(frame) - 20} more (-o DIR writes them all)")


def cmd_agreement(args: argparse.Namespace) -> int:
    from simulator.analysis.coding import disagreements

    rubric, sheets, table = _agreement(args)
    frame = disagreements(rubric, sheets)
    _print_disagreements(frame.drop(columns=["resolved"]))
    _write(args, table, frame)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from simulator.analysis.coding import disagreements, resolve, store_labels
    from simulator.commands.common import open_session

    rubric, sheets, table = _agreement(args)
    labels, unresolved = resolve(rubric, sheets, args.resolve, args.adjudicator)
    frame = disagreements(rubric, sheets, labels)
    _print_disagreements(frame)
    _write(args, table, frame)
    agreed = sum(1 for lab in labels if lab.agreed)
    print(
        f"Labels: {len(labels)} resolved ({agreed} unanimous, {len(labels) - agreed} by the "
        f"{args.resolve} rule), {len(unresolved)} unresolved (not stored)"
    )
    if args.dry_run:
        print("Dry run: nothing stored.")
        return 0

    async def go() -> Any:
        async with open_session() as services:
            store = services.store
            return await store_labels(
                store,
                rubric,
                sheets,
                labels,
                rule=args.resolve,
                adjudicator=args.adjudicator,
                unresolved=len(unresolved),
            )

    report = asyncio.run(go())
    before = report.labels - report.stored
    print(
        f"Stored {report.stored} annotation(s) of {report.annotator}, version {report.version}, "
        f"in {report.conversations} conversation(s)"
        + (f"; {before} were stored before" if before else "")
        + "."
    )
    return 0
