"""A call's bill and a run's bill: the prompt split into fresh / cache-read / cache-write tokens, and the cost.

Produced by the cache simulator (:mod:`tokprof.profiler.providers.cache_sim`); priced by the one cost
function (:func:`tokprof.profiler.providers.cost.split_cost`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Literal

from tokprof.profiler.providers.cache_rules import CacheRule, cache_rule
from tokprof.profiler.providers.cost import PriceLookup, Rates, TokenSplit, split_cost

Basis = Literal["recorded", "uncached", "simulated", "served", "unpriced"]


class BillingError(ValueError):
    """A billing rule or plan that cannot be applied (names the span and model)."""


@dataclass
class CallBill:
    """How one call is billed: its prompt split into fresh / cache-read / cache-write tokens, and the cost."""

    span_id: str
    model: str | None
    provider: str | None
    basis: Basis
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    """Written with the short (5-minute) TTL."""
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal | None = None
    currency: str = "USD"
    matched_units: int = 0
    """Units of the prompt shared with the provider's cache (diagnostics)."""
    started_ns: int | None = None
    """When the call started (wall clock, UTC ns; ``None``: unknown): prices a row with a time-of-day rule
    (peak / off-peak, :meth:`~tokprof.profiler.providers.cost.Rates.at`). Set by the pricer from the span
    (:func:`~tokprof.profiler.providers.cost.call_start_ns`); a bulk pricer must honour it too."""
    tool_requests: tuple[tuple[str, int], ...] = ()
    """(kind, count) of server-tool requests billed per use (as the provider reported them)."""

    @property
    def fresh_input_tokens(self) -> int:
        return max(0, self.input_tokens - self.cache_read_tokens - self.cache_write_tokens
                   - self.cache_write_1h_tokens)

    def to_dict(self) -> dict[str, Any]:
        return {
            "span_id": self.span_id, "model": self.model, "provider": self.provider, "basis": self.basis,
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens, "cache_write_tokens": self.cache_write_tokens,
            "cache_write_1h_tokens": self.cache_write_1h_tokens,
            "cost": None if self.cost is None else str(self.cost), "currency": self.currency,
            **({} if self.started_ns is None else {"started_ns": self.started_ns}),
        }


@dataclass
class RunBill:
    """The bill of one run: one :class:`CallBill` per LLM span, in ``run.llm_spans()`` order."""

    calls: list[CallBill]
    currency: str
    mode: str

    @property
    def total(self) -> Decimal | None:
        """Sum of the known call costs; ``None`` when no call has a known price (unknown, never zero)."""
        known = [c.cost for c in self.calls if c.cost is not None]
        return sum(known, Decimal(0)) if known else None

    @property
    def unpriced(self) -> int:
        return sum(1 for c in self.calls if c.cost is None and c.basis != "served")


def call_cost(bill: CallBill, rates: Rates | None, rule: CacheRule, currency: str) -> Decimal | None:
    """The bill's cost, priced by the one cost function (:func:`tokprof.profiler.providers.cost.split_cost`)."""
    if bill.basis == "served":
        return Decimal(0)
    return split_cost(TokenSplit.from_bill(bill), rates, rule, currency, started_ns=bill.started_ns)


def memo_lookup(lookup: PriceLookup) -> PriceLookup:
    """``lookup`` memoised by model, for one billing pass (prices do not change during it; a price-table
    lookup builds its :class:`Rates` anew on every call)."""
    memo: dict[str | None, Any] = {}

    def get(model: str | None) -> Any:
        try:
            return memo[model]
        except KeyError:
            got = memo[model] = lookup(model)
            return got

    return get


def memo_rules() -> Callable[[str | None, str | None, bool], CacheRule]:
    """:func:`cache_rule` memoised by (provider, model, explicit), for one billing pass."""
    memo: dict[tuple[str | None, str | None, bool], CacheRule] = {}

    def get(provider: str | None, model: str | None, explicit: bool = False) -> CacheRule:
        k = (provider, model, explicit)
        got = memo.get(k)
        if got is None:
            got = memo[k] = cache_rule(provider, model, explicit=explicit)
        return got

    return get
