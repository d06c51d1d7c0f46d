"""Red team 5: price override files and TOKPROF_* settings with hostile values. Time-of-day rules with
bad hours, time zones, weekday ranges and factors, tiers and prices out of range were already refused
naming file and row (price_rows.py); what was not: a rate of 1e-999999 CNY per USD, a BOM, UTF-16 and
deeply nested JSON in a price file."""

from __future__ import annotations

import json
import warnings
from decimal import Decimal
from pathlib import Path

import pytest

from tokprof.profiler.providers import prices
from tokprof.profiler.providers.price_rows import PriceFileError


@pytest.fixture(autouse=True)
def _clean_prices():
    prices.reset_overrides()
    yield
    prices.reset_overrides()


@pytest.mark.parametrize("value", ["1e-999999", "1e-30", "0.0000001"])
def test_a_near_zero_exchange_rate_is_refused(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: TOKPROF_USD_CNY=1e-999999 passed the ``> 0`` check; `tokprof show --currency USD` of a 0.002
    CNY qwen-max run printed 1.968E+999995 USD and a decimal Overflow internal error in the console tree."""
    monkeypatch.delenv("TOKPROF_USD_CNY", raising=False)
    default = prices.exchange_rate()
    monkeypatch.setenv("TOKPROF_USD_CNY", value)
    with pytest.warns(UserWarning, match="TOKPROF_USD_CNY"):
        assert prices.exchange_rate() == default
    with pytest.raises(ValueError, match="exchange rate"):
        prices.set_exchange_rate(value)
    assert prices.convert(Decimal("0.002"), "CNY", "USD") == Decimal("0.002") / default


def _row() -> dict[str, str]:
    return {"model": "redteam5-model", "input": "0.27", "output": "1.1", "currency": "USD"}


def test_price_file_with_a_bom_loads(tmp_path: Path) -> None:
    """Before: "not valid JSON (Unexpected UTF-8 BOM)" and the override was ignored (a warning at import)."""
    path = tmp_path / "prices.json"
    path.write_text("\ufeff" + json.dumps({"models": [_row()]}), encoding="utf-8")
    (price,) = prices.load_overrides(path)
    assert (price.model, price.input, price.output) == ("redteam5-model", Decimal("0.27"), Decimal("1.1"))


@pytest.mark.parametrize("name,content", [
    ("utf16.json", json.dumps({"models": [_row()]}).encode("utf-16")),
    ("deep.json", ('{"models": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()),
], ids=["utf16", "deep"])
def test_unreadable_price_file_is_a_price_file_error_naming_it(name: str, content: bytes, tmp_path: Path) -> None:
    """Before: load_overrides (the documented API) raised a bare UnicodeDecodeError / RecursionError that named
    no file."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(PriceFileError, match=str(path)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prices.load_overrides(path)
