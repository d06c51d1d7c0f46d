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


# ---------------------------------------------------------------------------------------------------
# provenance: which rows are confirmed on the provider's own page, and which stay estimated
# ---------------------------------------------------------------------------------------------------
_ANY = "*"
ALLOWED_HOSTS: dict[str, dict[str, tuple[str, ...]]] = {
    # the provider's own pages; regional providers list CNY prices on the mainland site, USD on the international one
    "openai": {_ANY: ("openai.com", "platform.openai.com", "developers.openai.com")},
    "anthropic": {_ANY: ("anthropic.com", "docs.anthropic.com", "platform.claude.com", "claude.com")},
    "google": {_ANY: ("ai.google.dev", "cloud.google.com", "docs.cloud.google.com")},
    "xai": {_ANY: ("docs.x.ai", "x.ai")},
    "deepseek": {_ANY: ("api-docs.deepseek.com", "platform.deepseek.com")},
    "alibaba": {"CNY": ("help.aliyun.com",), "USD": ("www.alibabacloud.com", "alibabacloud.com")},
    "moonshot": {"CNY": ("platform.moonshot.cn",), "USD": ("platform.moonshot.ai", "platform.kimi.ai")},
    "zhipu": {"CNY": ("open.bigmodel.cn", "bigmodel.cn", "www.bigmodel.cn", "docs.bigmodel.cn"),
              "USD": ("docs.z.ai", "z.ai")},
    "minimax": {"CNY": ("platform.minimaxi.com",), "USD": ("platform.minimax.io", "www.minimax.io")},
    "bytedance": {"CNY": ("www.volcengine.com", "volcengine.com"), "USD": ("docs.byteplus.com",)},
    "baidu": {"CNY": ("cloud.baidu.com",)},
    "groq": {_ANY: ("console.groq.com", "groq.com")},
    "mistral": {_ANY: ("docs.mistral.ai", "mistral.ai")},
    "cohere": {_ANY: ("cohere.com", "docs.cohere.com")},
    "together": {_ANY: ("docs.together.ai", "together.ai")},
    "fireworks": {_ANY: ("docs.fireworks.ai", "fireworks.ai")},
}
# cache-rule provider names (billing_rules.json) -> price-table provider whose hosts count as its own pages
RULE_PROVIDER = {"qwen": "alibaba"}


def _host(url: str) -> str:
    from urllib.parse import urlparse

    return (urlparse(url.split()[0]).hostname or "").lower()


def _own_hosts(provider: str, currency: str | None = None) -> tuple[str, ...]:
    by_cur = ALLOWED_HOSTS[provider]
    if currency is None:
        return tuple(h for hosts in by_cur.values() for h in hosts)
    return by_cur.get(_ANY, ()) + by_cur.get(currency, ())


def test_every_row_says_whether_it_is_estimated_and_confirmed_rows_cite_the_providers_own_page() -> None:
    import datetime
    import re

    confirmed = 0
    for r in _rows():
        where = f"{r['model']} ({r['currency']})"
        datetime.date.fromisoformat(r["effective_date"])  # a real date, not just 10 characters
        assert isinstance(r.get("estimated"), bool), f"{where}: 'estimated' must be true or false"
        assert r["provider"] in ALLOWED_HOSTS, f"{where}: no own-domain list for provider {r['provider']}"
        if r["estimated"]:
            assert len(r.get("note", "")) > 20, f"{where}: an estimated row says why"
            continue
        confirmed += 1
        own = _own_hosts(r["provider"], r["currency"])
        assert _host(r["source"]) in own, f"{where}: source {r['source']} is not the provider's own page"
        seen = r.get("confirmed", "")
        m = re.match(r"(\d{4}-\d{2}-\d{2}) (https://\S+)", seen)
        assert m, f"{where}: a confirmed row gives the date and URL it was seen at ({seen!r})"
        datetime.date.fromisoformat(m.group(1))
        assert _host(m.group(2)) in own, f"{where}: confirmed on {m.group(2)}, not the provider's own page"
    assert confirmed >= 17  # 12 Anthropic, 3 OpenAI, 2 BytePlus (2026-12-02)


def test_regional_lists_keep_their_currency() -> None:
    # mainland pages list CNY, international pages list USD: a row's source region matches its currency
    for r in _rows():
        hosts = ALLOWED_HOSTS[r["provider"]]
        if _ANY in hosts or _host(r["source"]) not in _own_hosts(r["provider"]):
            continue
        assert _host(r["source"]) in hosts.get(r["currency"], ()), f"{r['model']} ({r['currency']}): {r['source']}"


def test_tiers_are_contiguous_and_complete() -> None:
    # tiers partition the prompt length: thresholds strictly increase (per output condition) from above 0, and a
    # tier that replaces the prices repeats every kind of price the base row has (else the short-context cache
    # price would silently apply to long prompts)
    for r in _rows():
        where = f"{r['model']} ({r['currency']})"
        by_out: dict[int, list[int]] = {}
        for t in r.get("tiers") or []:
            by_out.setdefault(t.get("output_above", -1), []).append(t["above"])
            for kind in ("cache_read", "cache_write", "cache_write_1h"):
                if kind in r:
                    assert kind in t, f"{where}: tier above {t['above']} lacks {kind}"
            assert Decimal(t["input"]) >= Decimal(r["input"]), f"{where}: a longer prompt is not cheaper"
        for out, aboves in by_out.items():
            assert aboves == sorted(set(aboves)) and aboves[0] >= 0, f"{where}: tiers {aboves} (output>{out})"


def test_documented_rule_fields_cite_the_providers_own_page() -> None:
    for name, data in billing_rules()["providers"].items():
        own = _own_hosts(RULE_PROVIDER.get(name, name))
        blocks = [data.get("provenance") or {}, (data.get("explicit") or {}).get("provenance") or {}]
        for fld, prov in (p for b in blocks for p in b.items()):
            if prov["confidence"] == "documented":
                assert _host(prov["source"]) in own, (name, fld, prov["source"])
            if prov["confidence"] == "calibrated":
                assert "corpus" in prov["source"], (name, fld, "calibrated on named recorded bills")


def test_rows_confirmed_on_provider_pages_hold_the_pages_figures() -> None:
    # oracle: the figures as printed on the provider pages named in each row's 'confirmed' (seen 2026-12-02)
    def row(model: str, cur: str = "USD") -> dict:
        return next(r for r in _rows() if r["model"] == model and r["currency"] == cur)

    def figures(r: dict) -> tuple:
        return tuple(Decimal(r[k]) if k in r else None for k in ("input", "cache_read", "output"))

    d = Decimal
    assert figures(row("gpt-4")) == (d(30), None, d(60))
    assert figures(row("gpt-4.1-nano")) == (d("0.10"), d("0.025"), d("0.40"))
    assert figures(row("gpt-5-nano")) == (d("0.05"), d("0.005"), d("0.4"))
    seed = row("doubao-seed-1.6")  # BytePlus ModelArk: [0, 128K] and (128K, 256K]
    assert figures(seed) == (d("0.25"), d("0.05"), d("2.00"))
    assert [(t["above"], d(t["input"]), d(t["output"])) for t in seed["tiers"]] == [(128000, d("0.5"), d("4.00"))]
    assert figures(row("doubao-seed-1.6-flash")) == (d("0.075"), d("0.015"), d("0.30"))
    # DeepSeek V4, peak-hour figures; off-peak (half) is the row's time_of_day rule, so no longer estimated
    # (tests/test_time_of_day_prices.py prices both)
    assert figures(row("deepseek-flash")) == (d("0.3"), d("0.006"), d("1.2")) and not row("deepseek-flash")["estimated"]
    assert figures(row("deepseek-flash", "CNY")) == (d(2), d("0.04"), d(8))
    assert figures(row("deepseek-v4-pro")) == (d("1.32"), d("0.044"), d("3.96"))
    assert figures(row("deepseek-v4-pro", "CNY")) == (d(9), d("0.30"), d(27))


def test_unconfirmed_rows_stay_estimated() -> None:
    # no DeepSeek V3.2 row was seen on DeepSeek's own page (only third-party copies): both currencies estimated
    for r in _rows():
        if r["model"] in ("deepseek-chat", "deepseek-reasoner"):
            assert r["estimated"] and "third-party" in r["note"], r
    assert get_price("deepseek-chat", currency="USD").estimated
    # nor any Qwen, GLM, Kimi, MiniMax, mainland Doubao or Gemini row, except one confirmed on the provider's
    # own page (the Qwen embedding rows: help.aliyun.com / alibabacloud.com)
    own = {"alibaba": ("https://help.aliyun.com/", "https://www.alibabacloud.com/")}
    for r in _rows():
        if r["provider"] in ("alibaba", "zhipu", "moonshot", "minimax", "google") or \
                (r["provider"] == "bytedance" and r["currency"] == "CNY"):
            confirmed = r.get("confirmed", "").split(" ")[1:2]
            if confirmed and confirmed[0].startswith(own.get(r["provider"], ("-",))):
                assert not r["estimated"]
                continue
            assert r["estimated"], f"{r['model']} ({r['currency']})"


def test_native_usd_row_for_doubao_and_v4_aliases() -> None:
    # BytePlus' international USD list is used as is for a USD report, not the CNY list converted
    assert split_cost(TokenSplit(10_000, 10_000, output=1_000), default_prices("doubao-seed-1.6"), None, "USD") == \
        (10_000 * Decimal("0.25") + 1_000 * 2) / Decimal(10**6)
    assert split_cost(TokenSplit(10_000, 10_000), default_prices("doubao-seed-1.6"), None, "CNY") == \
        10_000 * Decimal("0.8") / Decimal(10**6)
    # DeepSeek's retired name deepseek-v4-flash is served (and billed) as deepseek-flash
    assert get_price("deepseek-v4-flash").model == "deepseek-flash"
    assert get_price("deepseek-v4-flash", currency="CNY").input == Decimal(2)
