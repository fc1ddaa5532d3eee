"""Headless batches: ``simulator run SPEC.yaml``, ``simulator batches``, ``simulator resume BATCH``,
``simulator rerun BATCH``, ``simulator cancel BATCH``.

The spec is checked completely (shape, values, roles, factor levels) before the database is
opened or anything runs; its format is documented in docs/spec.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

from simulator.domain import Batch, CacheMode, Conversation, Estimate, Experiment, Ledger, Status
from simulator.domain.errors import NotFoundError, SimulatorError
from simulator.words import plural

if TYPE_CHECKING:
    from simulator.engine.batch import BatchRunner

EXIT_OK = 0
EXIT_UNFINISHED = 1  # some conversations failed, or the batch was cancelled


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "run",
        help="run a batch from a spec file (YAML or JSON)",
        description=(
            "Check SPEC (the experiment and the batch grid, see docs/spec.md), print how many "
            "conversations, LLM calls and tokens it takes, then run it with a progress bar and a "
            "line per finished conversation. Interrupted or cancelled batches continue with "
            "'simulator resume BATCH'."
        ),
    )
    run.add_argument("spec", metavar="SPEC", help="the spec file (.yaml, .yml or .json)")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="check the spec and print the estimate; run nothing and store nothing",
    )
    run.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="start without asking (the question is only asked at a terminal)",
    )
    run.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="conversations at once (overrides the spec's batch.concurrency)",
    )
    run.set_defaults(func=cmd_run, uses_database=True)

    batches = sub.add_parser(
        "batches", help="list batches with their status and progress", description="List batches."
    )
    batches.add_argument(
        "--experiment", metavar="EXPERIMENT", help="only batches of this experiment (id or name)"
    )
    batches.add_argument(
        "--ledger",
        metavar="BATCH",
        help="what BATCH spent by model and role: calls, answers from the cache, tokens, "
        "prompt tokens from the servers' caches, cost",
    )
    batches.set_defaults(func=cmd_batches, uses_database=True)

    resume = sub.add_parser(
        "resume",
        help="continue an interrupted, cancelled or partly failed batch",
        description=(
            "Run every unfinished conversation of BATCH (pending, interrupted, cancelled or "
            "failed) from its last stored message. Nothing stored is asked again."
        ),
    )
    resume.add_argument("batch", metavar="BATCH", help="batch id (or a unique prefix of it)")
    _cap_options(resume, "raise (or set) the batch's")
    resume.set_defaults(func=cmd_resume, uses_database=True)

    rerun = sub.add_parser(
        "rerun",
        help="run a batch's spec again as a new batch, answers reused from the response cache",
        description=(
            "Create a new batch from BATCH's spec (the same grid, seeds and models, the "
            "experiment as it is now) and run it. With the response cache on (reuse, the "
            "default here) every answer stored in the cache is served from it, so a rerun of "
            "a batch that ran with its cache on makes no model call; see docs/cost.md."
        ),
    )
    rerun.add_argument("batch", metavar="BATCH", help="batch id (or a unique prefix of it)")
    rerun.add_argument(
        "--cache",
        choices=[m.value for m in CacheMode],
        default=CacheMode.reuse.value,
        help="the new batch's response cache: reuse (default), refresh or off",
    )
    _cap_options(rerun, "the new batch's")
    rerun.add_argument(
        "-y", "--yes", action="store_true", help="start without asking (asked only at a terminal)"
    )
    rerun.set_defaults(func=cmd_rerun, uses_database=True)

    cancel = sub.add_parser(
        "cancel",
        help="stop a running batch (it can be resumed later)",
        description=(
            "Mark BATCH cancelled. A process running it stops its conversations within a "
            "second; everything stored is kept and 'simulator resume BATCH' continues it."
        ),
    )
    cancel.add_argument("batch", metavar="BATCH", help="batch id (or a unique prefix of it)")
    cancel.set_defaults(func=cmd_cancel, uses_database=True)


def _cap_options(parser: argparse.ArgumentParser, whose: str) -> None:
    parser.add_argument(
        "--max-cost-usd",
        type=float,
        metavar="USD",
        help=f"{whose} cost cap in USD (it stops, resumable, before a call that would pass it)",
    )
    parser.add_argument(
        "--max-total-tokens",
        type=int,
        metavar="N",
        help=f"{whose} cap on tokens, prompts and answers together",
    )


# --------------------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> int:
    from simulator.engine.spec import load_spec

    run_spec = load_spec(args.spec)  # every shape/value problem is reported here, before any I/O
    if args.concurrency is not None:
        if args.concurrency < 1:
            raise SimulatorError("--concurrency must be at least 1.", title="Invalid option")
        run_spec.overrides["concurrency"] = args.concurrency
    _merge_price_table(run_spec)
    definition = run_spec.experiment.definition
    if definition is not None:
        from simulator.services.experiments import check_placeholders

        check_placeholders(definition)  # a misspelt <Role_NOUN> is reported before anything runs
        run_spec.batch_spec(definition)  # problems against the experiment, still before any I/O
        if args.dry_run:
            _print_plan(definition, run_spec, _console())
            return EXIT_OK
    return _interruptible(_run(args, run_spec))


async def _run(args: argparse.Namespace, run_spec: Any) -> int:
    from simulator.commands.common import open_session
    from simulator.engine.grid import expand_grid

    console = _console()
    async with open_session() as services:
        store, user = services.store, services.user
        experiment = await _resolve_experiment(store, run_spec.experiment, user, store_it=False)
        spec = run_spec.batch_spec(experiment)
        _print_plan(experiment, run_spec, console, await _rates(store, experiment.id))
        if args.dry_run:
            return EXIT_OK
        if not args.yes and sys.stdin.isatty() and not _confirm(console):
            console.print("Nothing started.")
            return EXIT_OK
        with _signals_stop(services.batches) as runner:
            # The models first: a batch that cannot run stores nothing (nor its experiment).
            await runner.preflight(experiment, expand_grid(experiment, spec))
            experiment = await _resolve_experiment(store, run_spec.experiment, user, store_it=True)
            spec = spec.model_copy(update={"experiment_id": experiment.id})
            batch = await runner.start(
                experiment, spec, owner=user, prices=run_spec.prices, preflight=False
            )
            console.print(
                f"Batch [bold]{batch.id}[/] started: {plural(batch.cells_total, 'conversation')} "
                f"of {experiment.name!r}."
            )
            batch = await _drive(runner, batch, experiment, console)
        return _report_end(batch, console, await _ledger(store, batch.id))


def cmd_resume(args: argparse.Namespace) -> int:
    _check_caps(args)
    return _interruptible(_resume(args.batch, args.max_cost_usd, args.max_total_tokens))


def _check_caps(args: argparse.Namespace) -> None:
    """Bad cap options: one message, exit code 2, before anything is opened."""
    from simulator.domain.models import BOUNDS, bound_message

    for name in ("max_cost_usd", "max_total_tokens"):
        value = getattr(args, name, None)
        low, high = BOUNDS[name]
        if value is not None and not low <= value <= high:
            option = "--" + name.replace("_", "-")
            raise SimulatorError(f"{option} {bound_message(name, value)}", title="Invalid option")


async def _resume(
    ref: str, max_cost_usd: float | None = None, max_total_tokens: int | None = None
) -> int:
    from simulator.commands.common import open_session

    console = _console()
    async with open_session() as services:
        store = services.store
        batch = await _find_batch(store, ref)
        if batch.status is Status.done:
            console.print(f"Batch {batch.id} is already done.")
            return EXIT_OK
        experiment = await store.experiments.get(batch.experiment_id)
        if experiment is None:
            raise NotFoundError(f"The experiment of batch {batch.id} no longer exists.")
        console.print(f"Resuming batch [bold]{batch.id}[/] of {experiment.name!r}.")
        with _signals_stop(services.batches) as runner:
            if max_cost_usd is not None or max_total_tokens is not None:
                batch = await runner.set_caps(
                    batch.id, max_cost_usd=max_cost_usd, max_total_tokens=max_total_tokens
                )
                console.print(f"Budget caps: {_caps_text(batch)}.")
            batch = await _drive(runner, batch, experiment, console, resume=True)
        return _report_end(batch, console, await _ledger(store, batch.id))


def cmd_rerun(args: argparse.Namespace) -> int:
    _check_caps(args)
    return _interruptible(_rerun(args))


async def _rerun(args: argparse.Namespace) -> int:
    from simulator.commands.common import open_session

    console = _console()
    async with open_session() as services:
        store, user = services.store, services.user
        source = await _find_batch(store, args.batch)
        experiment = await store.experiments.get(source.experiment_id)
        if experiment is None:
            raise NotFoundError(f"The experiment of batch {source.id} no longer exists.")
        update: dict[str, Any] = {"cache": CacheMode(args.cache)}
        if args.max_cost_usd is not None:
            update["max_cost_usd"] = args.max_cost_usd
        if args.max_total_tokens is not None:
            update["max_total_tokens"] = args.max_total_tokens
        spec = source.spec.model_copy(update=update)
        console.print(
            f"Rerunning batch [bold]{source.id}[/] of {experiment.name!r} as a new batch "
            f"(response cache: {spec.cache.value})."
        )
        if experiment.version != source.experiment_version:
            console.print(
                f"[yellow]Note[/]: the experiment changed since that batch (version "
                f"{source.experiment_version}, now {experiment.version}); prompts that changed "
                "are asked again."
            )
        if not args.yes and sys.stdin.isatty() and not _confirm(console):
            console.print("Nothing started.")
            return EXIT_OK
        with _signals_stop(services.batches) as runner:
            batch = await runner.start(experiment, spec, owner=user, prices=source.prices)
            console.print(
                f"Batch [bold]{batch.id}[/] started: {batch.cells_total} conversations "
                f"of {experiment.name!r}."
            )
            batch = await _drive(runner, batch, experiment, console)
        return _report_end(batch, console, await _ledger(store, batch.id))


def cmd_cancel(args: argparse.Namespace) -> int:
    return asyncio.run(_cancel(args.batch))


async def _cancel(ref: str) -> int:
    from simulator.commands.common import open_session

    console = _console()
    async with open_session() as services:
        batch = await _find_batch(services.store, ref)
        if batch.status is Status.done:
            console.print(f"Batch {batch.id} is already done; nothing to cancel.")
            return EXIT_OK
        await services.batches.cancel(batch.id, reason="cancelled with 'simulator cancel'")
    console.print(
        f"Batch {batch.id} cancelled. A process running it stops within a second; "
        f"continue it with: simulator resume {batch.id}"
    )
    return EXIT_OK


def cmd_batches(args: argparse.Namespace) -> int:
    if getattr(args, "ledger", None):
        return asyncio.run(_batch_ledger(args.ledger))
    return asyncio.run(_batches(args.experiment))


async def _batch_ledger(ref: str) -> int:
    from simulator.commands.common import open_session

    console = _console()
    async with open_session() as services:
        batch = await _find_batch(services.store, ref)
        ledger = await _ledger(services.store, batch.id)
    if ledger is None or not ledger.rows:
        console.print(f"Batch {batch.id} has made no model call yet.")
        return EXIT_OK
    console.print(ledger_table(ledger, title=f"Ledger of batch {batch.id}"))
    for line in ledger_summary(ledger, batch):
        console.print(line)
    return EXIT_OK


def ledger_table(ledger: Ledger, title: str | None = None) -> Any:
    """The ledger by model and role (purposes summed), one row each, as a rich table."""
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    table.add_column("model", no_wrap=True)
    table.add_column("role")
    for col in ("calls", "from cache", "prompt tokens", "completion", "cached prompt", "cost"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in ledger.by_model_and_role():
        part = Ledger(batch_id=ledger.batch_id, rows=[r])
        table.add_row(
            r.model,
            r.role,
            f"{r.calls:,}",
            f"{r.cache_hits:,}",
            f"{r.prompt_tokens:,}",
            f"{r.completion_tokens:,}",
            f"{r.cached_tokens:,}",
            cost_text(part),
        )
    return table


async def _batches(experiment_ref: str | None) -> int:
    from rich.table import Table

    from simulator.commands.common import open_session

    console = _console()
    async with open_session() as services:
        store = services.store
        experiment_id = None
        if experiment_ref:
            experiment_id = (await services.experiments.find(experiment_ref)).id
        batches = await store.batches.list(experiment_id=experiment_id)
        if not batches:
            console.print("No batches yet. Start one with: simulator run SPEC.yaml")
            return EXIT_OK
        names: dict[str, str] = {}
        runner = services.batches
        ledgers = {lg.batch_id: lg for lg in await store.ledgers.get_many([b.id for b in batches])}
        table = Table(title="Batches", show_lines=False)
        table.add_column("batch", no_wrap=True)
        table.add_column("experiment")
        table.add_column("status", no_wrap=True)
        for col in ("done", "failed", "total", "calls", "cached", "tokens", "cost"):
            table.add_column(col, justify="right", no_wrap=True)
        table.add_column("created (UTC)", no_wrap=True)
        table.add_column("owner")
        working: list[str] = []
        for b in batches:
            if b.experiment_id not in names:
                exp = await store.experiments.get(b.experiment_id)
                names[b.experiment_id] = exp.name if exp else "(deleted)"
            counts = await runner.progress(b.id)
            ledger = ledgers.get(b.id)
            table.add_row(
                b.id[:12],
                names[b.experiment_id],
                b.status.value,
                str(counts.done),
                str(counts.failed),
                str(b.cells_total),
                *_ledger_cells(ledger),
                b.created_at.strftime("%Y-%m-%d %H:%M"),
                b.owner,
            )
            if b.status is Status.running:
                working.append(f"Batch {b.id[:12]}: {await _workers_text(runner, b)}")
        console.print(table)
        for line in working:  # which worker runs what
            console.print(line)
    return EXIT_OK


async def _workers_text(runner: Any, batch: Batch) -> str:
    """Who works on a running batch: each live worker and the conversations it holds."""
    from simulator.domain.cells import conversation_number

    workers = await runner.who_runs(batch.id)
    if not workers:
        return "no live worker (its runner stopped answering; resume it, or start a worker)"
    parts = []
    for name, held in workers.items():
        numbers = ", ".join(f"#{conversation_number(c)}" for c in held[:8])
        more = f" and {len(held) - 8} more" if len(held) > 8 else ""
        parts.append(f"{name} runs {numbers}{more}" if held else f"{name} (between two)")
    return "; ".join(parts)


# --------------------------------------------------------------------------- helpers


_running: list[str] = []  # the batch being driven, for the hint after Ctrl-C
_runners: list[BatchRunner] = []  # the batch runners of this command, told why the run stops
SIGNAL_REASONS = {"SIGINT": "Ctrl-C (SIGINT)", "SIGTERM": "stopped by SIGTERM (kill)"}


async def _stop_on_signals(main: Any) -> int:
    """Ctrl-C (SIGINT) and ``kill PID`` (SIGTERM) stop a batch the same way: its conversations
    stop, it is stored ``interrupted`` with the signal as its reason, and the command ends with
    the resume hint (exit code 130). A second signal stops at once."""
    import signal

    task = asyncio.ensure_future(main)
    loop = asyncio.get_running_loop()
    received: list[str] = []

    def on_signal(name: str) -> None:
        received.append(name)
        stopped = []
        if len(received) == 1:
            for runner in _runners:
                stopped += runner.interrupt(SIGNAL_REASONS[name])
        if not stopped:
            task.cancel()

    installed = []
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig.name)
            installed.append(sig)
    except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
        for sig in installed:
            loop.remove_signal_handler(sig)
        return await task
    try:
        result = await task
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    if received:
        raise KeyboardInterrupt
    return result


def _interruptible(main: Any) -> int:
    """Run ``main``; on Ctrl-C or SIGTERM the batch is left interrupted (resumable) and we say
    how to resume."""
    from simulator.engine.batch import StoreLostError

    _running.clear()
    try:
        return asyncio.run(_stop_on_signals(main))
    except StoreLostError as exc:  # not bad input: the run stopped, and resumes later
        print(f"error: {exc.title}: {exc}", file=sys.stderr)
        return EXIT_UNFINISHED
    except KeyboardInterrupt:
        if _running:
            print(
                f"Interrupted: batch {_running[-1]} stopped; everything stored is kept. "
                f"Continue it with: simulator resume {_running[-1]}",
                file=sys.stderr,
            )
        raise
    finally:
        _stop_watchdogs()


def _merge_price_table(run_spec: Any) -> None:
    """Prices of the PRICE_TABLE file, unless the spec's own ``prices:`` names the model."""
    from simulator.commands.common import command_root
    from simulator.engine.spec import load_price_table

    path = command_root().settings.price_table
    if path is not None:
        table = load_price_table(path)
        table.update(run_spec.prices)
        run_spec.prices.clear()
        run_spec.prices.update(table)


def _console() -> Any:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:  # logs and pipes: do not squeeze tables into 80 columns
        console.width = max(console.width, 140)
    return console


def _ledger_cells(ledger: Ledger | None) -> list[str]:
    """``simulator batches``' columns: calls, answers from the cache, tokens, cost."""
    if ledger is None:
        return ["-", "-", "-", "-"]
    return [
        f"{ledger.calls:,}",
        f"{ledger.cache_hits:,}",
        f"{ledger.tokens:,}",
        cost_text(ledger),
    ]


def cost_text(ledger: Ledger) -> str:
    """``$0.0123``; ``$0.0123 + ?`` when some calls were of a model without a price."""
    if ledger.calls and ledger.unpriced_calls == ledger.calls:
        return "?"
    known = f"${ledger.cost_usd:,.4f}"
    return f"{known} + ?" if ledger.unpriced_calls else known


def ledger_summary(ledger: Ledger | None, batch: Batch | None = None) -> list[str]:
    """The run summary's lines: the model calls (and the answers served from the response
    cache, when the batch's cache is on), the tokens (and the share of prompt tokens the
    servers served from their prompt caches, when they reported any), the cost."""
    if ledger is None:
        return []
    calls = f"Model calls: {ledger.calls:,}"
    cache_on = batch is not None and batch.spec.cache is not CacheMode.off
    if cache_on or ledger.cache_hits:
        answers = ledger.calls + ledger.cache_hits
        calls += f"; answers from the response cache: {ledger.cache_hits:,} of {answers:,}"
    tokens = f"Tokens: {ledger.tokens:,} ({ledger.prompt_tokens:,} prompt"
    share = ledger.cached_share
    if ledger.cached_tokens and share is not None:
        tokens += (
            f", of which {ledger.cached_tokens:,} served from the servers' prompt caches: "
            f"{share:.0%}"
        )
    unpriced = (
        f" ({ledger.unpriced_calls:,} calls of models without a price)"
        if ledger.unpriced_calls
        else ""
    )
    return [f"{calls}.", f"{tokens}). Cost: {cost_text(ledger)}{unpriced}."]


def _worth_a_breakdown(ledger: Ledger) -> bool:
    """The summary shows the ledger by model and role when a real model was called (a dryrun
    rehearsal costs nothing, so its breakdown would only repeat the totals)."""
    return any(not r.model.startswith("dryrun:") for r in ledger.rows)


def _caps_text(batch: Batch) -> str:
    spec = batch.spec
    caps = []
    if spec.max_cost_usd is not None:
        caps.append(f"max_cost_usd {spec.max_cost_usd:g}")
    if spec.max_total_tokens is not None:
        caps.append(f"max_total_tokens {spec.max_total_tokens:,}")
    return ", ".join(caps) or "none"


async def _ledger(store: Any, batch_id: str) -> Ledger | None:
    repo = getattr(store, "ledgers", None)
    return await repo.get(batch_id) if repo is not None else None


async def _rates(store: Any, experiment_id: str) -> Any:
    from simulator.engine.ledger import learned_rates

    return await learned_rates(store, experiment_id) or None


def _print_plan(
    experiment: Experiment, run_spec: Any, console: Any, measured: Any = None
) -> Estimate:
    from simulator.domain.errors import SpecError
    from simulator.services.batches import GRID, plan_spec

    spec = run_spec.batch_spec(experiment)
    plan = plan_spec(experiment, spec, run_spec.prices, measured=measured)
    if plan.estimate is None:  # the grid is too large (the spec's own checks passed)
        raise SpecError(f"{run_spec.source}: batch: {plan.problems[GRID]}")
    est = plan.estimate
    console.print(f"Experiment: [bold]{experiment.name}[/] ({experiment.kind.value})")
    console.print(f"Grid: {plan.grid} = {plural(len(plan.cells), 'cell')}")
    models = sorted({ms.label for ms in spec.model_sets})
    console.print(f"Models: {'; '.join(models)}")
    cost = (
        f", about ${est.cost_usd:,.2f}"
        if est.cost_usd is not None
        else (" (cost: a model has no price)" if run_spec.prices else "")
    )
    learnt = (
        f" (answer lengths measured on {est.measured_calls:,} calls of earlier batches)"
        if est.measured_calls
        else ""
    )
    console.print(
        f"Estimate: {plural(est.conversations, 'conversation')}, "
        f"{plural(est.llm_calls, 'LLM call')}, about {plural(est.tokens, 'token')}{cost}{learnt}"
    )
    if spec.cache is not CacheMode.off:
        console.print(f"Response cache: {spec.cache.value} (answers found there cost nothing).")
    if spec.max_cost_usd is not None or spec.max_total_tokens is not None:
        caps = [
            f"max_cost_usd {spec.max_cost_usd:g}" if spec.max_cost_usd is not None else "",
            f"max_total_tokens {spec.max_total_tokens:,}"
            if spec.max_total_tokens is not None
            else "",
        ]
        console.print(f"Budget caps: {', '.join(c for c in caps if c)}.")
    return est


def _confirm(console: Any) -> bool:
    answer = console.input("Start this batch? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


_CONTENT_EXCLUDE = {
    "id",
    "owner",
    "created_at",
    "updated_at",
    "version",
    "parent_id",
    "note",
    "favourite",
}


def same_content(a: Experiment, b: Experiment) -> bool:
    """Two experiments define the same study (ignoring identity, ownership, view state and the
    sections' generated ids)."""
    return _content(a) == _content(b)


def _content(experiment: Experiment) -> Any:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "id"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(experiment.model_dump(mode="json", exclude=_CONTENT_EXCLUDE))


async def _resolve_experiment(store: Any, ref: Any, user: str, *, store_it: bool) -> Experiment:
    """The experiment a spec names. A definition (inline, file, example) is stored once: a stored
    experiment of this user with the same name and content is reused, so running a spec again
    adds batches to one experiment instead of copying it. With ``store_it`` False a definition
    not stored yet is returned as is (for the estimate)."""
    from simulator.db.store import ExperimentFilter
    from simulator.services.experiments import ExperimentService

    service = ExperimentService(store, user)
    if ref.definition is None:
        return await service.find(ref.id or ref.name)
    definition: Experiment = ref.definition
    for stored in await store.experiments.list(ExperimentFilter(text=definition.name)):
        if stored.owner == user and same_content(stored, definition):
            return stored
    if not store_it:
        return definition
    return await service.create(definition)


async def _find_batch(store: Any, ref: str) -> Batch:
    from simulator.db.ids import resolve_batch

    return await resolve_batch(store, ref)


@contextmanager
def _signals_stop(runner: BatchRunner) -> Iterator[BatchRunner]:
    """While inside, Ctrl-C and SIGTERM interrupt ``runner``'s batches (``_stop_on_signals``)."""
    _runners.append(runner)
    try:
        yield runner
    finally:
        if runner in _runners:
            _runners.remove(runner)


async def _drive(
    runner: Any,
    batch: Batch,
    experiment: Experiment,
    console: Any,
    *,
    resume: bool = False,
    join: bool = False,
) -> Batch:
    """Run (or resume) the batch with a progress bar and a line per finished conversation."""
    from rich.markup import escape

    from simulator.db.store import ConversationFilter
    from simulator.domain.cells import conversation_number
    from simulator.engine.batch import StoreLostError
    from simulator.engine.events import (
        BatchProgress,
        ConversationFailed,
        ConversationFinished,
        ConversationWarning,
        MessageStored,
    )
    from simulator.engine.grid import describe_cell, planned_calls
    from simulator.llm.base import LLMEvent

    conversations: dict[str, Conversation] = {
        c.id: c
        for c in await runner.store.conversations.list(ConversationFilter(batch_id=batch.id))
    }

    def label(cid: str) -> str:
        c = conversations.get(cid)
        return f"#{conversation_number(c)} {describe_cell(c.cell)}" if c else cid

    # Model calls (agent turns, summaries, manager choices, game decisions) made of those
    # planned: the bar counts conversations, this says how far the running ones are.
    calls = sum(max(c.calls_done, c.messages_done) for c in conversations.values())
    memo: dict[Any, Any] = {}  # each distinct cell worked out once
    planned = sum(planned_calls(experiment, c.cell, memo=memo) for c in conversations.values())
    _running.append(batch.id)
    warned: dict[str, int] = {}  # warning -> conversations it was recorded on
    try:
        with _progress(console, batch, experiment, f"{calls:,}/{planned:,}") as (progress, task):

            def on_event(event: Any) -> None:
                nonlocal calls
                if (
                    isinstance(event, MessageStored)
                    and event.batch_id == batch.id
                    and event.message.model is not None
                ):
                    calls += 1
                    progress.update(task, calls=f"{calls:,}/{planned:,}")
                elif isinstance(event, BatchProgress) and event.batch_id == batch.id:
                    progress.update(
                        task,
                        total=event.total,
                        completed=event.done + event.failed,
                        failed=event.failed,
                    )
                elif isinstance(event, ConversationFinished) and event.batch_id == batch.id:
                    mark = "[green]done[/]" if event.status is Status.done else event.status.value
                    progress.console.print(f"  {mark}  {label(event.conversation_id)}")
                elif isinstance(event, ConversationFailed) and event.batch_id == batch.id:
                    progress.console.print(
                        f"  [red]failed[/]  {label(event.conversation_id)}: {event.error}"
                    )
                elif isinstance(event, ConversationWarning) and event.batch_id == batch.id:
                    if event.warning not in warned:  # once per warning; the total comes at the end
                        progress.console.print(
                            f"  [yellow]warning[/]  {label(event.conversation_id)}: "
                            + escape(event.text)
                        )
                    warned[event.warning] = warned.get(event.warning, 0) + 1
                elif isinstance(event, LLMEvent) and event.kind == "retry":
                    progress.console.print(f"  [yellow]retry[/]  {retry_line(event)}")

            unsubscribe = runner.bus.subscribe(on_event)
            unwatch = runner.bus.subscribe(partial(_exit_if_stuck_after_loss, batch.id))
            try:
                if join:
                    return await runner.run(batch.id, join=True)
                if resume:
                    return await runner.resume(batch.id)
                return await runner.run(batch.id)
            except StoreLostError:
                raise  # its message says what happened and how to resume
            except SimulatorError:
                progress.console.print(
                    f"Batch {batch.id} is stored but did not run; once the problem below is fixed, "
                    f"continue it with: simulator resume {batch.id}"
                )
                raise
            finally:
                unsubscribe()
                unwatch()
    finally:  # after the progress bar, so the total is the last word before the batch's end
        for warning, n in warned.items():
            console.print(
                f"[yellow]Warning[/]: {escape(warning)} on {n} conversation(s) of this run "
                "(stored in each conversation's warnings)."
            )


#: After the database stopped answering, a run that has not ended within this many seconds gives
#: up: it says what ``StoreLostError`` says and exits (everything stored is stored already).
STUCK_AFTER_LOSS_S = 60.0


def _exit_if_stuck_after_loss(batch_id: str, event: Any) -> None:
    """A safety net for the command line: once a run reported its database lost, the process
    ends within ``STUCK_AFTER_LOSS_S`` whatever a driver or a task still waits for; every
    thread's stack goes to the log first, so a hang can be traced."""
    from simulator.engine.events import StoreLost

    if not isinstance(event, StoreLost) or event.batch_id != batch_id:
        return

    def give_up() -> None:
        import faulthandler
        import logging
        import os

        from simulator.engine.batch import store_lost_error

        log = logging.getLogger(__name__)
        log.error(
            "batch %s: the run did not end within %g s after the database was lost; exiting",
            batch_id,
            STUCK_AFTER_LOSS_S,
        )
        for handler in logging.getLogger().handlers:
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.FileHandler) and stream is not None:
                handler.flush()
                faulthandler.dump_traceback(file=stream, all_threads=True)
                stream.flush()
        exc = store_lost_error(batch_id, event.error.splitlines()[0] if event.error else "")
        print(f"error: {exc.title}: {exc}", file=sys.stderr, flush=True)
        os._exit(EXIT_UNFINISHED)

    timer = threading.Timer(STUCK_AFTER_LOSS_S, give_up)
    timer.daemon = True
    _watchdogs.append(timer)
    timer.start()


_watchdogs: list[threading.Timer] = []


def _stop_watchdogs() -> None:
    """The command ended (its event loop is closed): no safety net is needed any more."""
    while _watchdogs:
        _watchdogs.pop().cancel()


def retry_line(event: Any) -> str:
    """``dryrun:dryrun, Guard 1 day 1 turn 3, attempt 1: 503: ...; again in 0.4 s``."""
    meta = event.meta
    who = f", {meta.agent or meta.purpose} day {meta.day} turn {meta.turn}" if meta else ""
    return (
        f"{event.model}{who}, attempt {event.attempt}: {event.reason}; "
        f"again in {event.delay_s:.1f} s"
    )


@contextmanager
def _progress(
    console: Any, batch: Batch, experiment: Experiment, calls: str = ""
) -> Iterator[tuple[Any, Any]]:
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
        TextColumn("calls {task.fields[calls]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task(
            f"batch {batch.id[:8]} {experiment.name}",
            total=batch.cells_total,
            failed=0,
            calls=calls,
        )
        yield progress, task


def _report_end(batch: Batch, console: Any, ledger: Ledger | None = None) -> int:
    if ledger is not None and _worth_a_breakdown(ledger):
        console.print(ledger_table(ledger))
    for line in ledger_summary(ledger, batch):
        console.print(line)
    if batch.status is Status.done:
        console.print(f"Batch {batch.id} done: {plural(batch.cells_total, 'conversation')}.")
        return EXIT_OK
    if batch.status is Status.failed:
        console.print(f"[red]Batch {batch.id}: {batch.error}[/]")
    elif batch.stop_reason:
        console.print(f"Batch {batch.id} {batch.status.value}: {batch.stop_reason}.")
        if "simulator resume" in batch.stop_reason:  # a cap's reason says how to continue
            return EXIT_UNFINISHED
    else:
        console.print(f"Batch {batch.id} {batch.status.value}.")
    console.print(f"Continue it with: simulator resume {batch.id}")
    return EXIT_UNFINISHED
