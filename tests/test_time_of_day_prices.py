"""Time-of-day prices (DeepSeek peak / off-peak): a call is priced by the hour it started.

Oracle: DeepSeek's own pricing page (stored copy, https://api-docs.deepseek.com/quick_start/pricing and
https://api-docs.deepseek.com/zh-cn/quick_start/pricing): from 2026-08-16 16:00 UTC, peak hours 01:00-04:00 and
06:00-10:00 UTC Monday-Friday, every other hour off-peak at half price. deepseek-v4-pro per 1M tokens, peak:
cache hit $0.044 / miss $1.32 / output $3.96 (CNY 0.30 / 9.0 / 27.0); off-peak $0.022 / $0.66 / $1.98
(CNY 0.15 / 4.5 / 13.5). Every expected figure below is that arithmetic, done by hand.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tokprof.cli import main
from tokprof.optimizers.billing import bill_run
from tokprof.profiler.accounting import span_cost
from tokprof.profiler.model import LLMCall, Run, Span, Usage
from tokprof.profiler.providers.as_paid import run_paid
from tokprof.profiler.providers.cost import Rates, TokenSplit, default_prices, split_cost
from tokprof.profiler.providers.prices import PriceFileError, get_price, load_overrides, reset_overrides
from tokprof.profiler.store import save_run

D = Decimal


def ns(when: str) -> int:
    """UTC ``YYYY-MM-DDTHH:MM`` -> wall-clock ns."""
    return int(datetime.fromisoformat(when).replace(tzinfo=timezone.utc).timestamp()) * 1_000_000_000


# one call: 100,000 prompt tokens of which 60,000 cache hits, 2,000 output tokens
# peak USD: 40,000 x 1.32 + 60,000 x 0.044 + 2,000 x 3.96 = 52,800 + 2,640 + 7,920 = 63,360 per 1M = $0.06336
# peak CNY: 40,000 x 9.0 + 60,000 x 0.30 + 2,000 x 27.0 = 360,000 + 18,000 + 54,000 = 432,000 per 1M = 0.432
PEAK = {"USD": D("0.06336"), "CNY": D("0.432")}
# off-peak USD: 40,000 x 0.66 + 60,000 x 0.022 + 2,000 x 1.98 = 26,400 + 1,320 + 3,960 = 31,680 -> $0.03168
# off-peak CNY: 40,000 x 4.5 + 60,000 x 0.15 + 2,000 x 13.5 = 180,000 + 9,000 + 27,000 = 216,000 -> 0.216
OFF_PEAK = {"USD": D("0.03168"), "CNY": D("0.216")}

CASES = [  # (start, price, cost label of the one cost function)
    ("2026-09-01T02:30", PEAK, "computed"),       # Tuesday 02:30 UTC: peak window 01:00-04:00
    ("2026-09-01T12:00", OFF_PEAK, "computed"),   # Tuesday 12:00 UTC: off-peak
    ("2026-09-05T02:30", OFF_PEAK, "computed"),   # Saturday 02:30 UTC: weekend, off-peak all day
    (None, PEAK, "estimated"),                    # no start time: peak, an upper bound
    ("2026-08-14T02:30", PEAK, "estimated"),      # before 2026-08-16 16:00 UTC: the old rule (row price)
]


def _run(start: str | None, *, cache_reads: bool = True, model: str = "deepseek-v4-pro") -> Run:
    usage = dict(input_tokens=100_000, output_tokens=2_000)
    if cache_reads:
        usage["cache_read_tokens"] = 60_000
    call = LLMCall(provider="deepseek", model=model, messages=[{"role": "user", "content": "hi"}],
                   usage=Usage.from_provider(**usage))
    wall = ns(start) if start else 0
    return Run(run_id=f"r-{start or 'none'}".replace(":", ""), name="deepseek",
               spans=[Span("s1", None, "r", "llm", "call", start_ns=0, wall_start_ns=wall, end_ns=1, llm=call)])


def _cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    capsys.readouterr()
    assert main(list(args)) == 0, args
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("currency", ["USD", "CNY"])
@pytest.mark.parametrize("start,price,label", CASES)
def test_summary_cost_function_and_simulator_agree_by_the_hour(start: str | None, price: dict[str, Decimal],
                                                               label: str, currency: str) -> None:
    run = _run(start)
    expected = price[currency]
    c = span_cost(run.spans[0], currency)  # the one cost function, as the tree and the fleet use it
    assert c is not None and (c.amount, c.source) == (expected, label)
    s = run.summary(currency=currency)
    assert s.cost == expected and s.currency == currency
    assert s.cost_label == "provider cache tokens 1 call"  # the normal basis, off-peak or not
    assert bill_run(run, currency, mode="recorded").total == expected  # the simulator's recorded mode
    assert run_paid(run, currency).total.expected == expected  # the as-paid bill


@pytest.mark.parametrize("currency", ["USD", "CNY"])
@pytest.mark.parametrize("start,price,label", CASES)
def test_show_json_and_optimize_baseline_agree(start: str | None, price: dict[str, Decimal], label: str,
                                               currency: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = save_run(_run(start), tmp_path)
    shown = _cli_json(capsys, "show", str(path), "--json", "--currency", currency)
    assert D(shown["cost"]["amount"]) == price[currency]
    assert shown["cost"]["currency"] == currency
    opt = _cli_json(capsys, "optimize", str(path), "--passes", "", "--json", "--out", str(tmp_path / "o"),
                    "--currency", currency)
    assert D(str(opt["totals"]["steps"][0]["billed_cost"])) == price[currency]


def test_off_peak_is_exactly_half_on_the_simulated_path() -> None:
    # no cache tokens reported: DeepSeek's automatic caching is simulated, under three hit-rate scenarios;
    # each scenario off-peak is exactly half of the same call at peak (the factor applies to every price)
    peak, off = (run_paid(_run(t, cache_reads=False), "USD") for t in ("2026-09-01T02:30", "2026-09-01T12:00"))
    assert peak.calls[0].basis == off.calls[0].basis
    assert [v / 2 for v in peak.total.by_scenario] == list(off.total.by_scenario)  # type: ignore[operator]
    # the no-hits scenario is the list price: off-peak 100,000 x 0.66 + 2,000 x 1.98 = 69,960 per 1M
    assert off.total.by_scenario[2] == D("0.06996")


def test_peak_window_edges() -> None:
    tod = get_price("deepseek-v4-pro").time_of_day  # type: ignore[union-attr]
    assert tod is not None
    periods = {t: tod.period(ns(t)) for t in ("2026-09-01T00:59", "2026-09-01T01:00", "2026-09-01T03:59",
                                              "2026-09-01T04:00", "2026-09-01T06:00", "2026-09-01T09:59",
                                              "2026-09-01T10:00", "2026-09-04T09:00", "2026-09-06T09:00")}
    assert periods == {"2026-09-01T00:59": "off-peak", "2026-09-01T01:00": "peak", "2026-09-01T03:59": "peak",
                       "2026-09-01T04:00": "off-peak", "2026-09-01T06:00": "peak", "2026-09-01T09:59": "peak",
                       "2026-09-01T10:00": "off-peak", "2026-09-04T09:00": "peak",  # Friday
                       "2026-09-06T09:00": "off-peak"}  # Sunday
    # the rule starts at 2026-08-16 16:00 UTC (a Sunday; 00:00 Monday in Beijing)
    assert tod.period(ns("2026-08-16T15:59")) == "before" and tod.period(ns("2026-08-16T16:00")) == "off-peak"
    assert tod.period(None) == tod.period(0) == "unknown"


def test_every_price_is_halved_including_flash_and_native_cny() -> None:
    # deepseek-flash, peak $0.006 / $0.3 / $1.2, off-peak $0.003 / $0.15 / $0.6: 1M of each kind
    split = TokenSplit(prompt=2_000_000, fresh=1_000_000, cache_read=1_000_000, output=1_000_000)
    rates = default_prices("deepseek-flash")
    assert split_cost(split, rates, None, "USD", started_ns=ns("2026-09-01T02:30")) == D("0.3") + D("0.006") + D("1.2")
    assert split_cost(split, rates, None, "USD", started_ns=ns("2026-09-01T12:00")) == D("0.15") + D("0.003") + D("0.6")
    # CNY from the mainland list (not converted): off-peak 1 + 0.02 + 4
    assert split_cost(split, rates, None, "CNY", started_ns=ns("2026-09-05T08:00")) == D(1) + D("0.02") + D(4)
    assert split_cost(split, rates, None, "CNY") == D(2) + D("0.04") + D(8)  # unknown start: peak


def test_rows_are_confirmed_not_estimated(capsys: pytest.CaptureFixture[str]) -> None:
    for model in ("deepseek-flash", "deepseek-v4-pro"):
        for cur in ("USD", "CNY"):
            p = get_price(model, currency=cur)
            assert p is not None and not p.estimated and p.confirmed and p.time_of_day is not None
            assert "public holidays" in (p.note or "") and "upper bound" in (p.note or "")
    doc = _cli_json(capsys, "models", "deepseek-v4-pro", "--json")
    (row,) = doc["models"]
    for cur in ("USD", "CNY"):
        assert row["prices"][cur]["estimated"] is False
        assert row["prices"][cur]["time_of_day"] == {
            "from": "2026-08-16T16:00Z", "peak_utc": ["01:00-04:00", "06:00-10:00"], "peak_weekdays": "Mon-Fri",
            "off_peak_factor": "0.5", "source": row["prices"][cur]["source"]}
    capsys.readouterr()
    assert main(["models", "deepseek-v4-pro"]) == 0
    assert "(estimated)" not in capsys.readouterr().out
    # the retired V3.2 names keep their reason to be estimated (third-party figures) and get no rule
    chat = get_price("deepseek-chat")
    assert chat is not None and chat.estimated and chat.time_of_day is None


def _deepseek_log(path: Path, when: str) -> Path:
    """Three calls of one conversation on deepseek-v4-pro, logged with epoch-second timestamps a minute
    apart, the provider reporting its cache hits (``prompt_tokens_details.cached_tokens``)."""
    t0 = ns(when) // 1_000_000_000
    lines = []
    for turn in range(3):
        lines.append({"run_id": "ds", "timestamp": t0 + 60 * turn,
                      "request": {"model": "deepseek-v4-pro",
                                  "messages": [{"role": "user", "content": f"question {turn}"}]},
                      "response": {"model": "deepseek-v4-pro",
                                   "choices": [{"message": {"role": "assistant", "content": "ok"}}],
                                   "usage": {"prompt_tokens": 10_000, "completion_tokens": 500,
                                             "prompt_tokens_details": {"cached_tokens": 8_000}}}})
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


@pytest.mark.parametrize("when,expected", [
    # Tuesday 12:00 UTC, off-peak: 3 x (2,000 x 0.66 + 8,000 x 0.022 + 500 x 1.98) = 3 x 2,486 per 1M
    ("2026-09-01T12:00", D("0.007458")),
    # Tuesday 07:00 UTC, peak: 3 x (2,000 x 1.32 + 8,000 x 0.044 + 500 x 3.96) = 3 x 4,972 per 1M
    ("2026-09-01T07:00", D("0.014916")),
])
def test_imported_chat_log_with_timestamps(when: str, expected: Decimal, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    trace = _deepseek_log(tmp_path / "ds.jsonl.gz", when)
    imp = _cli_json(capsys, "import", str(trace), "--out", str(tmp_path / "runs"), "--json")
    assert D(imp["cost"]["amount"]) == expected
    assert imp["cost"]["by_source"] == {"computed": str(expected)}  # not estimated: the hour is known
    (saved,) = sorted((tmp_path / "runs").glob("*.jsonl"))
    shown = _cli_json(capsys, "show", str(saved), "--json")
    assert D(shown["cost"]["amount"]) == expected and shown["cost"]["label"] == "provider cache tokens 3 calls"
    opt = _cli_json(capsys, "optimize", str(trace), "--passes", "", "--json", "--out", str(tmp_path / "o"))
    assert D(str(opt["totals"]["steps"][0]["billed_cost"])) == expected


# ---------------------------------------------------------------------------------------------------
# the rule is data: any provider's row may carry one; a bad one is a clear error naming the row
# ---------------------------------------------------------------------------------------------------
@pytest.fixture
def _clean_prices() -> Any:
    yield
    reset_overrides()


def _override(tmp_path: Path, time_of_day: Any) -> Path:
    f = tmp_path / "prices.json"
    f.write_text(json.dumps({"models": [{"model": "house-llm", "provider": "acme", "input": "2", "output": "8",
                                         "time_of_day": time_of_day}]}))
    return f


def test_any_row_may_carry_a_rule(tmp_path: Path, _clean_prices: None) -> None:
    # a house model cheaper (0.25x) outside 09:00-17:00 UTC on every day
    load_overrides(_override(tmp_path, {"from": "2026-01-01T00:00+00:00", "peak_utc": ["09:00-17:00"],
                                        "off_peak_factor": "0.25", "source": "https://acme.example/prices"}))
    rates = default_prices("house-llm")
    assert isinstance(rates, Rates) and rates.time_of_day is not None
    split = TokenSplit(prompt=1_000_000, fresh=1_000_000, output=1_000_000)
    assert split_cost(split, rates, started_ns=ns("2026-09-06T10:00")) == D(10)  # Sunday, in the window
    assert split_cost(split, rates, started_ns=ns("2026-09-06T20:00")) == D("2.5")


@pytest.mark.parametrize("bad,message", [
    ({"peak_utc": ["01:00-04:00"], "off_peak_factor": "0.5"}, "'from' must be an ISO instant"),
    ({"from": "2026-08-16T16:00", "peak_utc": ["01:00-04:00"], "off_peak_factor": "0.5"}, "needs a time zone"),
    ({"from": "2026-08-16T16:00Z", "peak_utc": ["22:00-02:00"], "off_peak_factor": "0.5"}, "start < end"),
    ({"from": "2026-08-16T16:00Z", "peak_utc": ["1am-4am"], "off_peak_factor": "0.5"}, "not HH:MM"),
    ({"from": "2026-08-16T16:00Z", "peak_utc": [], "off_peak_factor": "0.5"}, "at least one window"),
    ({"from": "2026-08-16T16:00Z", "peak_utc": ["01:00-04:00"], "off_peak_factor": "2"}, "in 0..1"),
    ({"from": "2026-08-16T16:00Z", "peak_utc": ["01:00-04:00"], "peak_weekdays": "Fri-Mon",
      "off_peak_factor": "0.5"}, "runs forward"),
    ({"from": "2026-08-16T16:00Z", "peak_utc": ["01:00-04:00"], "peak_weekdays": "weekdays",
      "off_peak_factor": "0.5"}, "day names"),
    ("half price at night", "expected an object"),
])
def test_a_bad_rule_names_the_row(tmp_path: Path, bad: Any, message: str, _clean_prices: None) -> None:
    with pytest.raises(PriceFileError, match=message) as err:
        load_overrides(_override(tmp_path, bad))
    assert "house-llm" in str(err.value) and "time_of_day" in str(err.value)


def test_report_rates_follow_the_hour_of_each_call() -> None:
    # the report memoises per-token rates per model and tier: a peak and an off-peak call of one model must
    # not share them ($1.32 vs $0.66 per 1M fresh input tokens; $0.044 vs $0.022 cache reads)
    from tokprof.reports.costs import run_costs

    a, b = _run("2026-09-01T02:30"), _run("2026-09-01T12:00")
    b.spans[0].span_id = "s2"
    run = Run(run_id="two", name="two", spans=[a.spans[0], b.spans[0]])
    costs = run_costs(run, "USD")
    peak, off = costs.prices["s1"], costs.prices["s2"]
    assert peak is not None and off is not None
    assert (peak.fresh_rate * 10**6, off.fresh_rate * 10**6) == (D("1.32"), D("0.66"))
    assert (peak.read_rate * 10**6, off.read_rate * 10**6) == (D("0.044"), D("0.022"))
    assert costs.total == PEAK["USD"] + OFF_PEAK["USD"]
