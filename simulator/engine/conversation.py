"""Preparing a conversation (its agents and rendered prompts) and running or resuming it.

``prepare_conversation`` freezes everything a run needs into the stored conversation: agent names,
each agent's system prompt rendered for every day and its model, the kickoff, the summarizer's
prompt for every day, the manager's prompt, the seed and the budget. ``run_conversation`` plays it
through the kind's scenario runner and the journal; called again on an unfinished conversation it
resumes where the stored messages end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from simulator.db.store import STORE_LOST, Store, is_store_unreachable
from simulator.domain import (
    Agent,
    Conversation,
    Experiment,
    GridCell,
    Status,
    new_id,
)
from simulator.domain.errors import NotFoundError, SimulatorError, SpecError
from simulator.engine.budget import day_budgets
from simulator.engine.events import ConversationFailed, EventBus
from simulator.engine.journal import Journal
from simulator.engine.kinds import KindCatalog, resolve, uses_days
from simulator.engine.speakers import ChooseSpeaker
from simulator.llm.base import ChatService

log = logging.getLogger(__name__)

STOPPED = "stopped before the end"  # a cancelled task's reason, until a batch runner says more
QUIET_WRITE_S = 1.5  # how long a stopping conversation waits to store its end

MANAGER_PROMPT = (
    "You moderate a conversation among {participants}. You do not take part in it. After each "
    "turn you read the conversation so far and choose who speaks next, so that the "
    "conversation flows naturally: usually someone who was addressed, or who has a reason to "
    "answer. You answer with one name only."
)


def manager_prompt(agents: list[Agent]) -> str:
    """The manager's system prompt: names and roles only (never the agents' private prompts)."""
    participants = ", ".join(f"{a.name} ({a.role})" for a in agents)
    return MANAGER_PROMPT.format(participants=participants)


async def prepare_conversation(
    store: Store,
    experiment: Experiment,
    cell: GridCell,
    *,
    batch_id: str | None = None,
    owner: str = "",
    cell_index: int = 0,
    conversation_id: str | None = None,
    kinds: KindCatalog | None = None,
) -> Conversation:
    """Render and store a pending conversation for ``cell`` (idempotent given ``conversation_id``:
    the stored conversation is returned unchanged)."""
    if conversation_id is not None:
        existing = await store.conversations.get(conversation_id)
        if existing is not None:
            return existing
    conversation = build_conversation(
        experiment,
        cell,
        batch_id=batch_id,
        owner=owner,
        cell_index=cell_index,
        conversation_id=conversation_id,
        kinds=kinds,
    )
    return await store.conversations.create(conversation)


def build_conversation(
    experiment: Experiment,
    cell: GridCell,
    *,
    batch_id: str | None = None,
    owner: str = "",
    cell_index: int = 0,
    conversation_id: str | None = None,
    kinds: KindCatalog | None = None,
) -> Conversation:
    """The conversation ``prepare_conversation`` stores (pure: no I/O). The kind comes from
    ``kinds`` (else the installed registry): a dialogue's budget is checked against its days."""
    from simulator.roles import (
        agent_names,
        render_starting_message,
        render_summarizer_prompt,
        render_system_prompt,
    )

    known = {r.name for r in experiment.roles}
    unknown = [r for r in cell.counts if r not in known]
    if unknown:
        raise SpecError(
            f"the grid cell names role(s) {unknown} that experiment {experiment.name!r} does "
            f"not define (its roles: {', '.join(sorted(known))})"
        )
    counts = {r.name: cell.counts.get(r.name, 0) for r in experiment.roles if r.name in cell.counts}
    if sum(counts.values()) < 1:
        raise SpecError("a conversation needs at least one agent")
    if uses_days(resolve(kinds).get(experiment.kind)):
        day_budgets(cell.total_messages, cell.days)  # raises a SpecError the user can act on
    factors = dict(cell.factors)
    agents: list[Agent] = []
    for name, role in agent_names(experiment.roles, counts):
        # every day's prompt, rendered now: what each day sends is fixed (and stored) before
        # the first call, so a resumed day sends exactly what it sent before the interruption
        prompts = per_day(
            lambda day, name=name, role=role: render_system_prompt(  # type: ignore[misc]
                experiment,
                experiment.role(role),
                counts,
                name=name,
                factors=factors,
                day=day,
                days=cell.days,
            ),
            cell.days,
        )
        agents.append(
            Agent(
                name=name,
                role=role,
                model=cell.models.for_role(role),
                system_prompt=prompts[0],
                system_prompts=prompts,
            )
        )
    summarizer_prompts = per_day(
        lambda day: render_summarizer_prompt(
            experiment, counts, factors=factors, day=day, days=cell.days
        ),
        cell.days,
    )
    return Conversation(
        id=conversation_id or new_id(),
        experiment_id=experiment.id,
        experiment_version=experiment.version,
        batch_id=batch_id,
        cell_index=cell_index,
        owner=owner,
        kind=experiment.kind,
        cell=cell,
        status=Status.pending,
        seed=cell.seed,
        agents=agents,
        kickoff=render_starting_message(experiment, counts, factors=factors, day=1, days=cell.days),
        summarizer_prompt=summarizer_prompts[0],
        summarizer_prompts=summarizer_prompts,
        manager_prompt=manager_prompt(agents),
        budget=cell.total_messages,
    )


def per_day(render: Callable[[int], str], days: int) -> list[str]:
    """``[render(1), ..., render(days)]``, rendering twice only when day 2 reads like day 1: the
    day reaches a prompt only through ``<DAY>``, so a prompt equal on two days is equal on all."""
    first = render(1)
    if days == 1:
        return [first]
    second = render(2)
    if second == first:
        return [first] * days
    return [first, second, *(render(day) for day in range(3, days + 1))]


async def run_conversation(
    store: Store,
    backends: ChatService,
    conversation_id: str,
    *,
    bus: EventBus | None = None,
    choose_speaker: ChooseSpeaker | None = None,
    kinds: KindCatalog | None = None,
    conversation: Conversation | None = None,
    experiment: Experiment | None = None,
    lease_holder: str | None = None,
    started: bool = False,
) -> Conversation:
    """Run (or resume) a conversation to its end; returns it with its final status. Its kind's
    runner comes from ``kinds`` (else the registry installed for this process).

    ``conversation`` and ``experiment``, when the caller has just read them (a batch runner
    leasing the conversation gets it back from the lease's write; its experiment is the
    batch's), spare the two reads; a mismatched one is ignored and read again.
    ``lease_holder``: the batch worker whose lease the conversation's end releases, in the same
    write (the returned conversation then has no ``runner``). ``started``: the lease's write
    also started the conversation, which had never started (``take_lease_and_start``).

    A done conversation is returned as is. Failures of the models, the prompts or the stored data
    end the run with status ``failed`` and a readable ``error`` (every message stored so far is
    kept, and running it again resumes from there). Cancelling the task stores ``interrupted``
    (a batch runner then records why). When the database itself stops answering, nothing more
    is written: the failure is raised for the caller (``db.store.is_store_unreachable``).
    """
    if conversation is None or conversation.id != conversation_id:
        conversation = await store.conversations.get(conversation_id)
    if conversation is None:
        raise NotFoundError(f"Conversation {conversation_id} does not exist (it may be deleted).")
    if conversation.status is Status.done:
        return conversation
    if experiment is None or experiment.id != conversation.experiment_id:
        experiment = await store.experiments.get(conversation.experiment_id)
    if experiment is None:
        raise NotFoundError(
            f"The experiment of conversation {conversation_id} no longer exists; it cannot run."
        )
    try:
        runner = resolve(kinds).prepare(conversation.kind).run
    except SimulatorError as exc:
        error = f"{exc.title}: {exc}"
        await store.conversations.set_fields(conversation_id, status=Status.failed, error=error)
        if bus is not None:
            await bus.publish(ConversationFailed(conversation_id, conversation.batch_id, error))
        return conversation.model_copy(update={"status": Status.failed, "error": error})
    journal = await Journal.open(store, conversation, backends, bus, started=started)
    journal.choose_speaker = choose_speaker
    journal.lease_holder = lease_holder
    try:
        await runner(store, backends, journal.conversation, experiment, journal, bus)
    except asyncio.CancelledError as exc:
        if STORE_LOST not in exc.args:
            await _finish_quietly(journal, Status.interrupted, None, stop_reason=STOPPED)
        raise
    except Exception as exc:
        if is_store_unreachable(exc):
            raise  # the database is gone: writing the failure would only wait for it again
        if isinstance(exc, SimulatorError):
            log.warning("conversation %s failed: %s: %s", conversation_id, exc.title, exc)
            return await _finish_quietly(journal, Status.failed, f"{exc.title}: {exc}")
        # a bug: keep the data, say what happened, log the traceback
        log.exception("conversation %s failed unexpectedly", conversation_id)
        return await _finish_quietly(
            journal, Status.failed, f"Unexpected error ({type(exc).__name__}): {exc}"
        )
    return await journal.finish(Status.done)


async def _finish_quietly(
    journal: Journal, status: Status, error: str | None, *, stop_reason: str | None = None
) -> Conversation:
    """Store the end, waiting at most ``QUIET_WRITE_S`` (a dying database must not hold a
    stopping run); on failure the stored status stays ``running`` and a resume continues it."""
    try:
        return await asyncio.wait_for(
            journal.finish(status, error, stop_reason=stop_reason), QUIET_WRITE_S
        )
    except Exception:
        log.warning("could not store the end of conversation %s", journal.conversation.id)
        return journal.conversation.model_copy(
            update={"status": status, "error": error, "stop_reason": stop_reason}
        )


__all__ = ["build_conversation", "manager_prompt", "prepare_conversation", "run_conversation"]
