"""Price table, lookups, currencies, overrides and cost arithmetic on known numbers."""

from __future__ import annotations

import json
import warnings
from decimal import Decimal
from pathlib import Path

import pytest

from tokprof.profiler.providers import prices
from tokprof.profiler.accounting import call_cost, fill_usage, usage_cost
from tokprof.profiler.model import Cost, LLMCall, Usage
from tokprof.profiler.providers.prices import (
    ModelPrice,
    PriceFileError,
    UnknownModelWarning,
    all_prices,
    convert,
    get_price,
    load_overrides,
    set_exchange_rate,
    set_price,
)


@pytest.fixture(autouse=True)
def _clean_prices():
    prices.reset_overrides()
    yield
    prices.reset_overrides()


def test_table_covers_the_providers_and_at_least_60_models() -> None:
    rows = all_prices()
    assert len(rows) >= 60
    providers = {p.provider for p in rows}
    assert {"openai", "anthropic", "google", "xai", "alibaba", "deepseek", "moonshot", "zhipu", "minimax",
            "bytedance", "baidu"} <= providers
    assert {p.currency for p in rows} == {"USD", "CNY"}
    for p in rows:
        assert p.source.startswith("https://"), p.model
        assert len(p.effective_date) == 10, p.model
        assert isinstance(p.input, Decimal) and isinstance(p.output, Decimal)


@pytest.mark.parametrize("name,key", [
    ("gpt-4.1-2025-04-14", "gpt-4.1"), ("openai/gpt-4.1", "gpt-4.1"), ("GPT-4o", "gpt-4o"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"), ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
    ("anthropic/claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
    ("claude-3-5-sonnet@20241022", "claude-3-5-sonnet"), ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
    ("xai/grok-3", "grok-3"), ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"), ("deepseek-v3", "deepseek-chat"),
    ("qwen-plus-latest", "qwen-plus"), ("kimi-k2", "kimi-k2-0905-preview"), ("models/gemini-2.5-pro", "gemini-2.5-pro"),
])
def test_lookup_resolves_snapshots_prefixes_and_case(name: str, key: str) -> None:
    p = get_price(name)
    assert p is not None and p.model == key


def test_unknown_model_warns_once_and_costs_unknown() -> None:
    call = LLMCall(model="acme-llm-9", usage=Usage.from_provider(input_tokens=100, output_tokens=10))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert call_cost(call) is None
        assert call_cost(call) is None
    hits = [w for w in caught if issubclass(w.category, UnknownModelWarning)]
    assert len(hits) == 1
    assert "acme-llm-9" in str(hits[0].message) and "load_overrides" in str(hits[0].message)


def test_cost_with_cache_reads_and_writes_is_not_double_billed() -> None:
    # claude-sonnet-4-5: input 3, output 15, cache read 0.30, cache write (5m) 3.75 per 1M.
    u = Usage.from_provider(input_tokens=10_000, output_tokens=500, cache_read_tokens=6_000, cache_write_tokens=2_000)
    c = usage_cost(u, "claude-sonnet-4-5")
    expected = (Decimal(2_000) * 3 + Decimal(6_000) * Decimal("0.30") + Decimal(2_000) * Decimal("3.75")
                + Decimal(500) * 15) / Decimal(1_000_000)
    assert c == Cost(expected, "USD", "computed")
    assert c.amount == Decimal("0.0228")
    # gpt-4.1: cached input 0.50; no separate write price -> writes billed as input.
    u = Usage.from_provider(input_tokens=3_000, output_tokens=100, cache_read_tokens=2_048)
    assert usage_cost(u, "gpt-4.1").amount == (Decimal(952) * 2 + Decimal(2_048) * Decimal("0.5") + 100 * 8) / 10**6


def test_long_context_tier() -> None:
    small = usage_cost(Usage.from_provider(input_tokens=200_000, output_tokens=0), "gemini-2.5-pro")
    big = usage_cost(Usage.from_provider(input_tokens=200_001, output_tokens=0), "gemini-2.5-pro")
    assert small.amount == Decimal("0.25")           # 200k x 1.25 / 1M
    assert big.amount == Decimal(200_001) * Decimal("2.50") / 10**6


def test_reasoning_priced_separately_when_billed_differently() -> None:
    u = Usage.from_provider(input_tokens=1_000_000, output_tokens=1_000_000, reasoning_tokens=400_000)
    c = usage_cost(u, "qwen-plus")  # CNY: input 0.8, output 2, thinking output 8
    assert c.currency == "CNY" or c.currency == "USD"
    assert usage_cost(u, "qwen-plus", "CNY").amount == Decimal("0.8") + Decimal("1.2") + Decimal("3.2")
    # o3 bills reasoning as output
    assert usage_cost(u, "o3").amount == Decimal(2) + Decimal(8)


def test_currency_conversion_and_configurable_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    assert convert(Decimal(1), "USD", "USD") == 1
    monkeypatch.setenv("TOKPROF_USD_CNY", "7.0")
    assert convert(Decimal(2), "USD", "CNY") == Decimal("14.0")
    assert convert(Decimal(14), "CNY", "USD") == Decimal(2)
    set_exchange_rate("7.25")
    assert convert(Decimal(1), "USD", "CNY") == Decimal("7.25")
    u = Usage.from_provider(input_tokens=1_000_000, output_tokens=0)
    assert usage_cost(u, "qwen-max", "USD").amount == Decimal("2.4") / Decimal("7.25")
    with pytest.raises(ValueError):
        convert(Decimal(1), "USD", "EUR")


@pytest.mark.parametrize("bad", ["inf", "-inf", "NaN", "1e400", "-7", "0", "abc", "1001"])
def test_an_absurd_exchange_rate_is_refused(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An infinite or absurd $TOKPROF_USD_CNY printed ``Infinity`` costs and crashed the report: the default
    rate is used instead, with a warning; ``set_exchange_rate`` raises."""
    set_exchange_rate(None)
    monkeypatch.delenv("TOKPROF_USD_CNY", raising=False)
    default = convert(Decimal(1), "USD", "CNY")
    monkeypatch.setenv("TOKPROF_USD_CNY", bad)
    with pytest.warns(UserWarning, match="TOKPROF_USD_CNY"):
        assert convert(Decimal(1), "USD", "CNY") == default
    with pytest.raises(ValueError):
        set_exchange_rate(bad)
    assert convert(Decimal(1), "USD", "CNY") == default


def test_overrides_from_api_and_file(tmp_path: Path) -> None:
    set_price(ModelPrice("acme-llm", "acme", "USD", Decimal(1), Decimal(2), None, None, None, None, (),
                         "2026-01-01", "https://acme.example/pricing"))
    assert usage_cost(Usage.from_provider(input_tokens=1_000_000, output_tokens=500_000), "acme/acme-llm").amount == 2
    f = tmp_path / "prices.json"
    f.write_text(json.dumps({"models": [{"model": "gpt-4.1", "provider": "openai", "currency": "USD",
                                         "input": "1.00", "output": "4.00", "effective_date": "2026-06-01",
                                         "source": "contract"}]}))
    loaded = load_overrides(f)
    assert [p.model for p in loaded] == ["gpt-4.1"]
    assert get_price("gpt-4.1-2025-04-14").input == Decimal("1.00")
    bad = tmp_path / "bad.json"
    bad.write_text('{"models": [{"model": "x", "input": "abc", "output": 1}]}')
    with pytest.raises(PriceFileError, match="bad.json.*input"):
        load_overrides(bad)


def test_recorded_cost_is_returned_as_is_and_fill_never_overwrites_provider() -> None:
    rec = Cost(Decimal("0.001252"), "USD", "recorded")
    call = LLMCall(model="gpt-4.1", messages=[{"role": "user", "content": "hi"}], output={"role": "assistant",
                   "content": "hello"}, usage=Usage.from_provider(input_tokens=450), cost=rec)
    fill_usage(call)
    assert call.usage.input_tokens == 450 and call.usage.source("input_tokens") == "provider"
    assert call.usage.source("output_tokens") == "counted" and call.usage.output_tokens == 1
    assert call_cost(call) is rec
    assert call_cost(call, "CNY").source == "recorded"


def test_estimated_tokens_give_estimated_cost() -> None:
    call = LLMCall(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hello"}], output="hi")
    fill_usage(call)
    assert call.usage.source("input_tokens") == "estimated"
    assert call_cost(call).source == "estimated"
    # gpt-5-nano's row is confirmed on OpenAI's page: counted tokens x confirmed price = computed
    call = LLMCall(model="gpt-5-nano", messages=[{"role": "user", "content": "hello"}], output="hi")
    fill_usage(call)
    assert call_cost(call).source == "computed"
    # gpt-4o's row could not be confirmed on OpenAI's page (estimated: true): its cost says so too
    call = LLMCall(model="gpt-4o", messages=[{"role": "user", "content": "hello"}], output="hi")
    fill_usage(call)
    assert call_cost(call).source == "estimated"
    assert call_cost(LLMCall(model="gpt-4o")) is None  # nothing known: unknown, not zero


@pytest.mark.parametrize("row, says", [
    ({"input": "1", "output": "NaN"}, "output='NaN' must be a finite number"),
    ({"input": "1e999999", "output": "1"}, "input='1e999999' must be a finite number"),
    ({"input": "1", "output": "1", "tiers": [{"above": "x", "input": "1"}]}, "tier 0: above='x' is not a whole"),
    ({"input": "1", "output": "1", "tiers": [5]}, "tier 0: a tier is an object"),
    ({"input": "1", "output": "1", "tiers": [{"above": -3, "input": "1"}]}, "above=-3 must be in"),
])
def test_a_bad_price_file_names_its_row_and_field(tmp_path: Path, row: dict, says: str) -> None:
    """A NaN price raised a bare ``decimal.InvalidOperation`` (the warning said ``[<class ...>]``), a bad tier
    a ``ValueError``/``TypeError``: each now names file, row, model and field."""
    from tokprof.profiler.providers.price_rows import PriceFileError

    f = tmp_path / "prices.json"
    f.write_text(json.dumps({"models": [{"model": "acme-x", "provider": "acme", "currency": "USD", **row}]}))
    with pytest.raises(PriceFileError, match="acme-x") as info:
        load_overrides(f)
    assert says in str(info.value) and "prices.json" in str(info.value)
