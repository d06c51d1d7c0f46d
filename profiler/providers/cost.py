"""THE per-call cost function: tokens by type x price by type, in one place.

Every caller prices a call here — the run summary and ``tokprof import`` (via
:func:`tokprof.profiler.accounting.usage_cost`), the billing simulator and through it ``optimize``,
``report``, ``compare``, the demo and the pytest plugin — so one call has one cost wherever it is shown.

The arithmetic, per 1M tokens, at the long-context tier the prompt falls in:

* fresh prompt tokens (neither read from nor written to a cache) x input price;
* cache reads x the cache-read price; 5-minute cache writes x the cache-write price; 1-hour writes x the
  1-hour write price. A price the table does not list comes from the provider's cache rule as a multiple
  of the input price (Anthropic: read 0.1x, write 1.25x, 1-hour write 2x); a model without a rule pays
  the plain input price (``NO_CACHE`` multipliers are 1x, and 2x for 1-hour writes);
* output x output price, except reasoning tokens when the model bills them at their own price;
* server-tool requests billed per use (``Usage.tool_requests``, e.g. Anthropic web searches) x the provider's
  per-request price (:mod:`tokprof.profiler.providers.tool_prices`); a kind with no price adds nothing here
  and the caller labels the cost ``estimated`` (:func:`tokprof.profiler.accounting.usage_cost`).

Time of day: a price row may carry a peak / off-peak rule (:class:`~tokprof.profiler.providers.price_rows.
TimeOfDay`, data in the price table; DeepSeek's V4 rows). :class:`Rates` keeps it (``time_of_day``) and
:meth:`Rates.at` gives the rates in force when a call started: every price times the off-peak factor when it
started off-peak, the row's (peak) prices otherwise, including when the start is unknown or before the rule
(the caller labels those ``estimated``). The call's start reaches :func:`split_cost` as ``started_ns`` (wall
clock, UTC ns): from the span (:func:`call_start_ns`), or from a simulator bill's ``CallBill.started_ns``.
A bulk pricer that groups calls by rates must group by ``rates.at(started_ns)`` (or its
``time_of_day.period(started_ns)``) too.

The simulator only decides *which* tokens hit a cache; it never multiplies money.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Callable

from tokprof.profiler.providers.cache_rules import NO_CACHE, CacheRule
from tokprof.profiler.providers.price_rows import TimeOfDay

MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Rates:
    """Per-1M-token prices for one call, in ``currency``."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None
    reasoning: Decimal | None = None
    currency: str = "USD"
    tiers: tuple[tuple[int, "Rates"], ...] = ()
    """(prompt tokens above which, rates) for long-context pricing, ascending."""
    output_above: tuple[int | None, ...] = ()
    """Per tier: also require more than this many output tokens (``None``: no condition)."""
    natives: tuple[tuple[str, "Rates"], ...] = field(default=(), compare=False)
    """(currency, rates) the provider lists in other currencies: used instead of converting."""
    time_of_day: TimeOfDay | None = None
    """Peak / off-peak rule of the row: these rates are the peak ones; :meth:`at` applies the rule."""

    def at(self, started_ns: int | None) -> "Rates":
        """The rates in force for a call started at ``started_ns`` (wall clock, UTC ns; ``None``: unknown):
        off-peak, every price (and every tier's, and every native currency's) times the rule's factor;
        otherwise these rates. An off-peak result carries no rule, so the factor is never applied twice."""
        if self.time_of_day is None:
            return self
        f = self.time_of_day.factor_at(started_ns)
        if f == 1:
            return self

        def scale(v: Decimal | None) -> Decimal | None:
            return None if v is None else v * f

        def scaled(r: "Rates") -> "Rates":
            return Rates(input=r.input * f, output=r.output * f, cache_read=scale(r.cache_read),
                         cache_write=scale(r.cache_write), cache_write_1h=scale(r.cache_write_1h),
                         reasoning=scale(r.reasoning), currency=r.currency,
                         tiers=tuple((above, scaled(t)) for above, t in r.tiers), output_above=r.output_above)

        return replace(scaled(self), natives=tuple((c, n.at(started_ns)) for c, n in self.natives))
    per_request: tuple[tuple[str, Decimal], ...] = ()
    """(kind, price of one request) for server tools billed per use, in ``currency`` (not per 1M)."""

    def for_prompt(self, input_tokens: int, output_tokens: int = 0) -> "Rates":
        """The rates that apply to a prompt of ``input_tokens`` tokens (and ``output_tokens`` output tokens):
        the last tier whose conditions hold."""
        chosen = self
        for i, (above, rates) in enumerate(self.tiers):
            out_above = self.output_above[i] if i < len(self.output_above) else None
            if input_tokens > above and (out_above is None or output_tokens > out_above):
                chosen = rates
        return chosen

    def in_currency(self, currency: str | None) -> "Rates":
        """The provider's own list in ``currency`` when it has one, else these rates (converted later)."""
        if currency:
            for cur, rates in self.natives:
                if cur == currency.upper():
                    return rates
        return self


PriceLookup = Callable[[str | None], Rates | None]
"""model -> rates (``None``: no price known)."""


def default_prices(model: str | None) -> Rates | None:
    """Rates from the price table (:func:`tokprof.profiler.providers.prices.get_price`)."""
    if not model:
        return None
    from tokprof.profiler.providers.prices import get_price

    p = get_price(model)
    if p is None:
        return None
    return rates_of(p)


def rates_of(p: Any, *, with_natives: bool = True) -> Rates:
    """:class:`Rates` of a price-table row (:class:`~tokprof.profiler.providers.prices.ModelPrice`), with the
    model's rows in its other list currencies."""
    currency = getattr(p, "currency", "USD") or "USD"
    # a tier replaces every price it lists and keeps the base price of the ones it does not
    tier_rows = tuple(getattr(p, "tiers", None) or ())
    tiers = tuple((int(t.above), _rates(t, p, currency)) for t in tier_rows)
    natives: tuple[tuple[str, Rates], ...] = ()
    if with_natives and getattr(p, "model", None):
        from tokprof.profiler.providers.prices import native_prices

        natives = tuple((cur, rates_of(row, with_natives=False)) for cur, row in native_prices(p.model).items()
                        if cur != currency)
    return Rates(per_request=_per_request(getattr(p, "provider", None), currency),
                 input=_dec(p.input), output=_dec(p.output), cache_read=_opt(getattr(p, "cache_read", None)),
                 cache_write=_opt(getattr(p, "cache_write", None)),
                 cache_write_1h=_opt(getattr(p, "cache_write_1h", None)),
                 reasoning=_opt(getattr(p, "reasoning", None)), currency=currency, tiers=tiers,
                 output_above=tuple(getattr(t, "output_above", None) for t in tier_rows), natives=natives,
                 time_of_day=getattr(p, "time_of_day", None))


def _per_request(provider: str | None, currency: str) -> tuple[tuple[str, Decimal], ...]:
    """The provider's per-request server-tool prices listed in ``currency``."""
    if not provider:
        return ()
    from tokprof.profiler.providers.tool_prices import tool_prices

    return tuple(sorted((kind, row.per_request) for (prov, kind), row in tool_prices().items()
                        if prov == provider.lower() and row.currency == currency.upper()))


def _rates(t: Any, base: Any, currency: str) -> Rates:
    def pick(name: str) -> Decimal | None:
        v = getattr(t, name, None)
        return _opt(v if v is not None else getattr(base, name, None))

    return Rates(input=_dec(t.input), output=_dec(t.output), cache_read=pick("cache_read"),
                 cache_write=pick("cache_write"), cache_write_1h=pick("cache_write_1h"),
                 reasoning=pick("reasoning"), currency=currency)


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


def _opt(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def convert_or_none(amount: Decimal, from_cur: str, to_cur: str) -> Decimal | None:
    """``amount`` converted at the display rate (:func:`~tokprof.profiler.providers.prices.convert`);
    ``None`` for an unsupported currency pair (unknown, never a wrong number)."""
    if from_cur.upper() == to_cur.upper():
        return amount
    from tokprof.profiler.providers.prices import convert

    try:
        return Decimal(str(convert(amount, from_cur, to_cur)))
    except Exception:  # noqa: BLE001 - unknown currency pair
        return None


@dataclass(frozen=True)
class TokenSplit:
    """A call's tokens as they are billed. The parts of the prompt are disjoint:
    ``prompt = fresh + cache_read + cache_write_5m + cache_write_1h``; ``reasoning`` is part of ``output``."""

    prompt: int
    fresh: int
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    output: int = 0
    reasoning: int = 0
    tool_requests: tuple[tuple[str, int], ...] = ()
    """(kind, count) of server-tool requests billed per use."""

    @classmethod
    def from_usage(cls, usage: Any) -> "TokenSplit":
        """From a :class:`~tokprof.profiler.model.Usage`, whose ``cache_write_tokens`` is the total of all cache
        writes and ``cache_write_1h_tokens`` the 1-hour part of it."""
        write_all = int(usage.cache_write_tokens)
        write_1h = min(int(getattr(usage, "cache_write_1h_tokens", 0) or 0), write_all)
        return cls._make(int(usage.input_tokens), int(usage.cache_read_tokens), write_all - write_1h, write_1h,
                         int(usage.output_tokens), int(usage.reasoning_tokens),
                         tuple(sorted((getattr(usage, "tool_requests", None) or {}).items())))

    @classmethod
    def from_bill(cls, bill: Any, cache_read: int | None = None) -> "TokenSplit":
        """From the simulator's ``CallBill``, whose ``cache_write_tokens`` (5-minute) and
        ``cache_write_1h_tokens`` are disjoint. ``cache_read``: in place of the bill's (a hit-rate scenario)."""
        read = int(bill.cache_read_tokens) if cache_read is None else int(cache_read)
        return cls._make(int(bill.input_tokens), read, int(bill.cache_write_tokens),
                         int(bill.cache_write_1h_tokens), int(bill.output_tokens), int(bill.reasoning_tokens),
                         tuple(getattr(bill, "tool_requests", ()) or ()))

    @classmethod
    def _make(cls, prompt: int, read: int, w5: int, w1h: int, output: int, reasoning: int,
              tool_requests: tuple[tuple[str, int], ...] = ()) -> "TokenSplit":
        fresh = max(0, prompt - read - w5 - w1h)
        return cls(prompt, fresh, read, w5, w1h, output, min(max(reasoning, 0), output), tool_requests)


def call_start_ns(span: Any) -> int | None:
    """A span's wall-clock start (UTC ns), ``None`` when the trace did not record one (``wall_start_ns`` 0)."""
    ns = getattr(span, "wall_start_ns", None)
    return int(ns) if isinstance(ns, int) and ns > 0 else None


def split_cost(split: TokenSplit, rates: Rates | None, rule: CacheRule | None = None,
               currency: str | None = None, *, started_ns: int | None = None) -> Decimal | None:
    """THE price arithmetic: money for ``split`` at ``rates`` (see the module docstring), converted to
    ``currency`` (default: the rates' own). ``None`` when no price is known — unknown, never zero.

    ``started_ns``: when the call started (wall clock, UTC ns), for rates with a time-of-day rule."""
    if rates is None:
        return None
    rule = rule or NO_CACHE
    # the provider's own list in the wanted currency beats a conversion; then the hour the call started
    base = rates.in_currency(currency)
    r = base.at(started_ns).for_prompt(split.prompt, split.output)
    # A multiplier applies only under a caching rule: tokens a provider reports as cached for a model with no
    # (automatic) rule and no listed cache price are billed at the input price, never at a guessed discount.
    one = Decimal(1)
    read = r.cache_read if r.cache_read is not None else r.input * (rule.read_multiplier if rule.caches else one)
    write = r.cache_write if r.cache_write is not None else r.input * (rule.write_multiplier if rule.caches else one)
    write_1h = (r.cache_write_1h if r.cache_write_1h is not None
                else r.input * (rule.write_1h_multiplier if rule.caches else one))
    reasoning_rate = r.reasoning if r.reasoning is not None else r.output
    amount = (Decimal(split.fresh) * r.input
              + Decimal(split.cache_read) * read
              + Decimal(split.cache_write_5m) * write
              + Decimal(split.cache_write_1h) * write_1h
              + Decimal(split.output - split.reasoning) * r.output
              + Decimal(split.reasoning) * reasoning_rate) / MILLION
    if split.tool_requests:  # per use, not per token; tiers do not change it (listed on the base row)
        per = dict(base.per_request)
        amount += sum((Decimal(n) * per[kind] for kind, n in split.tool_requests if kind in per), Decimal(0))
    return amount if currency is None else convert_or_none(amount, r.currency, currency)


def call_cost(usage: Any, model: str | None, currency: str | None = None, rule: CacheRule | None = None, *,
              provider: str | None = None, prices: PriceLookup | None = None,
              started_ns: int | None = None) -> Decimal | None:
    """The cost of one call from its ``usage`` (a ``Usage``), priced for ``model``.

    ``rule`` defaults to the provider's cache rule for the model (:func:`cache_rule`), ``prices`` to the
    price table; ``currency`` defaults to the model's list currency; ``started_ns`` is the call's wall-clock
    start (UTC ns, ``None``: unknown) for time-of-day prices (:meth:`Rates.at`)."""
    if rule is None:
        from tokprof.profiler.providers.cache_rules import cache_rule

        rule = cache_rule(provider, model)
    return split_cost(TokenSplit.from_usage(usage), (prices or default_prices)(model), rule, currency,
                      started_ns=started_ns)
