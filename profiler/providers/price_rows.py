"""One row of the price table: :class:`ModelPrice` (money per 1M tokens of one model, in USD or CNY), its
long-context :class:`PriceTier` s, and :func:`price_from_dict`, which parses and validates a row of a price file.

The table itself (loading, lookups, overrides, currencies) is :mod:`tokprof.profiler.providers.prices`, which
re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

PER_TOKENS = 1_000_000


class PriceFileError(ValueError):
    """A price file (shipped or user override) is malformed."""


@dataclass(frozen=True)
class PriceTier:
    """Prices that replace the base ones for the whole request when its prompt exceeds ``above`` tokens."""

    above: int
    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None
    output_above: int | None = None
    """Also require more than this many output tokens (GLM bills short replies at a lower tier)."""

    def applies(self, input_tokens: int, output_tokens: int = 0) -> bool:
        return input_tokens > self.above and (self.output_above is None or output_tokens > self.output_above)


@dataclass(frozen=True)
class ModelPrice:
    """Prices per 1M tokens of one model."""

    model: str
    provider: str
    currency: str  # "USD" | "CNY"
    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    """Cache write with the default (5-minute) TTL."""
    cache_write_1h: Decimal | None = None
    reasoning: Decimal | None = None
    """Price of reasoning tokens when billed differently from other output (else ``None``)."""
    tiers: tuple[PriceTier, ...] = ()
    """Long-context tiers (:class:`PriceTier`), ascending by ``above``."""
    effective_date: str = ""
    source: str = ""
    estimated: bool = False
    """True when the row is not backed by a published price page (see ``note``)."""
    aliases: tuple[str, ...] = field(default=(), compare=False)
    note: str | None = field(default=None, compare=False)
    confirmed: str | None = field(default=None, compare=False)
    """Where and when the row was last checked against the provider's own page (``"2026-12-01 <url>"``)."""

    def for_prompt(self, input_tokens: int, output_tokens: int = 0) -> "ModelPrice":
        """The prices that apply to a request of ``input_tokens`` prompt tokens (and ``output_tokens`` output
        tokens, for output-length tiers): the last tier, in table order, whose conditions hold."""
        chosen: PriceTier | None = None
        for tier in self.tiers:
            if tier.applies(input_tokens, output_tokens):
                chosen = tier
        if chosen is None:
            return self
        return ModelPrice(
            self.model, self.provider, self.currency, chosen.input, chosen.output,
            chosen.cache_read if chosen.cache_read is not None else self.cache_read,
            chosen.cache_write if chosen.cache_write is not None else self.cache_write,
            chosen.cache_write_1h if chosen.cache_write_1h is not None else self.cache_write_1h,
            self.reasoning, (), self.effective_date, self.source, self.estimated, self.aliases, self.note,
            self.confirmed)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"model": self.model, "provider": self.provider, "currency": self.currency,
                             "input": str(self.input), "output": str(self.output)}
        for name in ("cache_read", "cache_write", "cache_write_1h", "reasoning"):
            v = getattr(self, name)
            if v is not None:
                d[name] = str(v)
        if self.tiers:
            d["tiers"] = [{k: (v if k in ("above", "output_above") else str(v)) for k, v in t.__dict__.items()
                           if v is not None} for t in self.tiers]
        d["effective_date"] = self.effective_date
        d["source"] = self.source
        if self.estimated:
            d["estimated"] = True
        if self.aliases:
            d["aliases"] = list(self.aliases)
        if self.note:
            d["note"] = self.note
        if self.confirmed:
            d["confirmed"] = self.confirmed
        return d


# ---------------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------------
def _dec(value: Any, where: str, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        d = Decimal(str(value))
    except Exception:
        raise PriceFileError(f"{where}: {name}={value!r} is not a number") from None
    # is_finite first: comparing a NaN raises decimal.InvalidOperation, which named neither row nor field
    if not d.is_finite() or d < 0 or d > MAX_PRICE:
        raise PriceFileError(f"{where}: {name}={value!r} must be a finite number in [0, {MAX_PRICE}]")
    return d


MAX_PRICE = Decimal(10) ** 9
"""Per 1M tokens; anything above is a typo, and near Decimal's exponent limit the cost arithmetic overflows."""


def _int(value: Any, where: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PriceFileError(f"{where}: {name}={value!r} is not a whole number")
    try:
        n = int(value)
    except ValueError:
        raise PriceFileError(f"{where}: {name}={value!r} is not a whole number") from None
    if not 0 <= n <= 2**53:
        raise PriceFileError(f"{where}: {name}={value!r} must be in [0, 2**53]")
    return n


def _required_dec(value: Any, where: str, name: str) -> Decimal:
    d = _dec(value, where, name)
    if d is None:  # callers check presence first; this keeps the type honest
        raise PriceFileError(f"{where}: missing {name!r} (price per 1M tokens)")
    return d


def price_from_dict(d: dict[str, Any], where: str = "price") -> ModelPrice:
    """Build a :class:`ModelPrice` from a row of a price file (money as strings or numbers)."""
    if not isinstance(d, dict) or not d.get("model"):
        raise PriceFileError(f"{where}: each price needs at least 'model', 'input' and 'output'")
    where = f"{where} ({d['model']})"
    for required in ("input", "output"):
        if d.get(required) is None:
            raise PriceFileError(f"{where}: missing {required!r} (price per 1M tokens)")
    currency = str(d.get("currency", "USD")).upper()
    if currency not in ("USD", "CNY"):
        raise PriceFileError(f"{where}: currency must be USD or CNY, not {currency!r}")
    tiers = []
    for i, t in enumerate(d.get("tiers") or []):
        tw = f"{where} tier {i}"
        if not isinstance(t, dict):
            raise PriceFileError(f"{tw}: a tier is an object with 'above' and prices")
        if "above" not in t:
            raise PriceFileError(f"{tw}: missing 'above' (prompt tokens)")
        tiers.append(PriceTier(_int(t["above"], tw, "above"), _dec(t.get("input"), tw, "input") or Decimal(0),
                               _dec(t.get("output"), tw, "output") or Decimal(0),
                               _dec(t.get("cache_read"), tw, "cache_read"),
                               _dec(t.get("cache_write"), tw, "cache_write"),
                               _dec(t.get("cache_write_1h"), tw, "cache_write_1h"),
                               None if t.get("output_above") is None
                               else _int(t["output_above"], tw, "output_above")))
    tiers.sort(key=lambda t: (t.above, -1 if t.output_above is None else t.output_above))
    return ModelPrice(
        model=str(d["model"]).lower(),
        provider=str(d.get("provider") or "unknown"),
        currency=currency,
        input=_required_dec(d["input"], where, "input"),
        output=_required_dec(d["output"], where, "output"),
        cache_read=_dec(d.get("cache_read"), where, "cache_read"),
        cache_write=_dec(d.get("cache_write"), where, "cache_write"),
        cache_write_1h=_dec(d.get("cache_write_1h"), where, "cache_write_1h"),
        reasoning=_dec(d.get("reasoning"), where, "reasoning"),
        tiers=tuple(tiers),
        effective_date=str(d.get("effective_date") or ""),
        source=str(d.get("source") or ""),
        estimated=bool(d.get("estimated", False)),
        aliases=tuple(str(a).lower() for a in d.get("aliases") or ()),
        note=d.get("note"),
        confirmed=d.get("confirmed"),
    )
