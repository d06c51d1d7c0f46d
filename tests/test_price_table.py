"""Integrity of the shipped price table and cache rules (issue #15 points 3 and 4)."""

from __future__ import annotations

import json
from decimal import Decimal
from importlib import resources

from tokprof.profiler.providers.cache_rules import CONFIDENCE_LEVELS, billing_rules, cache_rule, provider_of
from tokprof.profiler.providers.cost import TokenSplit, default_prices, split_cost
from tokprof.profiler.providers.prices import all_prices, get_price


def _rows() -> list[dict]:
    text = resources.files("tokprof.profiler.providers").joinpath("data", "prices.json").read_text("utf-8")
    return json.loads(text)["models"]


def test_every_row_has_provider_currency_source_date_and_contiguous_tiers() -> None:
    seen: set[tuple[str, str]] = set()
    for r in _rows():
        where = f"{r['model']} ({r.get('currency')})"
        assert r.get("provider") and r.get("currency") in ("USD", "CNY"), where
        assert r.get("source", "").startswith("https://"), where
        assert len(r.get("effective_date", "")) == 10, where
        assert (r["model"], r["currency"]) not in seen, f"duplicate row {where}"
        seen.add((r["model"], r["currency"]))
        # mainland lists are CNY, international lists USD: a row's currency matches its source's region
        if r["currency"] == "CNY":
            assert not r["source"].startswith(("https://www.alibabacloud.com", "https://platform.moonshot.ai")), where
        tiers = r.get("tiers") or []
        keys = [(t["above"], t.get("output_above", -1)) for t in tiers]
        assert keys == sorted(keys) and len(set(keys)) == len(keys), f"{where}: tiers out of order"
        for t in tiers:
            assert t["above"] >= 0 and Decimal(t["input"]) >= 0 and Decimal(t["output"]) >= 0, where
        if r.get("estimated"):
            assert r.get("note"), f"{where}: an estimated row says why"


def test_every_model_with_cache_prices_has_a_cache_rule() -> None:
    for p in all_prices(every_currency=True):
        if p.cache_read is not None or p.cache_write is not None:
            rule = cache_rule(p.provider, p.model)
            assert rule.caches, f"{p.model}: cache price but no caching rule"


def test_rule_fields_carry_source_and_confidence() -> None:
    for name, data in billing_rules()["providers"].items():
        assert data.get("sources"), name
        for fld, prov in (data.get("provenance") or {}).items():
            assert prov.get("confidence") in CONFIDENCE_LEVELS, (name, fld)
            assert prov.get("source"), (name, fld)
    # the rules the issue names
    assert cache_rule(None, "claude-opus-4-6").min_tokens == 4096
    assert cache_rule(None, "claude-opus-4-5-20251101").min_tokens == 4096
    assert cache_rule(None, "claude-haiku-4-5").min_tokens == 4096
    assert cache_rule(None, "claude-sonnet-4-5").min_tokens == 1024
    assert cache_rule(None, "moonshot-v1-8k").mode == "none"           # explicit caching API only
    assert cache_rule(None, "kimi-k2-0905-preview").mode == "automatic"
    assert cache_rule(None, "gpt-4.1").ttl_extended_s == 86400          # prompt_cache_retention="24h"
    assert cache_rule(None, "gemini-2.5-pro").min_tokens == 4096
    assert cache_rule(None, "gemini-2.5-flash").min_tokens == 1024
    assert cache_rule(None, "gemini-2.5-flash", explicit=True).mode == "explicit"
    for model in ("glm-4.5", "minimax-m2", "doubao-seed-1.6"):
        assert cache_rule(None, model).caches, model
    assert cache_rule(None, "gpt-4.1").field_confidence["ttl_seconds"] == "assumed"
    assert cache_rule(None, "gpt-4.1").field_confidence["output_reuse_gap_tokens"] == "calibrated"
    assert cache_rule(None, "claude-sonnet-4-5").confidence == "documented"
    # the model decides whose cache: DeepSeek through the OpenAI client, Gemini on Vertex AI
    assert provider_of("openai", "deepseek-chat") == "deepseek"
    assert provider_of("vertex_ai", "gemini-2.0-flash") == "google"
    assert provider_of("azure", "my-gpt-deployment") == "openai"


def test_native_currency_rows_are_used_not_converted() -> None:
    # Qwen3-Max: mainland list 6 CNY, international list 1.2 USD per 1M input tokens (0-32K)
    split = TokenSplit(10_000, 10_000)
    rates = default_prices("qwen3-max")
    assert split_cost(split, rates, None, "CNY") == Decimal("0.06")
    assert split_cost(split, rates, None, "USD") == Decimal("0.012")
    assert get_price("qwen3-max", currency="USD").currency == "USD"
    # a model listed in CNY only is converted at display time
    assert split_cost(split, default_prices("glm-4-plus"), None, "USD") == Decimal("0.05") / Decimal("7.10")


def test_glm_short_output_tier() -> None:
    # GLM-4.5: prompt <= 32K with <= 200 output tokens 2/8 CNY; longer replies 3/14; prompts over 32K 4/16
    rates = default_prices("glm-4.5")
    assert split_cost(TokenSplit(10_000, 10_000, output=200), rates) == (10_000 * 2 + 200 * 8) / Decimal(10**6)
    assert split_cost(TokenSplit(10_000, 10_000, output=201), rates) == (10_000 * 3 + 201 * 14) / Decimal(10**6)
    assert split_cost(TokenSplit(40_000, 40_000, output=50), rates) == (40_000 * 4 + 50 * 16) / Decimal(10**6)


def test_anthropic_4_6_long_context_has_no_premium_but_4_5_does() -> None:
    big = TokenSplit(300_000, 300_000)
    assert split_cost(big, default_prices("claude-sonnet-4-6")) == Decimal("0.9")   # 300K x $3
    assert split_cost(big, default_prices("claude-sonnet-4-5")) == Decimal("1.8")   # 300K x $6 above 200K
