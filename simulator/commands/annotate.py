"""``simulator annotate`` (judges and scorers) and ``simulator interview`` (agents, after a run).

Both choose conversations with the filters of ``simulator export`` (finished conversations only,
unless ``--status`` says otherwise), are idempotent (what is stored is never asked again) and
resumable (interrupted, the same command continues where it stopped). See docs/annotations.md.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from simulator.commands.export import add_filter_arguments, filter_from_args

EXIT_OK = 0
EXIT_UNFINISHED = 1  # some items failed; running the command again retries them

ANNOTATE_EPILOG = """\
annotators:
  judge             an LLM answers the rubric of --rubric FILE about each conversation (and/or
                    each message), through --model (provider:model, or dryrun:judge offline);
                    --rubric NAME: a rubric the selected experiment carries (a path that
                    exists wins over a name)
  moderation        OpenAI's moderation endpoint (or a compatible server: OPENAI_BASE_URL or
                    --base-url) scores every agent message; --model names the moderation model
  python:SCORER     a Python function from texts to scores: python:package.module:function, or
                    python:NAME for an entry point of the group simulator.scorers

examples:
  simulator annotate judge --rubric simulator/examples/rubrics/persuasion.yaml \\
      --experiment "Prison study" --model openai:gpt-4o-mini
  simulator annotate judge --rubric persuasion --experiment "Prison study" --model dryrun:judge
  simulator annotate moderation --experiment "Prison study"
  simulator annotate python:mylab.toxicity:score --batch 3f2a... --kind utterance
"""

INTERVIEW_EPILOG = """\
examples:
  simulator interview --experiment "Prison study" --factor goal=Escape --agent "Prisoner 1" \\
      --question "Looking back on today, what did you want from the guard?"
  simulator interview 3f2a9c... --question "Why did you vote that way?" --day 2
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    annotate = subparsers.add_parser(
        "annotate",
        help="annotate transcripts: an LLM judge with a rubric, moderation scores, a Python scorer",
        description=(
            "Annotate the selected conversations (the filters of 'simulator export'; finished "
            "conversations only unless --status is given) and store every answer and score, "
            "keyed by conversation, message, annotator, version and question. Items already "
            "stored are never asked again: an interrupted run continues where it stopped."
        ),
        epilog=ANNOTATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        conflict_handler="resolve",
    )
    add_model_filters(annotate)
    annotate.add_argument(
        "annotator",
        metavar="ANNOTATOR",
        help="judge, moderation, or python:SCORER (see below)",
    )
    annotate.add_argument(
        "--rubric",
        metavar="FILE|NAME",
        help="the judge's rubric: a YAML/JSON file, or the name of a rubric of the selected "
        "experiment (an existing path wins)",
    )
    annotate.add_argument(
        "--model",
        dest="annotator_model",
        metavar="MODEL",
        help="the judge's model (provider:model, e.g. openai:gpt-4o-mini, ollama:llama3.1:8b, "
        "dryrun:judge); for moderation, the moderation model (default omni-moderation-latest)",
    )
    annotate.add_argument(
        "--base-url",
        metavar="URL",
        help="the server of an openai (or ollama) model, e.g. http://localhost:8000/v1",
    )
    annotate.add_argument(
        "--concurrency",
        type=int,
        default=8,
        metavar="N",
        help="calls at once (default 8; each model endpoint's own limit applies too)",
    )
    annotate.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="messages per request of a scorer (moderation default 16, Python scorers 32)",
    )
    annotate.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would be annotated (items, stored, to do); call nothing, store nothing",
    )
    annotate.set_defaults(func=cmd_annotate, uses_database=True)

    interview = subparsers.add_parser(
        "interview",
        help="ask agents of finished conversations a question, in character",
        description=(
            "Ask chosen agents a question with exactly the context they had at the end of the "
            "run (or of --day): the dialogue as they saw it, or a game's last decision and their "
            "answer. Nothing is added to the conversation; answers are stored as annotations "
            "(annotator 'interview', the question in the key) and printed."
        ),
        epilog=INTERVIEW_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        conflict_handler="resolve",
    )
    add_model_filters(interview)
    interview.add_argument(
        "conversations", nargs="*", metavar="CONVERSATION", help="conversation ids (or filters)"
    )
    interview.add_argument("-q", "--question", required=True, help="the question, as sent")
    interview.add_argument(
        "--agent",
        action="append",
        metavar="NAME",
        help="an agent to interview, e.g. 'Prisoner 1' (repeatable; default every agent)",
    )
    interview.add_argument(
        "--day",
        type=int,
        metavar="N",
        help="the context at the end of day N (games: round or step N); default the end",
    )
    interview.add_argument(
        "--model",
        dest="annotator_model",
        metavar="MODEL",
        help="another model than the agent's own (provider:model)",
    )
    interview.add_argument("--base-url", metavar="URL", help="the server of --model")
    interview.add_argument(
        "--concurrency", type=int, default=8, metavar="N", help="interviews at once (default 8)"
    )
    interview.set_defaults(func=cmd_interview, uses_database=True)


def add_model_filters(parser: argparse.ArgumentParser) -> None:
    """The filters of ``simulator export``; its ``--model`` (conversations that used a model) is
    ``--agents-model`` here, because ``--model`` chooses the annotator's model."""
    add_filter_arguments(parser)
    for group in parser._action_groups:
        if group.title and group.title.startswith("filters"):
            group.add_argument(
                "--agents-model",
                dest="model",
                metavar="NAME",
                help="conversations in which any role, the summarizer or the manager used this "
                "model (the --model filter of 'simulator export')",
            )


# --------------------------------------------------------------------------- annotate


def cmd_annotate(args: argparse.Namespace) -> int:
    from simulator.annotations.service import AnnotatorSpec
    from simulator.domain.errors import ConfigurationError

    if args.concurrency < 1:
        raise ConfigurationError("--concurrency must be 1 or more")
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigurationError("--batch-size must be 1 or more")
    flt = filter_from_args(args)
    spec = AnnotatorSpec(
        annotator=args.annotator,
        rubric=args.rubric,
        model=args.annotator_model,
        base_url=args.base_url,
        kinds=tuple(args.kind) if args.kind else None,
        batch_size=args.batch_size,
    )
    return asyncio.run(_annotate(args, spec, flt))


async def _annotate(args: argparse.Namespace, spec: Any, flt: Any) -> int:
    from simulator.annotations.base import load_prices
    from simulator.annotations.service import AnnotationService, check_spec
    from simulator.commands.common import command_root, open_session

    root = command_root()
    prices = load_prices(root.settings)
    console = _console()
    check_spec(spec, backends=root.backends, prices=prices)  # bad input: before the database
    async with open_session() as services:
        service = AnnotationService(services.store, services.backends, services.bus, prices=prices)
        prepared = await service.prepare(spec, flt)
        return await _drive(service, prepared, args, console)


async def _drive(service: Any, prepared: Any, args: argparse.Namespace, console: Any) -> int:
    from simulator.annotations.events import AnnotationFailed, AnnotationsStored
    from simulator.annotations.service import describe_report

    annotator, plan = prepared.annotator, prepared.plan
    model = getattr(annotator, "model", None) or getattr(annotator, "ref", None)
    console.print(
        f"Annotator: [bold]{annotator.name}[/], version {annotator.version}"
        + (f" ({model.label})" if model is not None else "")
    )
    skipped = f" ({prepared.skipped} not finished, left out)" if prepared.skipped else ""
    console.print(
        f"Conversations: {len(plan.conversations)}{skipped}; items: {len(plan.items)}, "
        f"stored: {plan.stored}, to annotate: {len(plan.missing)}"
    )
    if args.dry_run:
        console.print("Dry run: nothing was called or stored.")
        return EXIT_OK
    if not plan.missing:
        console.print("Nothing to do: every item is annotated.")
        return EXIT_OK
    with _progress(console, f"annotate {annotator.name}", len(plan.missing)) as (progress, task):

        def on_event(event: Any) -> None:
            if isinstance(event, AnnotationsStored):
                progress.update(task, completed=event.done + event.failed, failed=event.failed)
            elif isinstance(event, AnnotationFailed):
                progress.console.print(f"  [red]failed[/] {event.items} item(s): {event.error}")

        unsubscribe = service.bus.subscribe(on_event)
        try:
            report = await service.run(prepared, concurrency=args.concurrency)
        finally:
            unsubscribe()
    console.print(f"Done: {describe_report(report)}.")
    if report.failed:
        console.print(
            f"{report.failed} item(s) failed; run the same command again to retry them "
            "(everything stored is kept)."
        )
        return EXIT_UNFINISHED
    return EXIT_OK


# --------------------------------------------------------------------------- interview


def cmd_interview(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from simulator.annotations.service import parse_model
    from simulator.domain.errors import ConfigurationError

    if args.concurrency < 1:
        raise ConfigurationError("--concurrency must be 1 or more")
    if args.day is not None and args.day < 1:
        raise ConfigurationError("--day must be 1 or more")
    if not args.question.strip():
        raise ConfigurationError("--question: give the question to ask")
    if args.kind:
        raise ConfigurationError("--kind selects messages; an interview is about agents")
    model = parse_model(args.annotator_model, args.base_url) if args.annotator_model else None
    if args.base_url and model is None:
        raise ConfigurationError("--base-url goes with --model")
    flt = filter_from_args(args)
    if args.conversations:
        ids = list(dict.fromkeys([*(flt.conversation_ids or []), *args.conversations]))
        flt = replace(flt, conversation_ids=ids)
    return asyncio.run(_interview(args, flt, model))


async def _interview(args: argparse.Namespace, flt: Any, model: Any) -> int:
    from simulator.annotations.base import AnnotationError, item_ids, load_prices
    from simulator.annotations.interview import InterviewAnnotator
    from simulator.annotations.service import AnnotationService, describe_report
    from simulator.commands.common import command_root, open_session
    from simulator.engine.grid import describe_cell

    prices = load_prices(command_root().settings)
    console = _console()
    async with open_session() as services:
        store, backends = services.store, services.backends
        annotator = InterviewAnnotator(
            store,
            backends,
            args.question,
            agents=args.agent,
            day=args.day,
            model=model,
            prices=prices,
        )
        service = AnnotationService(store, backends, services.bus, prices=prices)
        try:
            prepared = await service.prepare(annotator, flt)
        except AnnotationError:
            if args.agent:
                raise AnnotationError(
                    f"no selected conversation has an agent named "
                    f"{', '.join(repr(a) for a in args.agent)}; agent names look like "
                    "'Prisoner 1' (see the transcripts)"
                ) from None
            raise
        plan = prepared.plan
        console.print(
            f"Interviewing {len(plan.items)} agent(s) in {len(plan.conversations)} "
            f"conversation(s); {plan.stored} answer(s) stored before, "
            f"{len(plan.missing)} to ask."
        )
        report = await service.run(prepared, concurrency=args.concurrency)
        answers = {
            a.id: a
            for a in await store.annotations.get_many(
                [i for item in plan.items for i in item_ids(annotator, item)]
            )
        }
        for item in plan.items:
            conv = item.conversation
            answer = answers.get(item_ids(annotator, item)[0])
            where = f"#{conv.cell_index + 1} {describe_cell(conv.cell)}"
            console.print(f"\n[bold]{item.agent}[/] · {where} · {conv.id}", markup=True)
            if answer is None:
                console.print("  (no answer: the interview failed, see above)")
                continue
            day = (answer.data or {}).get("day")
            label = answer.model.label if answer.model else "?"
            console.print(f"  context: end of day {day} · model {label}", markup=False)
            console.print(f"  Q: {answer.question}", markup=False)
            console.print(f"  A: {answer.value if answer.value else '(fallback)'}", markup=False)
        console.print(f"\nDone: {describe_report(report)}.")
        return EXIT_UNFINISHED if report.failed else EXIT_OK


# --------------------------------------------------------------------------- output


def _console() -> Any:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:  # logs and pipes: do not squeeze lines into 80 columns
        console.width = max(console.width, 140)
    return console


@contextmanager
def _progress(console: Any, label: str, total: int) -> Iterator[tuple[Any, Any]]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task(label, total=total, failed=0)
        yield progress, task
