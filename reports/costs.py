"""What each call of a run cost, split into input and output, and the carried cost of each span.

One billing pass per run (:func:`tokprof.optimizers.billing.bill_run`, the same simulator the optimizer
prices with) gives each call's bill: its prompt split into fresh / cache-read / cache-write tokens and its
cost. The input part of that cost and the per-token rates of each cache state feed
:func:`tokprof.profiler.carried.carried_costs`. No price arithmetic lives here: every amount comes from
``billing.call_cost`` on the call's own bill (or a one-state variant of it, for the rates).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal

from tokprof.optimizers.billing import (
    CallBill,
    bill_run,
    cache_rule,
    call_cost,
    default_prices,
)
from tokprof.optimizers.paid import paid_bills
from tokprof.profiler.carried import CallPrice, Carried, TokensOf, carried_costs
from tokprof.profiler.model import Run
from tokprof.profiler.providers.prices import priced_model


@dataclass
class RunCosts:
    """Per LLM span (by id): total cost, output cost and prompt pricing; ``None`` = unknown."""

    cost: dict[str, Decimal | None] = field(default_factory=dict)
    output_cost: dict[str, Decimal | None] = field(default_factory=dict)
    prices: dict[str, CallPrice | None] = field(default_factory=dict)
    total: Decimal | None = None
    basis: str = "billed (simulated)"
    total_range: tuple[Decimal, Decimal] | None = None
    """(low, high) of ``total`` over the hit-rate scenarios; ``None`` when unknown."""

    @property
    def input_total(self) -> Decimal:
        return sum((p.input_cost for p in self.prices.values() if p is not None), Decimal(0))


def _rate(bill: CallBill, rates: object, rule: object, currency: str, state: str) -> Decimal:
    """Per-token price of one cache state at this call's prompt size (its long-context tier)."""
    n = max(bill.input_tokens, 1)
    probe = replace(bill, input_tokens=n, output_tokens=0, reasoning_tokens=0, cache_read_tokens=0,
                    cache_write_tokens=0, cache_write_1h_tokens=0, basis="recorded")
    if state == "read":
        probe.cache_read_tokens = n
    elif state == "write":
        probe.cache_write_tokens = n
    c = call_cost(probe, rates, rule, currency)  # type: ignore[arg-type]
    return (c or Decimal(0)) / n


def run_costs(run: Run, currency: str = "USD") -> RunCosts:
    """Bill ``run`` once and split each call's cost (see the module docstring)."""
    bill = bill_run(run, currency)
    # The amounts are what the run paid (recorded costs first, else the provider's automatic caching
    # simulated) — the baseline the optimizer's ledger starts from; the simulator's bill only supplies the
    # split into output and per-state input rates.
    paid = paid_bills([run], currency)[0]
    paid_cost = {c.span_id: c.cost.expected for c in paid.calls}
    out = RunCosts(total=paid.total.expected, basis="as paid (" + ", ".join(sorted(paid.bases())) + ")")
    lo, hi = paid.total.low, paid.total.high
    out.total_range = None if lo is None or hi is None else (lo, hi)
    # rates and rules per model, per-token rates per (model, long-context tier): thousands of calls share them
    looked_up: dict[tuple[str | None, str | None], tuple[object, object]] = {}
    rate_memo: dict[tuple[object, ...], tuple[Decimal, Decimal, Decimal]] = {}
    for span, b in zip(run.llm_spans(), bill.calls):
        call = span.llm
        assert call is not None
        sim_cost = b.cost
        if span.span_id in paid_cost:
            b = replace(b, cost=paid_cost[span.span_id])
        out.cost[span.span_id] = b.cost
        if b.cost is None or sim_cost is None:
            out.output_cost[span.span_id] = out.prices[span.span_id] = None
            continue
        mk = (call.model, call.provider)
        if mk not in looked_up:
            looked_up[mk] = (default_prices(priced_model(call.model, call.provider)),
                             cache_rule(call.provider, call.model))
        rates, rule = looked_up[mk]
        no_out = call_cost(replace(b, output_tokens=0, reasoning_tokens=0), rates, rule, currency)  # type: ignore[arg-type]
        out_cost = sim_cost - no_out if no_out is not None and b.basis != "served" else Decimal(0)
        out.output_cost[span.span_id] = out_cost
        if b.basis == "served":  # answered from a cache: nothing was paid for its prompt
            out.prices[span.span_id] = CallPrice(Decimal(0), Decimal(0), Decimal(0), Decimal(0))
            continue
        tier = tuple(above for above, _ in getattr(rates, "tiers", ()) if b.input_tokens > above)
        tod = getattr(rates, "time_of_day", None)  # peak and off-peak calls have different per-token rates
        rk = (mk, tier, None if tod is None else tod.factor_at(b.started_ns))
        if rk not in rate_memo:
            rate_memo[rk] = tuple(_rate(b, rates, rule, currency, st)  # type: ignore[assignment]
                                  for st in ("fresh", "read", "write"))
        fresh, read, write = rate_memo[rk]
        out.prices[span.span_id] = CallPrice(
            input_cost=b.cost - out_cost,
            fresh_rate=fresh,
            read_rate=read,
            write_rate=write,
            cache_read_tokens=b.cache_read_tokens,
            cache_write_tokens=b.cache_write_tokens + b.cache_write_1h_tokens,
        )
    return out


def run_carried(run: Run, costs: RunCosts, tokens_of: TokensOf | None = None) -> Carried:
    """Carried cost per introducing span of ``run``, priced with :func:`run_costs`' bills."""
    return carried_costs(run, costs.prices, tokens_of)
