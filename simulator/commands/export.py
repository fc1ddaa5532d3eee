"""``simulator export`` (tables and transcripts) and ``simulator plot`` (PNG figures)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from simulator.domain import MessageKind, Status
from simulator.domain.errors import ConfigurationError
from simulator.domain.filters import ConversationFilter

FORMAT_HELP = """\
formats (--format):
  csv        a table, comma-separated, one header row
  jsonl      a table, one JSON object per line (ISO dates, null for missing values)
  parquet    a table with exact column types; pandas.read_parquet gives back the same frame
  markdown   a transcript per conversation (<id>.md in the output directory), or all of them in
             one file when -o ends in .md
  text       a plain-text transcript per conversation (<id>.txt), or one file when -o ends in .txt
  html       one page with a section per conversation, messages coloured by role, day separators
             and summaries (-o FILE.html, or transcripts.html in the output directory)

tables (--what, for csv, jsonl and parquet):
  messages       one row per stored message, in (conversation_id, seq) order, with the grid cell
                 (cell, cell_key, count_<role>, days, repeat, seed, ...) and a factor_<name>
                 column per study factor; numbers users see count from 1 (conversation_number,
                 repeat), an empty text is a missing value
  conversations  one row per conversation: status, agents, budget, tokens, timing, grid cell
  summaries      the summarizer's end-of-day summaries (message columns)
  metrics        per conversation: messages, words and turn share per role (missing for a
                 conversation without the role), mean message length, token totals, fallbacks,
                 re-asks, retries, failure, duration
  roles          per conversation and role: messages, words, shares, tokens, fallbacks
  agents         per conversation and agent: the same measures
  cells          per grid cell of a batch (cell_key: the whole design, model parameters
                 included; only repeats pooled): conversations, done, failed, means
  annotations    one row per judge answer, interview answer or score, keyed by (conversation_id,
                 seq) (docs/annotations.md); --wide: one column per annotator question
  the games' tables (each kind declares its own) of any set of runs, each row with its run's
  conditions (cell, factors, preset, every game parameter as param_<name>, condition,
  condition_key) and then the table's own columns:
{game_tables}
  ledger         per batch of the selected conversations, model, role and purpose: calls,
                 answers from the response cache, tokens, cached prompt tokens, cost
                 (docs/cost.md)

filters (combine freely; every one must match; ids may be any unique prefix of 4+ characters):
  --experiment ID|NAME   --batch ID   --model NAME   --days N   --counts guard=1,prisoner=2
  --status done|failed|...   --factor goal=Escape (repeatable)   --conversation ID (repeatable)
  --kind utterance|action|summary|kickoff|system (repeatable; which messages, not conversations)
"""

EXPORT_EXAMPLES = """\
examples:
  simulator export --experiment "Prison study" --format parquet -o results/
  simulator export --batch 3f2a... --what metrics --format csv -o metrics.csv
  simulator export --batch 3f2a... --counts guard=1,prisoner=2 --factor goal=Escape \\
      --format html -o transcripts.html
  simulator export --experiment "Prison study" --status done --format markdown -o transcripts/
"""

PLOT_EXAMPLES = """\
examples:
  simulator plot --batch 3f2a... --figure tokens -o tokens.png
  simulator plot --experiment "Prison study" --figure all -o figures/
  simulator plot --experiment "Prison study" --figure outcome \\
      --outcome "human:persuasion.goal_achieved=yes" --by persona -o outcome.png
  simulator plot --experiment "Prison study" --figure trajectory --score moderation.harassment
  simulator plot --experiment Commons --figure rounds --measure resource_after_growth
  simulator plot --conversation 0197b0b3 --figure network --step 10
"""


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """The selection filters shared by ``export`` and ``plot``."""
    g = parser.add_argument_group("filters (which conversations)")
    g.add_argument(
        "--experiment", metavar="ID|NAME", help="an experiment, by id, id prefix or exact name"
    )
    g.add_argument("--batch", metavar="ID", help="a batch, by id or a unique prefix of it")
    g.add_argument(
        "--model",
        metavar="NAME",
        help="conversations in which any role, the summarizer or the manager used this model "
        "(model name such as llama3.1:8b, or provider:model)",
    )
    g.add_argument("--days", type=int, metavar="N", help="conversations that ran N days")
    g.add_argument(
        "--counts",
        metavar="ROLE=N,...",
        help="agents per role, e.g. guard=1,prisoner=2 (role names are case-insensitive; "
        "roles not named are not restricted)",
    )
    g.add_argument(
        "--status",
        choices=[s.value for s in Status],
        help="conversation status",
    )
    g.add_argument(
        "--factor",
        action="append",
        metavar="NAME=LEVEL",
        help="a study factor's level, e.g. goal=Escape (repeat the option for several factors; "
        "a level may contain commas)",
    )
    g.add_argument(
        "--kind",
        action="append",
        choices=[k.value for k in MessageKind],
        help="only messages of this kind (repeatable), e.g. --kind utterance for what agents "
        "said; conversations are not filtered by it",
    )
    g.add_argument(
        "--conversation",
        action="append",
        metavar="ID",
        help="a conversation, by id or a unique prefix of it (repeatable)",
    )


def format_help(game_tables: dict[str, str]) -> str:
    """The epilog of ``simulator export``, with the tables of every game kind."""
    return FORMAT_HELP.replace("{game_tables}", help_lines(game_tables))


def help_lines(entries: dict[str, str]) -> str:
    """``name  text`` lines of an epilog, the text wrapped under itself."""
    import textwrap

    lines = []
    for name, text in entries.items():
        if len(name) >= 15:
            lines.append(f"  {name}")
        head = f"  {name:<14} " if len(name) < 15 else " " * 17
        lines.append(textwrap.fill(text, width=96, initial_indent=head, subsequent_indent=" " * 17))
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from simulator.analysis.catalog import FIGURES, FORMATS, TABLES, game_figures, game_tables
    from simulator.scenarios.registry import KINDS

    tables = game_tables(KINDS)
    figures = {**FIGURES, **game_figures(KINDS)}

    export = subparsers.add_parser(
        "export",
        help="export messages, conversations, summaries or metrics (CSV, JSONL, Parquet) and "
        "transcripts (Markdown, text, HTML)",
        description=(
            "Export stored conversations for analysis. Tables are tidy and fully labelled: one "
            "row per message (or conversation, ...) with the grid cell and every study factor as "
            "its own column. Transcripts are readable conversations, coloured by role in HTML."
        ),
        epilog=format_help(tables) + "\n" + EXPORT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument(
        "-f",
        "--format",
        choices=FORMATS,
        default="csv",
        help="output format: csv, jsonl, parquet (tables) or markdown, text, html (transcripts); "
        "default csv",
    )
    export.add_argument(
        "-w",
        "--what",
        choices=[*TABLES, "annotations", "ledger", *tables],
        default="messages",
        help="which table to export (csv, jsonl, parquet): messages, conversations, summaries, "
        f"metrics, roles, agents, cells, annotations or ledger, or a game's {', '.join(tables)}; "
        "default messages",
    )
    export.add_argument(
        "--wide",
        action="store_true",
        help="with --what annotations: one row per (conversation_id, seq, agent) and one "
        "column per annotator question, instead of one row per answer",
    )
    export.add_argument(
        "--annotator",
        action="append",
        metavar="NAME",
        help="with --what annotations: only this annotator, e.g. judge:persuasion or "
        "moderation (repeatable)",
    )
    export.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        type=Path,
        help="a file (its extension must match the format) or a directory (default: the "
        "current directory; transcripts: ./transcripts/)",
    )
    add_filter_arguments(export)
    export.set_defaults(func=cmd_export, uses_database=True)

    figure_help = help_lines(figures)
    plot = subparsers.add_parser(
        "plot",
        help="draw PNG figures (tokens or message length per turn by role, shares, cells)",
        description="Draw PNG figures of the selected conversations with matplotlib.",
        epilog=f"figures (--figure):\n{figure_help}\n  all            every figure above\n\n"
        + PLOT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plot.add_argument(
        "--figure",
        choices=[*figures, "all"],
        default="tokens",
        help="which figure (default tokens); 'all' writes every figure into a directory",
    )
    plot.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        type=Path,
        help="a .png file, or a directory (default: <figure>.png in the current directory)",
    )
    g = plot.add_argument_group(
        "what the figures trajectory, outcome, rounds, steps, network, heatmap show"
    )
    g.add_argument(
        "--score",
        metavar="NAME",
        help="trajectory: a score of messages, e.g. moderation.harassment",
    )
    g.add_argument(
        "--outcome",
        metavar="NAME",
        help="outcome: an annotation or metric, e.g. judge:persuasion.goal_achieved=yes",
    )
    g.add_argument("--by", metavar="FACTOR", help="outcome: the study factor on the x axis")
    g.add_argument("--role", metavar="ROLE", help="outcome: only this role's messages")
    g.add_argument(
        "--measure",
        metavar="COLUMN",
        help="rounds, steps: a column of the game table (default resource_after_growth, "
        "cooperation)",
    )
    g.add_argument(
        "--step", type=int, metavar="N", help="network, heatmap: after step N (default the last)"
    )
    add_filter_arguments(plot)
    plot.set_defaults(func=cmd_plot, uses_database=True)


def filter_from_args(args: argparse.Namespace) -> ConversationFilter:
    """The conversation filter of the parsed options; bad values are ConfigurationErrors."""
    from simulator.analysis.loading import parse_assignments

    try:
        counts_raw = parse_assignments(args.counts, what="--counts")
        factors = parse_assignments(args.factor, what="--factor", split=False)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    counts: dict[str, int] = {}
    for role, n in counts_raw.items():
        try:
            counts[role] = int(n)
        except ValueError:
            raise ConfigurationError(
                f"--counts: the number of {role!r} agents must be a whole number, got {n!r}"
            ) from None
    return ConversationFilter(
        experiment_id=args.experiment,
        batch_id=args.batch,
        model=args.model,
        days=args.days,
        counts=counts or None,
        status=args.status,
        factors=factors or None,
        conversation_ids=args.conversation or None,
        kinds=args.kind or None,
    )


def cmd_export(args: argparse.Namespace) -> int:
    from simulator.analysis.catalog import game_tables
    from simulator.analysis.exports import export
    from simulator.commands.common import open_session
    from simulator.scenarios.registry import KINDS

    flt = filter_from_args(args)
    annotations = args.what == "annotations"
    if not annotations and (args.wide or args.annotator):
        raise ConfigurationError("--wide and --annotator go with --what annotations")

    async def go() -> list[Path]:
        async with open_session() as services:
            store = services.store
            if args.what in game_tables(KINDS):
                from simulator.analysis.game_tables import export_game_table

                return await export_game_table(
                    store, args.what, flt, fmt=args.format, output=args.output, kinds=KINDS
                )
            if args.what == "ledger":
                return [await export_ledger(store, flt, fmt=args.format, output=args.output)]
            if annotations:
                from simulator.annotations.tables import export_annotations

                return await export_annotations(
                    store,
                    flt,
                    fmt=args.format,
                    output=args.output,
                    wide=args.wide,
                    annotators=args.annotator or (),
                )
            return await export(store, flt, fmt=args.format, what=args.what, output=args.output)

    paths = asyncio.run(go())
    for p in paths[:20]:
        print(p)
    if len(paths) > 20:
        print(f"... and {len(paths) - 20} more files in {paths[0].parent}")
    return 0


async def export_ledger(store: Any, flt: Any, *, fmt: str, output: Path | None) -> Path:
    """The ledgers of the batches of the selected conversations, one row per batch, model, role
    and purpose (engine/ledger.py ``ledger_rows``)."""
    import pandas as pd

    from simulator.analysis.exports import table_path, write_table
    from simulator.analysis.loading import select_conversations
    from simulator.domain.errors import NotFoundError
    from simulator.engine.ledger import LEDGER_COLUMNS, ledger_rows

    if fmt not in ("csv", "jsonl", "parquet"):
        raise ConfigurationError("--what ledger is a table: export it as csv, jsonl or parquet")
    conversations, _ = await select_conversations(store, flt)
    batch_ids = list(dict.fromkeys(c.batch_id for c in conversations if c.batch_id))
    ledgers = await store.ledgers.get_many(batch_ids)
    if not ledgers:
        raise NotFoundError("no batch with a ledger matches these filters; nothing was written")
    batches = {b.id: b for b in [await store.batches.get(i) for i in batch_ids] if b is not None}
    frame = pd.DataFrame(ledger_rows(ledgers, batches), columns=list(LEDGER_COLUMNS))
    frame = frame.astype(LEDGER_COLUMNS)
    return write_table(frame, table_path("ledger", fmt, output), fmt)


def cmd_plot(args: argparse.Namespace) -> int:
    from simulator.analysis.plots import BASIC_FIGURES, Figure, PlotOptions, plot
    from simulator.commands.common import open_session
    from simulator.scenarios.registry import KINDS

    flt = filter_from_args(args)
    names = list(BASIC_FIGURES) if args.figure == "all" else [args.figure]
    out: Path | None = args.output
    paths: list[Path] = []
    for name in names:
        if out is not None and out.suffix.lower() == ".png" and len(names) == 1:
            paths.append(out)
        elif out is not None and out.suffix and not out.is_dir():
            raise ConfigurationError(
                f"output {str(out)!r}: give a .png file for one figure, or a directory"
            )
        else:
            paths.append((out or Path.cwd()) / f"{name}.png")
    options = PlotOptions(
        score=args.score,
        outcome=args.outcome,
        by=args.by,
        role=args.role,
        measure=args.measure,
        step=args.step,
    )

    async def go() -> list[Figure]:
        async with open_session() as services:
            return await plot(services.store, flt, names, paths, options, kinds=KINDS)

    for drawn in asyncio.run(go()):
        print(drawn.path)
    return 0
