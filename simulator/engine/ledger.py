"""A batch's cost ledger beyond the run that writes it (docs/cost.md): rebuilt from the stored
messages after a crash, read by the estimates of later batches, projected to the batch's end.

The run itself keeps the ledger (``simulator.llm.metered.BatchCalls``) and stores it in
``ledgers`` as it goes; a ledger whose run never ended cleanly (its ``runner`` still set) is
rebuilt from the batch's messages, which carry each call's usage, cost and cache record.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simulator.domain import Estimate, Ledger, Message, MessageKind, utcnow

if TYPE_CHECKING:
    from simulator.db.store import Store

#: ``Message.kind`` -> the purpose a ledger row counts it under (``CallMeta.purpose``).
_PURPOSE = {
    MessageKind.utterance: "utterance",
    MessageKind.summary: "summary",
    MessageKind.action: "action",
}
MANAGER_ROLE = "manager"


@dataclass(frozen=True)
class LedgerUpdated:
    """A batch's ledger changed (published at most about once a second while it runs)."""

    batch_id: str
    ledger: Ledger


def purpose_of(message: Message) -> str:
    if message.kind in _PURPOSE:
        return _PURPOSE[message.kind]
    return "manager" if message.role == MANAGER_ROLE else "other"


def rebuild(batch_id: str, messages: Iterable[Message]) -> Ledger:
    """The ledger of a batch from its stored messages: calls, cache hits and cost exactly;
    tokens too, except for a message whose calls were partly served from the cache (its usage
    is shared out by calls); characters sent are not stored with messages (0)."""
    ledger = Ledger(batch_id=batch_id)
    for m in messages:
        if m.model is None:
            continue
        row = ledger.row(f"{m.model.provider.value}:{m.model.model}", m.role, purpose_of(m))
        hits = m.cache.hits if m.cache is not None else 0
        calls = m.calls
        row.calls += calls
        row.cache_hits += hits
        share = calls / (calls + hits) if calls + hits else 0.0
        row.prompt_tokens += round(m.usage.prompt_tokens * share)
        row.completion_tokens += round(m.usage.completion_tokens * share)
        row.cached_tokens += round(m.usage.cached_tokens * share)
        if m.cost_usd is None:
            row.unpriced_calls += calls
        else:
            row.cost_usd = round(row.cost_usd + m.cost_usd, 10)
    ledger.updated_at = utcnow()
    return ledger


def remaining_cost(estimate: Estimate | None, ledger: Ledger | None) -> float | None:
    """The cost still to come: the calls the estimate has left, at the mean cost per call so
    far (before any call, the estimate's own cost). None when a model has no price."""
    if estimate is None:
        return None
    if ledger is None or ledger.calls == 0:
        return estimate.cost_usd
    if ledger.unpriced_calls:
        return None
    left = max(0, estimate.llm_calls - ledger.calls - ledger.cache_hits)
    return round(left * ledger.cost_usd / ledger.calls, 6)


#: The ledger table (``simulator export --what ledger``): columns and pandas dtypes.
LEDGER_COLUMNS: dict[str, str] = {
    "batch_id": "string",
    "experiment_id": "string",
    "model": "string",
    "role": "string",
    "purpose": "string",
    "calls": "Int64",
    "cache_hits": "Int64",
    "prompt_tokens": "Int64",
    "completion_tokens": "Int64",
    "cached_tokens": "Int64",
    "prompt_chars": "Int64",
    "cost_usd": "Float64",
    "unpriced_calls": "Int64",
    "updated_at": "string",
}


def ledger_rows(ledgers: Iterable[Ledger], batches: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per batch, model, role and purpose (``LEDGER_COLUMNS``); a row's cost is missing
    when all its calls were of a model without a price."""
    rows: list[dict[str, Any]] = []
    for ledger in ledgers:
        batch = batches.get(ledger.batch_id)
        for r in sorted(ledger.rows, key=lambda r: (r.model, r.role, r.purpose)):
            unpriced = r.calls > 0 and r.unpriced_calls == r.calls
            rows.append(
                {
                    "batch_id": ledger.batch_id,
                    "experiment_id": getattr(batch, "experiment_id", None),
                    "model": r.model,
                    "role": r.role,
                    "purpose": r.purpose,
                    "calls": r.calls,
                    "cache_hits": r.cache_hits,
                    "prompt_tokens": r.prompt_tokens,
                    "completion_tokens": r.completion_tokens,
                    "cached_tokens": r.cached_tokens,
                    "prompt_chars": r.prompt_chars,
                    "cost_usd": None if unpriced else r.cost_usd,
                    "unpriced_calls": r.unpriced_calls,
                    "updated_at": ledger.updated_at.isoformat(),
                }
            )
    return rows


# --------------------------------------------------------------------------- estimates that learn


@dataclass
class MeasuredRates:
    """What earlier batches measured per model (``provider:model``): completion tokens per call
    by purpose, and prompt tokens per character sent. ``calls``: how many calls measured it."""

    completion: dict[tuple[str, str], float] = field(default_factory=dict)  # (model, purpose)
    tokens_per_char: dict[str, float] = field(default_factory=dict)
    calls: int = 0

    def reply(self, model: str, purpose: str) -> float | None:
        return self.completion.get((model, purpose))

    def per_char(self, model: str) -> float | None:
        return self.tokens_per_char.get(model)

    def __bool__(self) -> bool:
        return self.calls > 0


def measured(ledgers: Iterable[Ledger]) -> MeasuredRates:
    """The rates the calls of these ledgers measured (cache hits measure nothing, and dryrun's
    lengths are known without measuring)."""
    completion: dict[tuple[str, str], list[int]] = {}
    chars: dict[str, list[int]] = {}
    calls = 0
    for ledger in ledgers:
        for row in ledger.rows:
            if row.calls <= 0 or row.model.startswith("dryrun:"):
                continue
            calls += row.calls
            c = completion.setdefault((row.model, row.purpose), [0, 0])
            c[0] += row.completion_tokens
            c[1] += row.calls
            if row.prompt_chars > 0:
                t = chars.setdefault(row.model, [0, 0])
                t[0] += row.prompt_tokens
                t[1] += row.prompt_chars
    return MeasuredRates(
        completion={k: tokens / n for k, (tokens, n) in completion.items() if n},
        tokens_per_char={k: tokens / n for k, (tokens, n) in chars.items() if n and tokens},
        calls=calls,
    )


async def learned_rates(store: Store, experiment_id: str) -> MeasuredRates:
    """The rates measured by the earlier batches of an experiment (empty when there are none,
    or the store keeps no ledgers)."""
    ledgers = getattr(store, "ledgers", None)
    if ledgers is None:
        return MeasuredRates()
    batches = await store.batches.list(experiment_id=experiment_id)
    ids: builtins.list[str] = [b.id for b in batches]
    return measured(await ledgers.get_many(ids)) if ids else MeasuredRates()


__all__ = [
    "LEDGER_COLUMNS",
    "LedgerUpdated",
    "MeasuredRates",
    "learned_rates",
    "ledger_rows",
    "measured",
    "purpose_of",
    "rebuild",
    "remaining_cost",
]
