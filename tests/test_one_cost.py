"""One call, one cost (issue #13 point 2): the run summary and the billing simulator's ``recorded`` mode
price every model of the price table through the one cost function and agree to the last digit."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tokprof.optimizers.billing import bill_run
from tokprof.profiler.model import LLMCall, Run, Span, Usage
from tokprof.profiler.providers.cost import TokenSplit, default_prices, split_cost
from tokprof.profiler.providers.prices import all_prices


def _run(model: str, provider: str, **usage: int) -> Run:
    call = LLMCall(provider=provider, model=model, messages=[{"role": "user", "content": "hi"}],
                   usage=Usage.from_provider(**usage))
    return Run(run_id="r", spans=[Span("s1", None, "r", "llm", "call", start_ns=0, wall_start_ns=0, end_ns=1,
                                       llm=call)])


USAGES = [
    dict(input_tokens=20_000, output_tokens=700, cache_read_tokens=8_000, cache_write_tokens=3_000,
         cache_write_1h_tokens=1_000, reasoning_tokens=300),
    dict(input_tokens=300_000, output_tokens=2_000, cache_read_tokens=100_000),  # long-context tiers
    dict(input_tokens=1_000, output_tokens=10),
]


@pytest.mark.parametrize("currency", ["USD", "CNY"])
def test_every_priced_model_costs_the_same_in_summary_and_simulator(currency: str) -> None:
    checked = 0
    for price in all_prices():
        for usage in USAGES:
            run = _run(price.model, price.provider, **usage)
            summary = run.summary(currency=currency).cost
            billed = bill_run(run, currency, mode="recorded").total
            assert summary is not None and billed is not None, price.model
            assert summary == billed, (price.model, usage, summary, billed)
            checked += 1
    assert checked == 3 * len(all_prices()) >= 3 * 80


def test_gpt_4_turbo_8000_cache_reads_has_one_answer() -> None:
    # gpt-4-turbo lists no cached-input price; OpenAI's rule (0.5x input for pre-gpt-4.1 models) prices the
    # reads, and both paths say so: 12,000 x $10 + 8,000 x $5 + 1,000 x $30 per 1M = $0.19
    run = _run("gpt-4-turbo", "openai", input_tokens=20_000, cache_read_tokens=8_000, output_tokens=1_000)
    expected = (Decimal(12_000) * 10 + Decimal(8_000) * 5 + Decimal(1_000) * 30) / Decimal(1_000_000)
    assert run.summary().cost == expected == bill_run(run, mode="recorded").total == Decimal("0.19")


def test_one_hour_writes_are_priced_at_their_own_rate() -> None:
    # Anthropic: 5-minute writes 1.25x input, 1-hour writes 2x (claude-sonnet-4-5: $3.75 and $6 per 1M)
    run = _run("claude-sonnet-4-5", "anthropic", input_tokens=10_000, cache_write_tokens=4_000,
               cache_write_1h_tokens=1_000, output_tokens=0)
    expected = (Decimal(6_000) * 3 + Decimal(3_000) * Decimal("3.75") + Decimal(1_000) * 6) / Decimal(1_000_000)
    assert run.summary().cost == expected == bill_run(run, mode="recorded").total


def test_split_cost_is_unknown_without_a_price() -> None:
    assert split_cost(TokenSplit(10, 10), None) is None
    assert default_prices("no-such-model-xyz") is None


@pytest.mark.parametrize("currency", ["USD", "CNY"])
def test_time_of_day_prices_have_one_answer(currency: str) -> None:
    # DeepSeek bills off-peak at half price (https://api-docs.deepseek.com/quick_start/pricing): the call's
    # start reaches the one cost function on both paths (the span's wall clock; the bill's started_ns).
    # deepseek-v4-pro, Tuesday 2026-09-01 12:00 UTC (off-peak): 12,000 x 0.66 + 8,000 x 0.022 + 1,000 x 1.98
    # = 10,076 per 1M (USD); CNY list: 12,000 x 4.5 + 8,000 x 0.15 + 1,000 x 13.5 = 68,700 per 1M
    run = _run("deepseek-v4-pro", "deepseek", input_tokens=20_000, cache_read_tokens=8_000, output_tokens=1_000)
    run.spans[0].wall_start_ns = 1_788_264_000 * 1_000_000_000  # 2026-09-01T12:00Z
    expected = {"USD": Decimal("0.010076"), "CNY": Decimal("0.0687")}[currency]
    assert run.summary(currency=currency).cost == expected == bill_run(run, currency, mode="recorded").total
    run.spans[0].wall_start_ns = 0  # start unknown: the peak price, twice as much, on both paths
    assert run.summary(currency=currency).cost == 2 * expected == bill_run(run, currency, mode="recorded").total
