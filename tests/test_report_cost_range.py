"""The report's headline states the range of an as-paid cost that rests on simulated automatic caching
(issue #16: "a saving is simulated — with a range where the rule is not guaranteed"; the closing note of the
last session listed the headline as printing the basis but not its range).

Oracle: OpenAI's prompt caching is automatic and not guaranteed, so the "no hits" scenario is the list price,
computed here by hand from gpt-4o's published rates ($2.50 / 1M input, $10.00 / 1M output,
https://platform.openai.com/docs/pricing); a run whose usage records cache reads is a point (no range).
"""

from __future__ import annotations

import io
import json
from decimal import Decimal

from rich.console import Console

from tokprof.profiler.model import LLMCall, Run, Span, Usage
from tokprof.reports.console import render_report
from tokprof.reports.html import render_html
from tokprof.reports.json import report_dict
from tokprof.reports.model import build_report

SYSTEM = "You are a careful airline agent. " * 400  # ~2,800 tokens: above OpenAI's 1,024-token minimum


def _run(cached: int | None) -> Run:
    run = Run(name="two calls")
    history = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "change my flight"}]
    for i in range(2):
        counts = {"input_tokens": 3000 + 100 * i, "output_tokens": 50}
        if cached is not None:
            counts["cache_read_tokens"] = cached * i
        llm = LLMCall(provider="openai", model="gpt-4o", messages=list(history),
                      output={"role": "assistant", "content": f"step {i}"}, usage=Usage.from_provider(**counts))
        run.spans.append(Span(f"s{i}", None, run.run_id, "llm", "chat", i, i, end_ns=i + 1, llm=llm))
        history += [{"role": "assistant", "content": f"step {i}"}, {"role": "user", "content": "go on " * 20}]
    return run


def test_simulated_as_paid_cost_carries_its_range_in_every_renderer():
    m = build_report(_run(cached=None))
    h = m.headline
    assert h.cost_before_range is not None
    low, high = h.cost_before_range
    list_price = (Decimal(3000 + 3100) * Decimal("2.50") + Decimal(100) * Decimal("10.00")) / Decimal(10**6)
    assert high == list_price  # no cache hits: the list price
    assert low < h.cost_before <= high  # the shared prefix can hit
    doc = report_dict(m)
    assert doc["headline"]["cost"]["before_range"] == [float(low), float(high)] or \
        [Decimal(str(v)) for v in doc["headline"]["cost"]["before_range"]] == [low, high]
    buf = io.StringIO()
    render_report(m, console=Console(file=buf, width=120, color_system=None))
    line = next(x for x in buf.getvalue().splitlines() if x.startswith("cost range"))
    assert "–$0.016" in line and "not guaranteed" in line
    html = render_html(m)
    assert 'data-test="cost-range"' in html


def test_recorded_cache_tokens_make_a_point_and_no_range():
    h = build_report(_run(cached=2944)).headline
    assert h.cost_before_range is None
    doc = report_dict(build_report(_run(cached=2944)))
    assert doc["headline"]["cost"]["before_range"] is None
    json.dumps(doc)


def _tool_run() -> Run:
    """A run whose tool output is pretty-printed JSON re-sent in every later prompt (minify removes the
    indentation: a saving that depends on the simulated cache hits, so it has a range)."""
    run = Run(name="tool")
    table = json.dumps([{"flight": f"HAT{i:03d}", "seats": i % 7, "status": "available"} for i in range(120)],
                       indent=4)
    call = {"id": "c1", "type": "function", "function": {"name": "search", "arguments": "{}"}}
    history: list[dict] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "find a flight"},
                           {"role": "assistant", "content": None, "tool_calls": [call]},
                           {"role": "tool", "tool_call_id": "c1", "content": table}]
    for i in range(3):
        llm = LLMCall(provider="openai", model="gpt-4o", messages=list(history),
                      output={"role": "assistant", "content": f"step {i}"},
                      usage=Usage.from_provider(input_tokens=9000 + 50 * i, output_tokens=40))
        run.spans.append(Span(f"s{i}", None, run.run_id, "llm", "chat", i, i, end_ns=i + 1, llm=llm))
        history += [{"role": "assistant", "content": f"step {i}"}, {"role": "user", "content": "and then?"}]
    return run


def test_optimized_headline_sums_each_ledgers_saved_range():
    from tokprof import optimize

    pairs = [optimize(_tool_run(), passes=["minify"]) for _ in range(2)]
    ledgers = [lg for _, lg in pairs]
    ranges = [lg.saved_range() for lg in ledgers]
    assert all(r is not None and r[0] != r[1] for r in ranges)
    m = build_report([_tool_run(), _tool_run()], optimized=[r for r, _ in pairs], ledgers=ledgers)
    h = m.headline
    assert h.cost_saved_range == (ranges[0][0] + ranges[1][0], ranges[0][1] + ranges[1][1])  # type: ignore[index]
    assert h.cost_saved_range[0] <= h.cost_saved <= h.cost_saved_range[1]  # type: ignore[index, operator]
    assert 'data-test="saved-range"' in render_html(m)
