"""``simulator stats``: models, summaries, per-turn series and Granger tests of a study's outcomes
(annotations and metrics), as tables for a paper. See docs/findings.md."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulator.commands.export import add_filter_arguments, filter_from_args
from simulator.domain.errors import ConfigurationError

NAMES_HELP = """\
outcomes and scores:
  an annotation column of the wide export (judge:persuasion.goal_achieved,
  human:persuasion.goal_achieved, moderation.harassment, python:mylab.scores:toxicity.toxicity)
  or a metric (per conversation: mean_words, turn_share_guard, fallbacks, ...; per message:
  words, completion_tokens, ...); NAME=LEVEL makes a yes/no outcome of an answer, NAME>X of a
  score (moderation.harassment>0.5: a toxic message)

predictors (--on, --by):
  a study factor (goal, persona), model (the cell's models with their parameters), counts (every
  agent count that varies), a role (its agent count), days, or a column of the table (role,
  agent_turn, repeat, ...)
"""

EXAMPLES = """\
examples:
  simulator stats fit "human:persuasion.goal_achieved=yes" --on goal --on persona \\
      --experiment "Prison study" -o tables/persuasion
  simulator stats fit "moderation.harassment>0.5" --per conversation --role Guard \\
      --on goal --on persona --family fraclogit --experiment "Prison study"
  simulator stats fit moderation.harassment --on role --on goal --se cluster
  simulator stats summary "judge:persuasion.goal_achieved=yes" mean_words --by goal
  simulator stats series moderation.harassment --experiment "Prison study" -o series.csv
  simulator stats granger moderation.harassment --cause Guard --effect Prisoner --lag 1
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stats = subparsers.add_parser(
        "stats",
        help="models (logit, OLS, fractional logit), summaries with intervals, per-turn series "
        "and Granger tests of annotations and metrics",
        description=(
            "Statistics of the selected conversations' outcomes (annotations and metrics), as "
            "tidy CSV and Markdown (and LaTeX for models). Aggregates never pool grid cells that "
            "differ in anything but the repeat."
        ),
        epilog=NAMES_HELP + "\n" + EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    steps = stats.add_subparsers(dest="step", metavar="STEP", required=True)

    fit = _step(steps, "fit", "fit an outcome on study factors, models, agent counts and days")
    fit.add_argument("outcome", metavar="OUTCOME", help="what to model (see below)")
    fit.add_argument(
        "--on",
        action="append",
        required=True,
        metavar="NAME",
        help="a predictor (repeatable): a study factor, model, counts, a role, days, a column",
    )
    fit.add_argument(
        "--family",
        choices=("auto", "ols", "logit", "fraclogit"),
        default="auto",
        help="the model: logit (yes/no outcome), fraclogit (a share in 0..1), ols; auto (the "
        "default) picks by the outcome's values",
    )
    fit.add_argument(
        "--se",
        choices=("classical", "HC0", "HC1", "HC2", "HC3", "cluster"),
        default="HC1",
        help="standard errors: robust HC0..HC3 (default HC1), clustered (--cluster), or classical",
    )
    fit.add_argument(
        "--cluster",
        default="conversation",
        metavar="NAME",
        help="with --se cluster: conversation (default), cell, or a column",
    )
    fit.add_argument(
        "--categorical",
        action="append",
        default=[],
        metavar="NAME",
        help="treat a numeric predictor (days, a count) as categorical (repeatable)",
    )
    fit.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="NAME=LEVEL",
        help="the reference level of a categorical predictor (default: its first level)",
    )
    _per(fit)
    _output(fit, "PATH", "the tables' path without extension: PATH.csv, PATH.md, PATH.tex")
    fit.set_defaults(func=cmd_fit, uses_database=True)

    summary = _step(steps, "summary", "n, mean, SD and 95% interval of measures, per cell")
    summary.add_argument("measures", nargs="+", metavar="MEASURE", help="outcomes or scores")
    summary.add_argument(
        "--by",
        action="append",
        default=[],
        metavar="NAME",
        help="also group by (repeatable); rows are always per grid cell too",
    )
    _per(summary)
    _output(summary, "FILE.csv", "write the table as CSV (and Markdown beside it)")
    summary.set_defaults(func=cmd_summary, uses_database=True)

    series = _step(steps, "series", "per-turn series of a score by role, per grid cell")
    series.add_argument("score", metavar="SCORE", help="a score of messages")
    series.add_argument(
        "--by",
        action="append",
        default=[],
        metavar="NAME",
        help="the series' groups besides the cell (default: role; repeatable)",
    )
    _output(series, "FILE.csv", "write the table as CSV (and Markdown beside it)")
    series.set_defaults(func=cmd_series, uses_database=True)

    granger = _step(
        steps, "granger", "Granger tests of one role's score on another's, per conversation"
    )
    granger.add_argument("score", metavar="SCORE", help="a score of messages")
    granger.add_argument("--cause", metavar="ROLE", help="the role whose score may help predict")
    granger.add_argument("--effect", metavar="ROLE", help="the role whose score is predicted")
    granger.add_argument("--lag", type=int, default=1, metavar="N", help="lag (default 1)")
    granger.add_argument(
        "--alpha", type=float, default=0.05, metavar="P", help="significance level (default 0.05)"
    )
    _output(granger, "FILE.csv", "write the per-conversation tests as CSV (and the summary)")
    granger.set_defaults(func=cmd_granger, uses_database=True)


def _step(steps: Any, name: str, helptext: str) -> argparse.ArgumentParser:
    p = steps.add_parser(
        name,
        help=helptext,
        description=helptext[0].upper() + helptext[1:] + ".",
        epilog=NAMES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_filter_arguments(p)
    return p


def _per(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--per",
        choices=("conversation",),
        help="average a score of messages per conversation (the unit of the model)",
    )
    p.add_argument("--role", metavar="ROLE", help="only this role's messages (e.g. Guard)")


def _output(p: argparse.ArgumentParser, metavar: str, helptext: str) -> None:
    p.add_argument("-o", "--output", type=Path, metavar=metavar, help=helptext)


def _study(args: argparse.Namespace) -> Any:
    from simulator.analysis.study import load_study
    from simulator.commands.common import open_session

    if args.kind:
        raise ConfigurationError("--kind: statistics read agent messages; leave --kind out")
    flt = filter_from_args(args)

    async def go() -> Any:
        async with open_session() as services:
            store = services.store
            return await load_study(store, flt)

    return asyncio.run(go())


#: Columns a printed table leaves out (the CSV keeps them): the short cell label says it.
_DESCRIPTION = (
    "experiment_id",
    "batch_id",
    "experiment_name",
    "cell_key",
    "cell_counts",
    "days",
    "total_messages",
    "rounds",
    "speaker_selection",
    "cell_models",
)


def _printable(frame: Any, study: Any, keep: Sequence[str] = ()) -> Any:
    """``frame`` for the terminal: short cell labels, without the cell's description columns
    (but with the ``keep`` columns)."""
    from simulator.analysis.facets import short_labels

    out = frame.copy()
    if "cell_key" in out.columns and "cell" in out.columns:
        labels = short_labels(study.conversation_table())
        out["cell"] = out["cell_key"].map(labels).fillna(out["cell"])
    drop = [
        c
        for c in out.columns
        if (c in _DESCRIPTION or c.startswith(("count_", "factor_"))) and c not in keep
    ]
    return out.drop(columns=drop)


def _print_table(frame: Any, limit: int = 40) -> None:
    from simulator.analysis.reporting import markdown_table

    if len(frame) > limit:
        print(markdown_table(frame.head(limit // 2)))
        print(f"... {len(frame) - limit // 2} more row(s): -o FILE.csv writes them all")
    else:
        print(markdown_table(frame))


def _csv_path(output: Path) -> Path:
    if output.suffix.lower() != ".csv":
        raise ConfigurationError(f"-o {output}: give a .csv file")
    return output


def _write_table(frame: Any, output: Path | None) -> None:
    from simulator.analysis.reporting import markdown_table, write_text

    if output is None:
        return
    path = _csv_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    md = write_text(path.with_suffix(".md"), markdown_table(frame))
    print(path)
    print(md)


def _cluster(name: str, frame: Any) -> str:
    if name == "conversation":
        return "conversation_id"
    if name == "cell":
        return "cell_key"
    if name not in frame.columns:
        raise ConfigurationError(f"--cluster {name}: conversation, cell or a column of the table")
    return name


def cmd_fit(args: argparse.Namespace) -> int:
    from simulator.analysis.loading import parse_assignments
    from simulator.analysis.stats import design, fit_model, markdown, write_fit
    from simulator.analysis.study import measure, predictors

    try:
        reference = parse_assignments(args.reference, what="--reference", split=False)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    study = _study(args)
    outcome = measure(study, args.outcome, per=args.per, role=args.role)
    preds = predictors(
        study, outcome.frame, args.on, categorical=args.categorical, reference=reference
    )
    cluster = _cluster(args.cluster, outcome.frame) if args.se == "cluster" else None
    d = design(outcome, preds, cluster=cluster)
    fit = fit_model(
        d,
        outcome=outcome.column,
        model=args.family,
        se=args.se,
        binary=outcome.binary,
        cluster=args.cluster,
    )
    print(markdown(fit))
    if args.output is not None:
        for path in write_fit(fit, args.output):
            print(path)
    return 0


def _by_columns(study: Any, frame: Any, names: list[str]) -> list[str]:
    from simulator.analysis.study import predictors

    return [p.column for p in predictors(study, frame, names)]


def cmd_summary(args: argparse.Namespace) -> int:
    import pandas as pd

    from simulator.analysis.study import measure
    from simulator.analysis.uncertainty import summarise

    study = _study(args)
    parts = []
    for name in args.measures:
        m = measure(study, name, per=args.per, role=args.role)
        by = _by_columns(study, m.frame, args.by)
        parts.append(summarise(m.frame, [m.column], by=by))
    table = pd.concat(parts, ignore_index=True)
    by = [c for name in args.by for c in _by_columns(study, table, [name])]
    _print_table(_printable(table, study, by))
    _write_table(table, args.output)
    return 0


def cmd_series(args: argparse.Namespace) -> int:
    from simulator.analysis.series import turn_table
    from simulator.analysis.study import measure

    study = _study(args)
    score = measure(study, args.score, unit="message")
    by = _by_columns(study, score.frame, args.by or ["role"])
    table = turn_table(score, by)
    _print_table(_printable(table.drop(columns=["score"]), study, by))
    _write_table(table, args.output)
    return 0


def cmd_granger(args: argparse.Namespace) -> int:
    from simulator.analysis.reporting import fmt
    from simulator.analysis.series import granger_summary, granger_table
    from simulator.analysis.study import measure

    study = _study(args)
    score = measure(study, args.score, unit="message")
    roles = study.roles()
    if (args.cause is None) != (args.effect is None):
        raise ConfigurationError("give both --cause and --effect, or neither (both directions)")
    if args.cause is not None:
        pairs = [(study.role(args.cause), study.role(args.effect))]
    elif len(roles) == 2:
        pairs = [(roles[0], roles[1]), (roles[1], roles[0])]
    else:
        raise ConfigurationError(
            f"the agents have {len(roles)} roles ({', '.join(roles)}): choose --cause and --effect"
        )
    table = granger_table(score, pairs, lag=args.lag, alpha=args.alpha)
    summary = granger_summary(table)
    for cause, effect in pairs:
        mine = table[(table["cause"] == cause) & (table["effect"] == effect)]
        tested = mine["p_value"].notna()
        significant = int(mine["significant"].fillna(False).sum())
        print(
            f"{cause} -> {effect} (lag {args.lag}): {int(tested.sum())} of {len(mine)} "
            f"conversation(s) tested, {significant} with p < {fmt(args.alpha)}"
        )
        reasons = mine.loc[~tested, "reason"].value_counts()
        for reason, n in reasons.items():
            print(f"  no test in {n}: {reason}")
    _print_table(_printable(summary, study))
    if args.output is not None:
        _write_table(table, args.output)
        path = _csv_path(args.output)
        summary_path = path.with_name(path.stem + "_summary.csv")
        summary.to_csv(summary_path, index=False)
        print(summary_path)
    return 0
