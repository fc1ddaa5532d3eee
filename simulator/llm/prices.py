"""What a model call costs: the price table over dated defaults for common OpenAI models.

A price is in USD per 1,000 tokens: ``input_per_1k``, ``output_per_1k``, and optionally
``cached_input_per_1k`` (prompt tokens the server served from its prompt cache; without it they
cost ``input_per_1k``) and ``as_of`` (the date the price was read). The user's table (a spec's
``prices:``, then the ``PRICE_TABLE`` file; the spec's entries win) is looked up first, by
``provider:model`` then by the model's name; then, for ``openai`` models on OpenAI's own API
only (a model of the same name on another server is not OpenAI's), the defaults below, by
name or by the name without a dated snapshot suffix (``gpt-4o-mini-2024-07-18``). dryrun calls
cost nothing. Any other model has no price: its calls are counted as unpriced, never as free.

A call's cost: (prompt - cached) x input + cached x cached input + completion x output.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from simulator.domain import ModelRef, Provider, TokenUsage

#: The date the defaults were read from OpenAI's pricing page (https://openai.com/api/pricing).
DEFAULTS_AS_OF = "2025-08-07"
#: Hosts whose ``openai`` models are OpenAI's own (the defaults apply to them).
OPENAI_HOSTS = frozenset({"api.openai.com"})
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Price:
    """USD per 1,000 tokens."""

    input_per_1k: float
    output_per_1k: float
    cached_input_per_1k: float | None = None  # None: cached prompt tokens cost input_per_1k
    as_of: str | None = None
    default: bool = False  # from DEFAULT_PRICES, not the user's table

    def cost(self, usage: TokenUsage) -> float:
        cached = min(max(usage.cached_tokens, 0), usage.prompt_tokens)
        cached_price = (
            self.cached_input_per_1k if self.cached_input_per_1k is not None else self.input_per_1k
        )
        total = (usage.prompt_tokens - cached) / 1000 * self.input_per_1k
        total += cached / 1000 * cached_price
        total += usage.completion_tokens / 1000 * self.output_per_1k
        return total

    @classmethod
    def of(cls, entry: Mapping[str, Any], *, default: bool = False) -> Price:
        """A price from a table entry (the keys above, per 1,000 tokens)."""
        cached = entry.get("cached_input_per_1k")
        as_of = entry.get("as_of")
        return cls(
            input_per_1k=float(entry.get("input_per_1k", 0.0)),
            output_per_1k=float(entry.get("output_per_1k", 0.0)),
            cached_input_per_1k=None if cached is None else float(cached),
            as_of=None if as_of is None else str(as_of),
            default=default,
        )


def _per_million(input_: float, cached: float | None, output: float) -> Price:
    return Price(
        input_per_1k=input_ / 1000,
        output_per_1k=output / 1000,
        cached_input_per_1k=None if cached is None else cached / 1000,
        as_of=DEFAULTS_AS_OF,
        default=True,
    )


#: OpenAI's standard prices (USD per 1M tokens: input, cached input, output) as of
#: ``DEFAULTS_AS_OF``. Prices change: a table of your own (``prices:``, ``PRICE_TABLE``) wins.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-5": _per_million(1.25, 0.125, 10.00),
    "gpt-5-mini": _per_million(0.25, 0.025, 2.00),
    "gpt-5-nano": _per_million(0.05, 0.005, 0.40),
    "gpt-4.1": _per_million(2.00, 0.50, 8.00),
    "gpt-4.1-mini": _per_million(0.40, 0.10, 1.60),
    "gpt-4.1-nano": _per_million(0.10, 0.025, 0.40),
    "gpt-4o": _per_million(2.50, 1.25, 10.00),
    "gpt-4o-mini": _per_million(0.15, 0.075, 0.60),
    "o3": _per_million(2.00, 0.50, 8.00),
    "o3-mini": _per_million(1.10, 0.55, 4.40),
    "o4-mini": _per_million(1.10, 0.275, 4.40),
    "gpt-3.5-turbo": _per_million(0.50, None, 1.50),
}

FREE = Price(0.0, 0.0, 0.0)


def openai_hosted(ref: ModelRef) -> bool:
    """An ``openai`` model served by OpenAI itself (no base_url, or OpenAI's host)."""
    if ref.provider is not Provider.openai:
        return False
    if not ref.base_url:
        return True
    return (urlsplit(ref.base_url).hostname or "") in OPENAI_HOSTS


class PriceTable:
    """The user's prices (``{model: {input_per_1k, output_per_1k, [cached_input_per_1k],
    [as_of]}}``, keyed by ``provider:model`` or the model name) over ``DEFAULT_PRICES``."""

    def __init__(
        self, table: Mapping[str, Mapping[str, Any]] | None = None, *, defaults: bool = True
    ) -> None:
        self.table: dict[str, Price] = {str(k): Price.of(v) for k, v in (table or {}).items()}
        self.defaults = defaults

    def price_for(self, ref: ModelRef) -> Price | None:
        own = self.table.get(f"{ref.provider.value}:{ref.model}") or self.table.get(ref.model)
        if own is not None:
            return own
        if ref.provider is Provider.dryrun:
            return FREE
        if self.defaults and openai_hosted(ref):
            return DEFAULT_PRICES.get(ref.model) or DEFAULT_PRICES.get(_SNAPSHOT.sub("", ref.model))
        return None

    def cost(self, ref: ModelRef, usage: TokenUsage) -> float | None:
        """The cost of ``usage`` on ``ref``; None when the model has no price."""
        price = self.price_for(ref)
        return None if price is None else price.cost(usage)


__all__ = [
    "DEFAULTS_AS_OF",
    "DEFAULT_PRICES",
    "FREE",
    "Price",
    "PriceTable",
    "openai_hosted",
]
