"""Which currency a run is reported in, and how money is written.

Prices are stored in the currency each provider lists them in (:mod:`tokprof.profiler.providers.prices`);
conversion happens only when a report asks for another currency, at the documented, settable rate
(:func:`~tokprof.profiler.providers.prices.exchange_rate`: ``set_exchange_rate()``, ``$TOKPROF_USD_CNY`` or the
table's default).

The reporting currency, strongest first: an explicit choice (``--currency``, a function argument), the
run's own (``profile(currency=…)`` stores ``run.metadata["currency"]``), ``$TOKPROF_CURRENCY``, else the
currency the run's models are listed in — a run on CNY-priced models (Qwen, GLM, Kimi, Doubao…) reports in
CNY — and USD for a mix or when nothing is priced.
"""

from __future__ import annotations

import os
from collections import Counter
from decimal import Decimal
from typing import Any, Iterable

CURRENCY_ENV = "TOKPROF_CURRENCY"
SUPPORTED = ("USD", "CNY")
SYMBOLS = {"USD": "$", "CNY": "¥"}


class CurrencyError(ValueError):
    """An unsupported currency was asked for."""


def check(currency: str) -> str:
    """``currency`` upper-cased, or :class:`CurrencyError` naming the supported ones."""
    cur = str(currency).strip().upper()
    if cur not in SUPPORTED:
        raise CurrencyError(f"unsupported currency {currency!r}: use one of {', '.join(SUPPORTED)}")
    return cur


def models_currency(models: Iterable[str | None]) -> str | None:
    """The list currency shared by every priced model in ``models`` (``None``: none priced, or a mix)."""
    from tokprof.profiler.providers.prices import get_price

    seen: Counter[str] = Counter()
    try:
        for m in models:
            p = get_price(m, warn=False) if m else None
            if p is not None:
                seen[p.currency] += 1
    except Exception:  # noqa: BLE001 - a broken price table must not break a summary: fall back to USD
        return None
    return next(iter(seen)) if len(seen) == 1 else None


def run_currency(runs: Any, explicit: str | None = None) -> str:
    """The currency to report ``runs`` (a run or runs) in (see the module docstring)."""
    if explicit:
        return check(explicit)
    items = list(runs) if isinstance(runs, (list, tuple)) else [runs]
    chosen = {str(r.metadata.get("currency")).upper() for r in items
              if getattr(r, "metadata", None) and r.metadata.get("currency")}
    if len(chosen) == 1:
        return check(chosen.pop())
    env = os.environ.get(CURRENCY_ENV)
    if env:
        return check(env)
    models = (s.llm.model for r in items for s in getattr(r, "spans", []) if getattr(s, "llm", None) is not None)
    return models_currency(models) or "USD"


def money(amount: Decimal | float | str | None, currency: str, places: int = 4) -> str:
    """``$0.0123`` / ``¥0.0873``; ``unknown`` when the amount is unknown (never a zero, never a bare symbol)."""
    if amount is None:
        return "unknown"
    value = Decimal(str(amount))
    sym = SYMBOLS.get(currency.upper())
    text = f"{value:,.{places}f}"
    return f"{sym}{text}" if sym else f"{text} {currency.upper()}"
