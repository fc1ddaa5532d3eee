"""Which conversations: the one conversation filter of the app.

The store lists by it (``Store.conversations.list``), the analysis tables and exports select by
it (``analysis.loading.select_conversations``, ``simulator export``'s options), and the TUI's
conversation browser filters its list with it; so a filter means the same everywhere, and the
browser's ``E`` exports exactly the conversations on screen.

A field left ``None`` (``favourites_only`` False) does not restrict. ``experiment_id``,
``batch_id`` and ``conversation_ids`` are ids; where a person typed them (commands, the Python
analysis API) they may be unique prefixes, and an experiment also its name: those are resolved
to ids (``db.ids``) before the store is asked. ``model`` matches any model of the conversation
(default, per role, summarizer, manager, its agents'), by name, label or ``provider:model``,
ignoring case; ``counts`` the given roles' agent counts and ``factors`` the given factor levels,
role and factor names ignoring case. ``kinds`` is about messages, not conversations: which of
their messages the tables read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from simulator.domain.models import (
    DRYRUN_ALIAS,
    DRYRUN_MODEL,
    Conversation,
    ModelRef,
    Status,
)

#: ``batch_id`` of the conversations run on their own (no batch).
SINGLE_RUNS = "-"

#: A content check: (filter name, its value as written, the test).
Check = tuple[str, str, Callable[[Conversation], bool]]


@dataclass(frozen=True)
class ConversationFilter:
    """Which conversations (module docstring)."""

    experiment_id: str | None = None
    batch_id: str | None = None  # or SINGLE_RUNS
    conversation_ids: Sequence[str] | None = None
    status: Status | str | None = None
    days: int | None = None
    counts: Mapping[str, int] | None = None
    model: str | None = None
    factors: Mapping[str, str] | None = None
    favourites_only: bool = False
    kinds: Sequence[str] | None = None  # message kinds (the tables of messages only)

    @property
    def active(self) -> bool:
        """Does it restrict anything about the conversations (``kinds`` aside)?"""
        return bool(
            self.experiment_id
            or self.batch_id
            or self.conversation_ids
            or self.status
            or self.days is not None
            or self.counts
            or self.model
            or self.factors
            or self.favourites_only
        )

    def checks(self) -> list[Check]:
        """The content filters that are set (days, counts, status, model, each factor), each
        with its test: what ``matches`` applies, and what explains a filter that matches
        nothing (``analysis.loading.explain_no_match``)."""
        out: list[Check] = []
        if self.days is not None:
            days = int(self.days)
            out.append(("days", str(days), lambda c: c.cell.days == days))
        if self.counts:
            counts = dict(self.counts)
            text = ",".join(f"{r}={n}" for r, n in counts.items())
            out.append(("counts", text, lambda c: _match_counts(c, counts)))
        if self.status is not None:
            status = Status(self.status)
            out.append(("status", status.value, lambda c: c.status is status))
        if self.model is not None:
            wanted = wanted_model(self.model)
            out.append(("model", self.model, lambda c: wanted in model_names(c)))
        for name, level in (self.factors or {}).items():
            out.append(("factor", f"{name}={level}", _factor_test({name: level})))
        return out

    def matches(self, conversation: Conversation) -> bool:
        """Does ``conversation`` pass every field (ids as ids: resolve prefixes first)?"""
        c = conversation
        if self.experiment_id is not None and c.experiment_id != self.experiment_id:
            return False
        if self.batch_id is not None and (c.batch_id or SINGLE_RUNS) != self.batch_id:
            return False
        if self.conversation_ids and c.id not in set(self.conversation_ids):
            return False
        if self.favourites_only and not c.favourite:
            return False
        return all(test(c) for _, _, test in self.checks())


def model_refs(conversation: Conversation) -> list[ModelRef]:
    """Every model of a conversation: its cell's (default, per role, summarizer, manager) and
    its agents', each once."""
    ms = conversation.cell.models
    refs = [ms.default, *ms.per_role.values(), ms.summarizer_model, ms.manager_model]
    refs += [a.model for a in conversation.agents]
    return list({(r.provider.value, r.model): r for r in refs}.values())


def model_names(conversation: Conversation) -> set[str]:
    """What a ``model`` filter may name for a conversation, in lower case."""
    names: set[str] = set()
    for ref in model_refs(conversation):
        names |= {ref.model.casefold(), ref.label.casefold(), f"{ref.provider.value}:{ref.model}"}
    return {n.casefold() for n in names}


def wanted_model(model: str) -> str:
    """A ``model`` filter in lower case, the dryrun model's old name read as its name."""
    wanted = model.strip().casefold()
    for old in (DRYRUN_ALIAS, f"dryrun:{DRYRUN_ALIAS}"):
        if wanted == old:
            return wanted.replace(DRYRUN_ALIAS, DRYRUN_MODEL)
    return wanted


def _factor_test(factors: Mapping[str, str]) -> Callable[[Conversation], bool]:
    return lambda c: _match_factors(c, factors)


def _match_counts(conversation: Conversation, counts: Mapping[str, int]) -> bool:
    have = {r.casefold(): n for r, n in conversation.cell.counts.items()}
    return all(have.get(role.strip().casefold()) == int(n) for role, n in counts.items())


def _match_factors(conversation: Conversation, factors: Mapping[str, str]) -> bool:
    have = {k.casefold(): v.casefold() for k, v in conversation.cell.factors.items()}
    return all(
        have.get(name.strip().casefold()) == str(level).strip().casefold()
        for name, level in factors.items()
    )


__all__ = [
    "SINGLE_RUNS",
    "Check",
    "ConversationFilter",
    "model_names",
    "model_refs",
    "wanted_model",
]
