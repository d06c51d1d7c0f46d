"""The price table: money per 1M tokens per model, in USD or CNY, with overrides and currency conversion.

The table ships as ``profiler/providers/data/prices.json`` (versioned; every row has its effective date and source
URL). Lookups go through :mod:`tokprof.profiler.providers.resolver` (case, router prefixes, dated
snapshots, separator variants, user aliases for endpoint ids). A model with no price gives ``None`` and one :class:`UnknownModelWarning` naming
it and how to add a price: its cost is unknown, never a silent zero.

A row (:class:`ModelPrice`, :class:`PriceTier`, :func:`price_from_dict`) is defined in
:mod:`tokprof.profiler.providers.price_rows` and re-exported here; this module owns the table's state.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from decimal import Decimal
from importlib import resources
from pathlib import Path

from tokprof.profiler.providers import resolver
from tokprof.profiler.providers.price_rows import PER_TOKENS as PER_TOKENS
from tokprof.profiler.providers.price_rows import ModelPrice as ModelPrice
from tokprof.profiler.providers.price_rows import PriceFileError as PriceFileError
from tokprof.profiler.providers.price_rows import PriceTier as PriceTier
from tokprof.profiler.providers.price_rows import price_from_dict as price_from_dict

PRICES_FILE = "prices.json"


class UnknownModelWarning(UserWarning):
    """No price is known for a model: its cost shows as unknown."""


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


def priced_model(model: str | None, provider: str | None) -> str | None:
    """The name to price a call to ``model`` through ``provider`` by: the host's own row when the host has one
    (``openai/gpt-oss-20b`` through Groq is ``groq/openai/gpt-oss-20b``, Groq's price, not OpenAI's), else
    ``model`` itself. Every place that prices or rules a *call* passes its name through here, so a host's price
    is used wherever the call is shown.

    A local host (Ollama: :data:`tokprof.profiler.providers.resolver.LOCAL_HOSTS`) has no per-token price:
    without a row the user added for it (``ollama/llama3.2:3b``) the answer is ``None``, an unknown cost,
    never the price of a hosted model that happens to share the name (``gpt-oss-20b``)."""
    host = resolver.host_label(provider)
    if not model or host is None:
        return model
    key = f"{host}\x00{model.strip().lower()}"  # never a model name: shares the resolution cache safely
    with _lock:
        cached = key in _resolve_cache
        found = _resolve_cache.get(key)
    if not cached:
        for cand in resolver.candidates(model):
            found = _lookup(cand if cand.startswith(host + "/") else f"{host}/{cand}")
            if found is not None:
                break
        with _lock:
            _resolve_cache[key] = found
    if found is None and host not in resolver.LOCAL_HOSTS:
        return model
    return found


def suggestions(model: str) -> list[str]:
    """Priced models whose names are close to ``model`` ("did you mean …")."""
    return resolver.suggest(model, [*_ensure(), *_overrides, *_aliases])


def _clear_resolution() -> None:
    with _lock:
        _resolve_cache.clear()


resolver.on_change(_clear_resolution)


def get_price(model: str | None, *, warn: bool = True, currency: str | None = None,
              provider: str | None = None) -> ModelPrice | None:
    """The price of ``model`` or ``None`` (and one :class:`UnknownModelWarning` per model) if unknown.

    ``currency``: the row the provider lists in that currency when there is one (no conversion), else the
    model's primary row. ``provider``: the call's provider label, for a host's own row (:func:`priced_model`)."""
    name = priced_model(model, provider) if provider else model
    key = resolve_model(name or "")
    if key is None:
        if warn:
            _warn_unknown(model or "<no model>", local=resolver.is_local(provider))
        return None
    if currency:
        native = native_prices(key).get(currency.upper())
        if native is not None:
            return native
    return _overrides.get(key) or _ensure()[key]


def _warn_unknown(model: str, *, local: bool = False) -> None:
    with _lock:
        if model in _warned:
            return
        _warned.add(model)
    if local:
        # a local model has no list price: a "did you mean" hosted model would invite a wrong price
        warnings.warn(
            f"tokprof: {model!r} is served by a local Ollama, which has no per-token price; its cost is shown as "
            f"unknown (not 0). To put your own figure on it (hardware, power), add a price for "
            f"'ollama/{model}' with tokprof.profiler.providers.prices.set_price() or a TOKPROF_PRICES file.",
            UnknownModelWarning, stacklevel=3)
        return
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
        doc = json.loads(p.read_text(encoding="utf-8-sig"))  # a BOM (Notepad's UTF-8) is not part of the JSON
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: price override file not found") from None
    except json.JSONDecodeError as exc:
        raise PriceFileError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:  # UTF-16, binary: the file named, not only the codec
        raise PriceFileError(f"{p}: not UTF-8 JSON ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise PriceFileError(f"{p}: JSON nested too deeply to read") from None
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
    try:
        _rate_override = None if usd_cny is None else Decimal(str(usd_cny))
    except ArithmeticError:  # decimal.InvalidOperation: not a number at all
        _rate_override = None
        raise ValueError(f"exchange rate must be a number, got {usd_cny!r}") from None
    if _rate_override is not None and not _sane_rate(_rate_override):
        _rate_override = None
        raise ValueError(f"exchange rate must be a finite number in [{MIN_RATE}, {MAX_RATE}], got {usd_cny!r}")


MAX_RATE = Decimal(1000)
"""CNY per USD above this is a typo, not a rate (it has stayed within 6-9 for decades): refused, like inf/NaN,
which would otherwise print ``Infinity`` costs and break the report's arithmetic."""
MIN_RATE = Decimal("0.001")
"""...and below this one too: ``1e-999999`` passed ``> 0`` and turned a 0.002 CNY run into 1.9E+999995 USD
(and a decimal Overflow in the console report)."""


def _sane_rate(rate: Decimal) -> bool:
    return rate.is_finite() and MIN_RATE <= rate <= MAX_RATE


def exchange_rate() -> Decimal:
    """CNY per USD: :func:`set_exchange_rate`, else ``$TOKPROF_USD_CNY``, else the price table's default."""
    if _rate_override is not None:
        return _rate_override
    env = os.environ.get("TOKPROF_USD_CNY")
    if env:
        try:
            rate = Decimal(env)
            if _sane_rate(rate):
                return rate
        except Exception:
            pass
        warnings.warn(f"tokprof: TOKPROF_USD_CNY={env!r} is not a finite number in [{MIN_RATE}, {MAX_RATE}]; "
                      "using the default rate",
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
