"""What the ledger stores about one LLM call besides its tokens: exact cost (USD and CNY), the call's own
currency, the cost's source, and the cache status.

Every cost comes from :func:`tokprof.profiler.accounting.span_cost` (the one cost function: recorded cost
when the trace has it, else tokens x the price table). That is a pure function of the call's model,
provider, usage (counts and sources) and recorded cost, so it is memoised on exactly those: a fleet repeats
them, and the Decimal arithmetic then runs once per distinct call rather than once per row.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable

from tokprof.profiler.accounting import RatesMemo, span_costs
from tokprof.profiler.model import Run, Span
from tokprof.profiler.keys import served_by
from tokprof.profiler.providers.as_paid import (
    SIMULATED, hit_rate, inferred_plan, needs_simulation, original_plans, paid_bills, recorded_cost, simulate_in,
    simulated_bill)
from tokprof.profiler.providers.bills import call_cost, memo_lookup, memo_rules
from tokprof.profiler.providers.cache_rules import CacheRule
from tokprof.profiler.providers.cache_sim import plan_of, recorded_bill
from tokprof.profiler.providers.cost import PriceLookup, TokenSplit, default_prices, split_cost
from tokprof.profiler.providers.prices import priced_model

_PLACES = Decimal(1).scaleb(-24)
MEMO_BOUND = 200_000
"""The memo is cleared past this many distinct calls (bounded memory; it holds no payloads)."""


def money(x: Decimal | None) -> Decimal | None:
    """``x`` as stored (DECIMAL(38,24)): unchanged unless it has more than 24 decimal places."""
    if x is None or x.as_tuple().exponent >= -24:  # type: ignore[operator]
        return x
    return x.quantize(_PLACES)


def cache_status(span: Span) -> str:
    """``hit`` (some prompt tokens read from the provider cache), ``write`` (written, none read), ``miss``
    (the provider said nothing was cached) or ``unknown`` (the trace does not say)."""
    u = span.llm.usage  # type: ignore[union-attr]
    if u.cache_read_tokens > 0:
        return "hit"
    if u.cache_write_tokens > 0:
        return "write"
    return "miss" if u.known("cache_read_tokens") else "unknown"


PAID_MEMO_BOUND = 4_096
"""At most this many runs' simulated bills are memoised (a resampled fleet repeats its runs)."""


class PaidOverrides:
    """What a run *paid* per call where that differs from the call's own priced cost: runs whose calls
    record neither a cost nor provider cache tokens are billed with the provider's automatic caching
    simulated (:func:`tokprof.profiler.providers.as_paid.run_paid`, the one as-paid baseline ``show``, the
    summary, ``optimize`` and ``report`` use), so the ledger's totals equal theirs. Memoised on the run's
    call objects (by identity, the objects kept alive by the memo), since a fleet repeats runs."""

    def __init__(self) -> None:
        self._memo: dict[tuple[int, ...], tuple[list[Any], dict[str, tuple[Decimal | None, Decimal | None]] | None]] = {}
        self._lookup = memo_lookup(default_prices)  # for this builder's life: prices do not change mid-ingest
        self._rules = memo_rules()

    def get(self, run: Run) -> dict[str, tuple[Decimal | None, Decimal | None]] | None:
        """``span id -> (usd, cny)`` of the calls billed by simulated caching, or None when there are none."""
        calls = [s.llm for s in run.spans if s.llm is not None]  # file order: no sort needed for a key
        key = tuple(map(id, calls))
        hit = self._memo.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], calls)):
            return hit[1]
        out = simulated_costs(run, self._lookup, self._rules) if needs_simulation(run, "USD") else None
        if len(self._memo) > PAID_MEMO_BOUND:
            self._memo.clear()
        self._memo[key] = (calls, out)
        return out


def simulated_costs(run: Run, lookup: PriceLookup | None = None,
                    rule_of: Callable[[str | None, str | None, bool], CacheRule] | None = None
                    ) -> dict[str, tuple[Decimal | None, Decimal | None]]:
    """``span id -> (usd, cny)`` as stored, for each call of ``run`` that
    :func:`~tokprof.profiler.providers.as_paid.paid_bills` bills by simulated automatic caching in USD: its
    expected cost in USD and its as-paid cost in CNY.

    The same figures as ``paid_bills`` (asserted on the whole corpus by ``tests/test_fleet_paid_fast.py``),
    computed with less: one simulation (:func:`~tokprof.profiler.providers.as_paid.simulated_bill`, its
    bills left unpriced), each call's own plan found once, and only the expected scenario priced, by the one
    cost function, for the calls it concerns; ``paid_bills`` also prices the all-hits and no-hits scenarios
    and bills every call as recorded, twice. A call whose CNY basis is not the simulated one (a recorded cost
    convertible to CNY but not USD) is rare; the run then goes through ``paid_bills`` itself.

    ``lookup``, ``rule_of``: memoised prices and cache rules (:func:`memo_lookup`, :func:`memo_rules`) the
    caller keeps for a whole ingest (prices do not change during one)."""
    lookup = lookup or memo_lookup(default_prices)
    rule_of = rule_of or memo_rules()
    spans = run.llm_spans()
    own = {(0, sp.span_id): plan_of(sp) for sp in spans}  # each call's markers scanned once, not three times
    plans = {}
    for sp in spans:
        if p := inferred_plan(sp, own[(0, sp.span_id)]):
            plans[(0, sp.span_id)] = p
    rb = simulated_bill(run, "USD", lambda _, sp: plans.get((0, sp.span_id), {}), lookup, own_plans=own,
                        priced=False)
    h_exp = None
    out: dict[str, tuple[Decimal | None, Decimal | None]] = {}
    for span, b in zip(spans, rb.calls):
        call = span.llm
        assert call is not None
        if b.basis == "served" or served_by(span.attributes) or recorded_cost(span, "USD") is not None:
            continue
        plan = own[(0, span.span_id)] or plans.get((0, span.span_id), {})
        rule = rule_of(call.provider, call.model, bool(plan.get("breakpoints")))
        if rule.mode != "automatic":
            continue  # basis uncached or simulated breakpoints: the call's own cost stands
        rates = lookup(priced_model(call.model, call.provider))
        u = call.usage
        if (u.known("cache_read_tokens") or u.known("cache_write_tokens")) \
                and call_cost(recorded_bill(span, call, rule.provider), rates, rule, "USD") is not None:
            continue  # basis provider cache tokens
        if recorded_cost(span, "CNY") is not None:
            return _via_paid_bills(run)
        # the expected scenario: the simulated reads at the provider's expected hit rate (as_paid's
        # _scenario_cost), else the bill as simulated; a bill's cost depends on its tokens, not its currency
        reads = None
        if b.cache_read_tokens > 0:
            if h_exp is None or h_exp[0] != rule.provider:
                h_exp = (rule.provider, hit_rate(rule.provider)[0])
            reads = int(b.cache_read_tokens * h_exp[1])
        split = TokenSplit.from_bill(b, cache_read=reads)
        out[span.span_id] = (money(split_cost(split, rates, rule, "USD", started_ns=b.started_ns)),
                             money(split_cost(split, rates, rule, "CNY", started_ns=b.started_ns)))
    return out


def _via_paid_bills(run: Run) -> dict[str, tuple[Decimal | None, Decimal | None]]:
    """The same as :func:`simulated_costs`, through ``paid_bills`` in both currencies (the general path)."""
    sims = simulate_in([run], ("USD", "CNY"), original_plans([run]))  # simulated once, priced twice
    usd = paid_bills([run], "USD", sim=sims["USD"])[0].by_span()
    cny = paid_bills([run], "CNY", sim=sims["CNY"])[0].by_span()
    out: dict[str, tuple[Decimal | None, Decimal | None]] = {}
    for sid, cp in usd.items():
        if cp.basis != SIMULATED:
            continue
        other = cny.get(sid)
        out[sid] = (money(cp.cost.expected), money(None if other is None else other.cost.expected))
    return out


class CostMemo:
    """``(usd, cny, currency, cost source)`` of a call, memoised on what determines it."""

    def __init__(self) -> None:
        self._memo: dict[tuple[Any, ...], list[Any]] = {}
        self._rates: RatesMemo = {}  # price rows' rates, for this builder's life (prices do not change mid-ingest)
        self._hourly: dict[str | None, bool] = {}  # model -> priced by the hour (its start is then part of the key)

    def get(self, span: Span) -> list[Any]:
        """``[usd, cny, currency, source, batch, index]``: the last two are the caller's (which batch last
        used the entry, and its position in that batch's unique costs)."""
        call = span.llm
        assert call is not None
        u = call.usage
        rec = call.cost
        hourly = self._hourly.get(call.model)
        if hourly is None:
            hourly = self._hourly[call.model] = _hourly(call.model)
        key = (call.model, call.provider, u.input_tokens, u.output_tokens, u.cache_read_tokens,
               u.cache_write_tokens, u.cache_write_1h_tokens, u.reasoning_tokens, tuple(u.sources.items()),
               None if rec is None else (rec.amount, rec.currency, rec.source),
               span.wall_start_ns if hourly else None, tuple(u.tool_requests.items()))
        hit = self._memo.get(key)
        if hit is None:
            if len(self._memo) > MEMO_BOUND:
                self._memo.clear()
            hit = self._memo[key] = self._compute(span)
        return hit

    def _compute(self, span: Span) -> list[Any]:
        call = span.llm
        assert call is not None
        usd, cny = span_costs(span, ("USD", "CNY"), self._rates)  # = span_cost in each, priced in one pass
        source = "unknown" if usd is None or usd.amount is None else usd.source
        return [money(None if usd is None else usd.amount), money(None if cny is None else cny.amount),
                native_currency(call), source, -1, -1]


def _hourly(model: str | None) -> bool:
    """Whether a row of ``model``'s price has time-of-day prices (peak / off-peak): a call's cost then
    depends on when it started, not only on its usage."""
    from tokprof.profiler.providers.prices import get_price, native_prices, resolve_model

    price = get_price(model, warn=False)
    if price is None:
        return False
    key = resolve_model(model or "")
    rows = [price, *(native_prices(key).values() if key else ())]
    return any(getattr(r, "time_of_day", None) is not None for r in rows)


def native_currency(call: Any) -> str:
    """The call's own currency: its recorded cost's, else its price row's, else USD."""
    rec = call.cost
    if rec is not None and rec.source == "recorded" and rec.amount is not None:
        return str(rec.currency.upper())
    from tokprof.profiler.providers.prices import get_price

    price = get_price(call.model, warn=False, provider=call.provider)
    return "USD" if price is None else str(price.currency)
