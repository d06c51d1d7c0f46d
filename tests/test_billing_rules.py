"""The billing simulator against hand-computed bills, one provider rule at a time.

Token counts are set explicitly on each call (as a provider would report them); the simulator decides
where prefixes match from the messages and bills the recorded counts. Prices are a private table so the
expected amounts can be computed by hand: per 1M tokens.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tokprof.optimizers.billing import (
    BillingError,
    Rates,
    bill_run,
    cache_rule,
    price_run,
    provider_of,
)
from tokprof.profiler.model import LLMCall, Run, Span, Usage

MIN = 60 * 1_000_000_000
PRICES = {
    "gpt-4.1": Rates(Decimal("2"), Decimal("8"), Decimal("0.5")),
    "claude-sonnet-4-5": Rates(Decimal("3"), Decimal("15"), Decimal("0.3"), Decimal("3.75"), Decimal("6")),
    "claude-3-5-haiku": Rates(Decimal("0.8"), Decimal("4")),  # no cache prices: rule multipliers apply
    "deepseek-chat": Rates(Decimal("0.27"), Decimal("1.10"), Decimal("0.07")),
    "qwen-plus": Rates(Decimal("0.4"), Decimal("1.2")),
    "kimi-k2": Rates(Decimal("0.6"), Decimal("2.5")),
}


def prices(model: str | None) -> Rates | None:
    return PRICES.get(model or "")


SYSTEM = "You are a careful airline agent. " * 60
USER1 = "I want to change my flight to Boston tomorrow morning, please. " * 20
USER2 = "Actually make it the afternoon flight and add a checked bag. " * 20


def call_span(i: int, provider: str, model: str, messages: list[dict], tokens: int, *, at_min: float = 0.0,
              out: int = 10, plan: dict | None = None, output: dict | None = None) -> Span:
    t = int(at_min * MIN)
    call = LLMCall(provider=provider, model=model, messages=messages, output=output,
                   usage=Usage.from_provider(input_tokens=tokens, output_tokens=out))
    s = Span(f"s{i}", None, "r", "llm", f"call {i}", start_ns=t, wall_start_ns=t, end_ns=t, llm=call)
    if plan is not None:
        s.set_attribute("billing.plan", plan)
    return s


def run_of(*spans: Span, mode: str | None = None) -> Run:
    r = Run(run_id="r", spans=list(spans))
    if mode:
        r.metadata["billing"] = {"mode": mode}
    return r


def sysmsg() -> dict:
    return {"role": "system", "content": SYSTEM}


def usr(text: str) -> dict:
    return {"role": "user", "content": text}


def cost(fresh: int, read: int, out: int, p_in: str, p_read: str, p_out: str, write: int = 0,
         p_write: str = "0") -> Decimal:
    return (fresh * Decimal(p_in) + read * Decimal(p_read) + write * Decimal(p_write)
            + out * Decimal(p_out)) / Decimal(1_000_000)


# ---------------------------------------------------------------------------------------------------
# rules data
# ---------------------------------------------------------------------------------------------------
def test_rules_resolve_providers_and_carry_sources() -> None:
    assert provider_of("openai", "gpt-4.1") == "openai"
    assert provider_of(None, "claude-sonnet-4-5") == "anthropic"
    assert provider_of("openai", "gpt-oss-120b") is None  # open-weight: caching depends on the host
    assert provider_of(None, "some-local-model") is None
    r = cache_rule("openai", "gpt-4.1")
    assert (r.mode, r.min_tokens, r.block_tokens, r.read_multiplier) == ("automatic", 1024, 128, Decimal("0.25"))
    a = cache_rule("anthropic", "claude-sonnet-4-5")
    assert (a.mode, a.max_breakpoints, a.min_tokens, a.write_multiplier, a.write_1h_multiplier,
            a.read_multiplier) == ("explicit", 4, 1024, Decimal("1.25"), Decimal("2.0"), Decimal("0.1"))
    assert cache_rule("anthropic", "claude-3-5-haiku").min_tokens == 2048
    for rule in (r, a, cache_rule(None, "deepseek-chat"), cache_rule(None, "qwen-plus"), cache_rule(None, "kimi-k2")):
        assert rule.sources and all(s.startswith("https://") for s in rule.sources)


# ---------------------------------------------------------------------------------------------------
# OpenAI automatic prefix caching
# ---------------------------------------------------------------------------------------------------
def test_openai_hit_in_128_token_steps() -> None:
    # call 2 re-sends call 1's whole prompt (1,500 tokens) and adds a message: 1,500 -> 11 steps of 128
    run = run_of(call_span(1, "openai", "gpt-4.1", [sysmsg()], 1500, out=10),
                 call_span(2, "openai", "gpt-4.1", [sysmsg(), usr(USER1)], 2000, at_min=1, out=20),
                 mode="automatic")
    bill = bill_run(run, prices=prices)
    c1, c2 = bill.calls
    assert (c1.cache_read_tokens, c2.cache_read_tokens) == (0, 1408)
    assert c1.cost == cost(1500, 0, 10, "2", "0.5", "8")
    assert c2.cost == cost(2000 - 1408, 1408, 20, "2", "0.5", "8")
    assert c2.basis == "simulated"


def test_openai_minimum_1024_tokens() -> None:
    run = run_of(call_span(1, "openai", "gpt-4.1", [sysmsg()], 1000),
                 call_span(2, "openai", "gpt-4.1", [sysmsg(), usr(USER1)], 1900, at_min=1),
                 mode="automatic")
    c2 = bill_run(run, prices=prices).calls[1]
    assert c2.cache_read_tokens == 0  # only 1,000 shared tokens: below the 1,024 minimum
    assert c2.cost == cost(1900, 0, 10, "2", "0.5", "8")


def test_openai_expiry_after_idle_minutes() -> None:
    def second_at(minutes: float) -> int:
        run = run_of(call_span(1, "openai", "gpt-4.1", [sysmsg()], 1500),
                     call_span(2, "openai", "gpt-4.1", [sysmsg(), usr(USER1)], 2000, at_min=minutes),
                     mode="automatic")
        return bill_run(run, prices=prices).calls[1].cache_read_tokens

    assert second_at(5) == 1408
    assert second_at(11) == 0  # idle longer than the 10-minute lifetime


def test_openai_reuses_generated_output() -> None:
    # the next prompt replays call 1's reply: prompt 1,000 + 120 output - 4 = 1,116 shared -> 1,024
    reply = {"role": "assistant", "content": "Sure, let me look up flights to Boston for tomorrow. " * 8}
    run = run_of(call_span(1, "openai", "gpt-4.1", [sysmsg()], 1000, out=120, output=reply),
                 call_span(2, "openai", "gpt-4.1", [sysmsg(), reply, usr(USER1)], 1500, at_min=1),
                 mode="automatic")
    assert bill_run(run, prices=prices).calls[1].cache_read_tokens == 1024


def test_modes_recorded_automatic_and_reported_cache_tokens() -> None:
    spans = [call_span(1, "openai", "gpt-4.1", [sysmsg()], 1500),
             call_span(2, "openai", "gpt-4.1", [sysmsg(), usr(USER1)], 2000, at_min=1)]
    # recorded (default): no cache tokens in the file -> billed uncached
    rec = bill_run(run_of(*spans), prices=prices)
    assert [c.basis for c in rec.calls] == ["uncached", "uncached"]
    assert rec.calls[1].cache_read_tokens == 0
    # a provider-reported cache count wins in recorded and automatic modes
    spans[1].llm.usage.set("cache_read_tokens", 1280, "provider")
    for mode in (None, "automatic"):
        c2 = bill_run(run_of(*spans), mode=mode, prices=prices).calls[1]
        assert (c2.basis, c2.cache_read_tokens) == ("recorded", 1280)
        assert c2.cost == cost(720, 1280, 10, "2", "0.5", "8")
    total, per_call = price_run(run_of(*spans), prices=prices)
    assert total == sum(per_call)


def test_unknown_price_is_unknown_not_zero() -> None:
    run = run_of(call_span(1, "openai", "gpt-unknown-9", [sysmsg()], 1500))
    total, per_call = price_run(run, prices=prices)
    assert total is None and per_call == [None]


# ---------------------------------------------------------------------------------------------------
# Anthropic explicit breakpoints
# ---------------------------------------------------------------------------------------------------
def test_anthropic_write_then_read() -> None:
    run = run_of(
        call_span(1, "anthropic", "claude-sonnet-4-5", [sysmsg(), usr(USER1)], 1500, plan={"breakpoints": [1]}),
        call_span(2, "anthropic", "claude-sonnet-4-5", [sysmsg(), usr(USER1), usr(USER2)], 2000, at_min=2,
                  plan={"breakpoints": [1, 2]}),
        mode="simulate")
    c1, c2 = bill_run(run, prices=prices).calls
    assert (c1.cache_write_tokens, c1.cache_read_tokens) == (1500, 0)
    assert c1.cost == cost(0, 0, 10, "3", "0.3", "15", write=1500, p_write="3.75")
    assert (c2.cache_read_tokens, c2.cache_write_tokens) == (1500, 500)
    assert c2.cost == cost(0, 1500, 10, "3", "0.3", "15", write=500, p_write="3.75")


def test_anthropic_one_hour_ttl_writes_at_2x() -> None:
    run = run_of(call_span(1, "anthropic", "claude-sonnet-4-5", [sysmsg(), usr(USER1)], 1500,
                           plan={"breakpoints": [1], "ttl": "1h"}),
                 call_span(2, "anthropic", "claude-sonnet-4-5", [sysmsg(), usr(USER1), usr(USER2)], 2000,
                           at_min=30, plan={"breakpoints": [1], "ttl": "1h"}),
                 mode="simulate")
    c1, c2 = bill_run(run, prices=prices).calls
    assert c1.cache_write_1h_tokens == 1500 and c1.cost == cost(0, 0, 10, "3", "0.3", "15", 1500, "6")
    assert c2.cache_read_tokens == 1500  # 30 minutes later: alive under the 1-hour TTL
    assert c2.cost == cost(500, 1500, 10, "3", "0.3", "15")


def test_anthropic_minimum_by_model_and_multiplier_fallback() -> None:
    # 1,500 tokens: enough for Sonnet (1,024) but not for Haiku 3.5 (2,048)
    plan = {"breakpoints": [0]}
    haiku = run_of(call_span(1, "anthropic", "claude-3-5-haiku", [sysmsg()], 1500, plan=plan),
                   call_span(2, "anthropic", "claude-3-5-haiku", [sysmsg(), usr(USER1)], 1900, at_min=1, plan=plan),
                   mode="simulate")
    assert [(c.cache_write_tokens, c.cache_read_tokens) for c in bill_run(haiku, prices=prices).calls] == [(0, 0)] * 2
    big = run_of(call_span(1, "anthropic", "claude-3-5-haiku", [sysmsg()], 2500, plan=plan),
                 call_span(2, "anthropic", "claude-3-5-haiku", [sysmsg(), usr(USER1)], 3000, at_min=1, plan=plan),
                 mode="simulate")
    c1, c2 = bill_run(big, prices=prices).calls
    assert c1.cache_write_tokens == 2500
    # no cache prices in the table: write = 1.25 x 0.8, read = 0.1 x 0.8
    assert c1.cost == cost(0, 0, 10, "0.8", "0.08", "4", 2500, "1.00")
    assert c2.cache_read_tokens == 2500 and c2.cost == cost(500, 2500, 10, "0.8", "0.08", "4")


def test_anthropic_breakpoint_limit() -> None:
    msgs = [sysmsg()] + [usr(f"message {i} " * 50) for i in range(5)]
    run = run_of(call_span(1, "anthropic", "claude-sonnet-4-5", msgs, 3000, plan={"breakpoints": [0, 1, 2, 3, 4]}),
                 mode="simulate")
    with pytest.raises(BillingError, match="5 cache breakpoints.*allows 4"):
        bill_run(run, prices=prices)


def test_anthropic_expiry_and_refresh_on_hit() -> None:
    def bills(*minutes: float) -> list[int]:
        spans = []
        msgs = [sysmsg(), usr(USER1)]
        for i, m in enumerate(minutes):
            spans.append(call_span(i, "anthropic", "claude-sonnet-4-5", list(msgs), 1500,
                                   at_min=m, plan={"breakpoints": [1]}))
        return [c.cache_read_tokens for c in bill_run(run_of(*spans, mode="simulate"), prices=prices).calls]

    assert bills(0, 6) == [0, 0]  # 6 minutes idle: the 5-minute cache expired
    assert bills(0, 4, 8) == [0, 1500, 1500]  # the hit at 4 minutes refreshed the TTL to 9 minutes
    assert bills(0, 4, 10) == [0, 1500, 0]


# ---------------------------------------------------------------------------------------------------
# DeepSeek, Qwen, Moonshot
# ---------------------------------------------------------------------------------------------------
def test_deepseek_automatic_64_token_units() -> None:
    run = run_of(call_span(1, "deepseek", "deepseek-chat", [sysmsg()], 1000),
                 call_span(2, "deepseek", "deepseek-chat", [sysmsg(), usr(USER1)], 1500, at_min=1),
                 mode="automatic")
    c2 = bill_run(run, prices=prices).calls[1]
    assert c2.cache_read_tokens == 960  # 1,000 shared -> 15 units of 64
    assert c2.cost == cost(540, 960, 10, "0.27", "0.07", "1.10")


def test_qwen_implicit_and_explicit() -> None:
    implicit = run_of(call_span(1, "qwen", "qwen-plus", [sysmsg()], 1000),
                      call_span(2, "qwen", "qwen-plus", [sysmsg(), usr(USER1)], 1500, at_min=1),
                      mode="automatic")
    c2 = bill_run(implicit, prices=prices).calls[1]
    assert c2.cache_read_tokens == 1000
    assert c2.cost == cost(500, 1000, 10, "0.4", "0.08", "1.2")  # hits at 20%
    explicit = run_of(call_span(1, "qwen", "qwen-plus", [sysmsg()], 1200, plan={"breakpoints": [0]}),
                      call_span(2, "qwen", "qwen-plus", [sysmsg(), usr(USER1)], 1500, at_min=1,
                                plan={"breakpoints": [0]}),
                      mode="simulate")
    e1, e2 = bill_run(explicit, prices=prices).calls
    assert e1.cache_write_tokens == 1200 and e1.cost == cost(0, 0, 10, "0.4", "0.04", "1.2", 1200, "0.5")
    assert e2.cache_read_tokens == 1200 and e2.cost == cost(300, 1200, 10, "0.4", "0.04", "1.2")


def test_moonshot_automatic() -> None:
    run = run_of(call_span(1, "moonshot", "kimi-k2", [sysmsg()], 1000),
                 call_span(2, "moonshot", "kimi-k2", [sysmsg(), usr(USER1)], 1500, at_min=1),
                 mode="automatic")
    c2 = bill_run(run, prices=prices).calls[1]
    assert c2.cache_read_tokens == 1000
    assert c2.cost == cost(500, 1000, 10, "0.6", "0.15", "2.5")


def test_served_calls_cost_nothing_and_do_not_feed_the_cache() -> None:
    s1 = call_span(1, "openai", "gpt-4.1", [sysmsg()], 1500)
    s1.set_attribute("optimizer.served_by", "response-cache")
    s2 = call_span(2, "openai", "gpt-4.1", [sysmsg(), usr(USER1)], 2000, at_min=1)
    c1, c2 = bill_run(run_of(s1, s2, mode="automatic"), prices=prices).calls
    assert (c1.basis, c1.cost) == ("served", Decimal(0))
    assert c2.cache_read_tokens == 0
