"""Call-graph roll-ups on a hand-built run whose totals are known."""

from __future__ import annotations

from decimal import Decimal

from tokprof.profiler.graph import aggregate_by_path, call_graph, top_spans
from tokprof.profiler.model import Cost, LLMCall, Run, Span, Usage


def llm(span_id, parent, name, inp, out, cost, cached=0, start=0):
    u = Usage.from_provider(input_tokens=inp, output_tokens=out, cache_read_tokens=cached)
    return Span(span_id, parent, "r", "llm", name, start, start, start + 10,
                llm=LLMCall(model="m", usage=u, cost=Cost(Decimal(cost), "USD", "recorded")))


def fn(span_id, parent, name, start=0):
    return Span(span_id, parent, "r", "function", name, start, start, start + 100)


def hand_run() -> Run:
    # root
    #  ├─ plan          ── llm a (100/10, $0.01)
    #  ├─ act (x2)      ── llm b (200/20, $0.02) each, and a tool
    #  │    └─ tool
    #  └─ llm c directly under root (50/5, $0.005, 30 cached)
    spans = [
        fn("1", None, "root"),
        fn("2", "1", "plan", 1), llm("3", "2", "a", 100, 10, "0.01", start=2),
        fn("4", "1", "act", 3), llm("5", "4", "b", 200, 20, "0.02", start=4), fn("6", "4", "tool", 5),
        fn("7", "1", "act", 6), llm("8", "7", "b", 200, 20, "0.02", start=7), fn("9", "7", "tool", 8),
        llm("10", "1", "c", 50, 5, "0.005", cached=30, start=9),
    ]
    return Run(run_id="r", name="hand", spans=spans)


def test_inclusive_and_exclusive_rollups():
    g = call_graph(hand_run())
    root = g.nodes["1"]
    assert root["incl_input_tokens"] == 550 and root["incl_output_tokens"] == 55
    assert root["incl_total_tokens"] == 605 and root["incl_llm_calls"] == 4
    assert root["incl_cost"] == Decimal("0.055") and root["incl_cache_read_tokens"] == 30
    assert root["excl_total_tokens"] == 0
    assert g.nodes["4"]["incl_total_tokens"] == 220 and g.nodes["4"]["excl_total_tokens"] == 0
    assert g.nodes["5"]["excl_total_tokens"] == 220
    assert g.nodes["10"]["excl_cost"] == Decimal("0.005")
    assert set(g.successors("1")) == {"2", "4", "7", "10"}
    assert g.nodes["6"]["path"] == ("root", "act", "tool")


def test_top_spans_by_exclusive_tokens():
    rows = top_spans(call_graph(hand_run()), n=3)
    assert [r["span_id"] for r in rows] == ["5", "8", "3"] or [r["span_id"] for r in rows] == ["8", "5", "3"]
    assert rows[0]["excl_total_tokens"] == 220


def test_repeated_calls_aggregate_by_path():
    agg = aggregate_by_path(call_graph(hand_run()))
    act = agg.nodes[("root", "act")]
    assert act["calls"] == 2 and act["incl_total_tokens"] == 440 and act["incl_cost"] == Decimal("0.04")
    b = agg.nodes[("root", "act", "b")]
    assert b["calls"] == 2 and b["excl_input_tokens"] == 400
    assert agg.nodes[("root",)]["incl_total_tokens"] == 605
    assert agg.has_edge(("root", "act"), ("root", "act", "tool"))


def test_unknown_cost_is_counted_not_zeroed():
    run = hand_run()
    run.spans.append(Span("11", "1", "r", "llm", "x", 10, 10, 11,
                          llm=LLMCall(model="no-such-model", usage=Usage.from_provider(input_tokens=1, output_tokens=1))))
    g = call_graph(run, cost_of=lambda s: s.llm.cost.amount if s.llm.cost else None)
    assert g.nodes["1"]["incl_unpriced_calls"] == 1
    assert g.nodes["1"]["incl_cost"] == Decimal("0.055")


def test_usage_sum_keeps_weakest_source():
    a = Usage.from_provider(input_tokens=10, output_tokens=1)
    b = Usage()
    b.set("input_tokens", 5, "estimated")
    total = a + b
    assert total.input_tokens == 15 and total.source("input_tokens") == "estimated"
    assert total.source("output_tokens") == "provider"


def test_summary_top_spans_cost_in_the_summary_currency() -> None:
    from tokprof.profiler.providers.prices import convert
    from tokprof.profiler.summary import summarize

    run = hand_run()
    summary = summarize(run, top=10, currency="CNY")
    by_id = {r["span_id"]: r for r in summary.top_spans}
    assert Decimal(by_id["3"]["excl_cost"]) == convert(Decimal("0.01"), "USD", "CNY")  # not the USD amount
