"""The price table: money per 1M tokens per model, in USD or CNY, with overrides and currency conversion.

The table ships as ``profiler/providers/data/prices.json`` (versioned; every row has its effective date and source
URL). Lookups go through :mod:`tokprof.profiler.providers.resolver` (case, router prefixes, dated
snapshots, separator variants, user aliases for endpoint ids). A model with no price gives ``None`` and one :class:`UnknownModelWarning` naming
it and how to add a price: its cost is unknown, never a silent zero.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from tokprof.profiler.providers import resolver

PRICES_FILE = "prices.json"
PER_TOKENS = 1_000_000


class UnknownModelWarning(UserWarning):
    """No price is known for a model: its cost shows as unknown."""


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
    tiers: tuple = ()
    """Long-context tiers (:class:`PriceTier`), ascending by ``above``."""
    effective_date: str = ""
    source: str = ""
    estimated: bool = False
    """True when the row is not backed by a published price page (see ``note``)."""
    aliases: tuple = field(default=(), compare=False)
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
    if d < 0 or not d.is_finite():
        raise PriceFileError(f"{where}: {name}={value!r} must be a finite number >= 0")
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
        if "above" not in t:
            raise PriceFileError(f"{tw}: missing 'above' (prompt tokens)")
        tiers.append(PriceTier(int(t["above"]), _dec(t.get("input"), tw, "input") or Decimal(0),
                               _dec(t.get("output"), tw, "output") or Decimal(0),
                               _dec(t.get("cache_read"), tw, "cache_read"),
                               _dec(t.get("cache_write"), tw, "cache_write"),
                               _dec(t.get("cache_write_1h"), tw, "cache_write_1h"),
                               None if t.get("output_above") is None else int(t["output_above"])))
    tiers.sort(key=lambda t: (t.above, -1 if t.output_above is None else t.output_above))
    return ModelPrice(
        model=str(d["model"]).lower(),
        provider=str(d.get("provider") or "unknown"),
        currency=currency,
        input=_dec(d["input"], where, "input"),  # type: ignore[arg-type]
        output=_dec(d["output"], where, "output"),  # type: ignore[arg-type]
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


# ---------------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------------
_lock = threading.RLock()
_table: dict[str, ModelPrice] | None = None
_native: dict[str, dict[str, ModelPrice]] = {}
"""model -> currency -> row, for models the provider lists in more than one currency (mainland CNY list and
international USD list): the first row of a model in the file is its primary row."""
_aliases: dict[str, str] = {}
_overrides: dict[str, ModelPrice] = {}
_warned: set[str] = set()
_resolve_cache: dict[str, str | None] = {}
table_version: str = ""
_default_rate = Decimal("7.10")
_rate_override: Decimal | None = None


def _load_builtin() -> None:
    global _table, table_version, _default_rate
    text = resources.files("tokprof.profiler.providers").joinpath("data", PRICES_FILE).read_text(encoding="utf-8")
    doc = json.loads(text)
    table: dict[str, ModelPrice] = {}
    aliases: dict[str, str] = {}
    native: dict[str, dict[str, ModelPrice]] = {}
    for i, row in enumerate(doc.get("models", [])):
        p = price_from_dict(row, f"profiler/providers/data/{PRICES_FILE} row {i}")
        by_cur = native.setdefault(p.model, {})
        if p.currency in by_cur:
            raise PriceFileError(f"profiler/providers/data/{PRICES_FILE} row {i} ({p.model}): a second "
                                 f"{p.currency} row for the same model")
        by_cur[p.currency] = p
        table.setdefault(p.model, p)
        for a in p.aliases:
            aliases[a] = p.model
    _native.clear()
    _native.update(native)
    table_version = str(doc.get("version", ""))
    _default_rate = Decimal(str(doc.get("default_usd_cny", "7.10")))
    _aliases.clear()
    _aliases.update(aliases)
    _table = table


def _ensure() -> dict[str, ModelPrice]:
    if _table is None:
        with _lock:
            if _table is None:
                _load_builtin()
    assert _table is not None
    return _table


def all_prices(*, every_currency: bool = False) -> list[ModelPrice]:
    """Every known price (built-in rows replaced by overrides), sorted by provider and model; with
    ``every_currency`` also the rows of a model's other list currencies."""
    table = dict(_ensure())
    table.update(_overrides)
    rows = list(table.values())
    if every_currency:
        rows += [p for m, by_cur in _native.items() if m not in _overrides
                 for cur, p in by_cur.items() if p is not table[m]]
    return sorted(rows, key=lambda p: (p.provider, p.model, p.currency))


def native_prices(model_key: str) -> dict[str, ModelPrice]:
    """currency -> row of a table key, as the provider lists it in each currency (overrides: their one row)."""
    if model_key in _overrides:
        return {_overrides[model_key].currency: _overrides[model_key]}
    _ensure()
    return dict(_native.get(model_key, {}))


def _lookup(cand: str) -> str | None:
    table = _ensure()
    if cand in _overrides or cand in table:
        return cand
    return _aliases.get(cand)


def resolve_model(model: str) -> str | None:
    """The table key ``model`` resolves to (``None`` if no price is known); see
    :mod:`tokprof.profiler.providers.resolver` for the names tried."""
    if not model:
        return None
    key = model.strip().lower()
    with _lock:
        if key in _resolve_cache:
            return _resolve_cache[key]
    found = resolver.resolve(model, _lookup)
    with _lock:
        _resolve_cache[key] = found
    return found


def suggestions(model: str) -> list[str]:
    """Priced models whose names are close to ``model`` ("did you mean …")."""
    return resolver.suggest(model, [*_ensure(), *_overrides, *_aliases])


def _clear_resolution() -> None:
    with _lock:
        _resolve_cache.clear()


resolver.on_change(_clear_resolution)


def get_price(model: str | None, *, warn: bool = True, currency: str | None = None) -> ModelPrice | None:
    """The price of ``model`` or ``None`` (and one :class:`UnknownModelWarning` per model) if unknown.

    ``currency``: the row the provider lists in that currency when there is one (no conversion), else the
    model's primary row."""
    key = resolve_model(model or "")
    if key is None:
        if warn:
            _warn_unknown(model or "<no model>")
        return None
    if currency:
        native = native_prices(key).get(currency.upper())
        if native is not None:
            return native
    return _overrides.get(key) or _ensure()[key]


def _warn_unknown(model: str) -> None:
    with _lock:
        if model in _warned:
            return
        _warned.add(model)
    close = suggestions(model)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    warnings.warn(
        f"tokprof: no price for model {model!r}{hint}; its cost is shown as unknown. Map an endpoint id or "
        f"in-house name with tokprof.profiler.providers.resolver.set_model_alias() or ${resolver.ALIASES_ENV}, "
        f"or add a price with "
        f"tokprof.profiler.providers.prices.set_price(ModelPrice(model={model!r}, provider=..., currency='USD', input=..., "
        f"output=...)) or a JSON file for tokprof.profiler.providers.prices.load_overrides(path) "
        f"({{\"models\": [{{\"model\": \"{model}\", \"input\": \"1.00\", \"output\": \"2.00\"}}]}}), "
        f"or set TOKPROF_PRICES to that file.",
        UnknownModelWarning, stacklevel=3)


def set_price(price: ModelPrice) -> None:
    """Add or replace the price of ``price.model`` (and its aliases) for this process."""
    p = price if price.model == price.model.lower() else _replace_model(price, price.model.lower())
    with _lock:
        _overrides[p.model] = p
        for a in p.aliases:
            _aliases[a] = p.model
        _resolve_cache.clear()
        _warned.discard(price.model)


def _replace_model(p: ModelPrice, model: str) -> ModelPrice:
    from dataclasses import replace

    return replace(p, model=model)


def load_overrides(path: str | Path) -> list[ModelPrice]:
    """Load user prices from a JSON file (``{"models": [rows]}`` or a list of rows, rows as in the shipped
    table) and apply them with :func:`set_price`. Returns the prices loaded."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: price override file not found") from None
    except json.JSONDecodeError as exc:
        raise PriceFileError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    rows = doc.get("models") if isinstance(doc, dict) else doc
    if not isinstance(rows, list):
        raise PriceFileError(f"{p}: expected {{\"models\": [...]}} or a JSON list of prices")
    prices = [price_from_dict(row, f"{p} row {i}") for i, row in enumerate(rows)]
    for price in prices:
        set_price(price)
    return prices


def reset_overrides() -> None:
    """Forget every override and exchange-rate setting (tests)."""
    global _rate_override
    with _lock:
        _overrides.clear()
        _resolve_cache.clear()
        _warned.clear()
        _rate_override = None
        if _table is not None:
            _load_builtin()


# ---------------------------------------------------------------------------------------------------
# currencies
# ---------------------------------------------------------------------------------------------------
def set_exchange_rate(usd_cny: Decimal | str | float | None) -> None:
    """Set how many CNY one USD buys (``None``: back to ``$TOKPROF_USD_CNY`` or the table's default)."""
    global _rate_override
    _rate_override = None if usd_cny is None else Decimal(str(usd_cny))
    if _rate_override is not None and _rate_override <= 0:
        _rate_override = None
        raise ValueError(f"exchange rate must be > 0, got {usd_cny!r}")


def exchange_rate() -> Decimal:
    """CNY per USD: :func:`set_exchange_rate`, else ``$TOKPROF_USD_CNY``, else the price table's default."""
    if _rate_override is not None:
        return _rate_override
    env = os.environ.get("TOKPROF_USD_CNY")
    if env:
        try:
            rate = Decimal(env)
            if rate > 0:
                return rate
        except Exception:
            pass
        warnings.warn(f"tokprof: TOKPROF_USD_CNY={env!r} is not a positive number; using the default rate",
                      UserWarning, stacklevel=2)
    _ensure()
    return _default_rate


def convert(amount: Decimal, from_cur: str, to_cur: str) -> Decimal:
    """Convert money between USD and CNY at :func:`exchange_rate`."""
    a, b = from_cur.upper(), to_cur.upper()
    if a == b:
        return amount
    if (a, b) == ("USD", "CNY"):
        return amount * exchange_rate()
    if (a, b) == ("CNY", "USD"):
        return amount / exchange_rate()
    raise ValueError(f"cannot convert {from_cur} to {to_cur}: only USD and CNY are supported")


def _env_overrides() -> None:
    path = os.environ.get("TOKPROF_PRICES")
    if path:
        try:
            load_overrides(path)
        except Exception as exc:  # a bad override file must not break an agent run
            warnings.warn(f"tokprof: could not load TOKPROF_PRICES={path!r}: {exc}", UserWarning, stacklevel=2)


_env_overrides()


def pick_model(request_model: str | None, response_model: str | None) -> str | None:
    """The model to record for a call: the response's, unless it does not resolve while the request's does
    (an Ark endpoint answers with ``doubao-seed-1-6-250615``; a proxy may answer with its own name)."""
    if not response_model:
        return request_model
    if not request_model or request_model == response_model:
        return response_model
    if resolve_model(response_model) is None and resolve_model(request_model) is not None:
        return request_model
    return response_model
