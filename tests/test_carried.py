"""Carried cost: each prompt part charged to the span that introduced it (issue #19 point 1).

Oracles: hand arithmetic on a hand-built run; the price table's per-token prices times the provider's
reported tokens on real τ²-bench runs (no cache there, so a run's input cost is input tokens x input price).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from tokprof.profiler.carried import CallPrice, carried_costs
from tokprof.profiler.model import LLMCall, Run, Span, Usage
from tokprof.profiler.tree import merge_by_path, span_tree

S = {"role": "system", "content": "You are a support agent."}
U = {"role": "user", "content": "Where is my order?"}
O1 = {"role": "assistant", "content": "Let me look.", "tool_calls": [
    {"id": "t1", "type": "function", "function": {"name": "search", "arguments": "{\"q\": \"order\"}"}}]}
T = {"role": "tool", "tool_call_id": "t1", "content": "order 42: shipped"}
SIZES = {"You are a support agent.": 600, "Where is my order?": 400, "Let me look.": 500, "order 42: shipped": 1500}


def _tokens(m: object) -> int:
    return SIZES[m["content"]] if isinstance(m, dict) else 0


def hand_run() -> Run:
    def llm(sid: str, start: int, msgs: list, out: dict, inp: int, cached: int) -> Span:
        u = Usage.from_provider(input_tokens=inp, output_tokens=10, cache_read_tokens=cached)
        return Span(sid, "1", "r", "llm", "gpt-4.1", start, start, start + 5,
                    llm=LLMCall(provider="openai", model="gpt-4.1", messages=msgs, output=out, usage=u))

    tool = Span("3", "1", "r", "tool", "search", 20, 20, 25, attributes={"tool_call_id": "t1", "output": T["content"]})
    spans = [Span("1", None, "r", "agent", "agent", 0, 0, 100),
             llm("2", 10, [S, U], O1, 1000, 0), tool,
             llm("4", 30, [S, U, O1, T], {"role": "assistant", "content": "Shipped."}, 3000, 1000)]
    return Run(run_id="r", name="hand", spans=spans)


def test_hand_run_carried_by_hand_arithmetic() -> None:
    fresh, read = Decimal("2") / 10**6, Decimal("0.5") / 10**6
    prices = {"2": CallPrice(1000 * fresh, fresh, read, fresh),
              "4": CallPrice(1000 * read + 2000 * fresh, fresh, read, fresh, cache_read_tokens=1000)}
    c = carried_costs(hand_run(), prices, _tokens)
    # call 2: S and U (the agent's, 1000 fresh tokens); call 4: S+U read from cache (1000 x 0.5),
    # the model's earlier reply (500 fresh) and the tool output (1500 fresh)
    assert c.cost["1"] == Decimal("0.002") + Decimal("0.0005")
    assert c.cost["2"] == Decimal("0.001")
    assert c.cost["3"] == Decimal("0.003")
    assert c.total == Decimal("0.0065") == sum(p.input_cost for p in prices.values())
    assert c.tokens == {"1": 2000, "2": 500, "3": 1500}
    # the tree rolls carried cost up like any other metric
    roots = span_tree(hand_run(), lambda s: Decimal(0), carried=c.cost, carried_tokens=c.tokens)
    assert roots[0].incl["carried_cost"] == Decimal("0.0065")
    assert merge_by_path([roots])[0].own["carried_cost"] == Decimal("0.0025")


def test_call_ids_reused_across_conversations_pick_the_latest_tool() -> None:
    run = hand_run()
    early = Span("0", "1", "r", "tool", "old_search", 1, 1, 2, attributes={"tool_call_id": "t1", "output": "x"})
    run.spans.insert(1, early)
    c = carried_costs(run, {}, _tokens)
    assert c.tokens.get("3") == 1500 and "0" not in c.tokens and c.unpriced_calls == 2


def _tau2_runs(corpus: Path, n: int) -> list[Run]:
    from tokprof.profiler.interchange import import_file

    files = sorted((corpus / "tau2").glob("claude-sonnet-4-5*.json.gz"))
    if not files:
        pytest.fail("the τ²-bench claude-sonnet-4-5 file is missing from the corpus")
    return import_file(files[0]).runs[:n]


def test_carried_sums_to_input_cost_on_the_corpus(corpus: Path) -> None:
    from tokprof.profiler.providers.prices import get_price
    from tokprof.reports.costs import run_carried, run_costs

    for run in _tau2_runs(corpus, 8):
        oracle = Decimal(0)
        for s in run.llm_spans():
            assert s.llm is not None and s.llm.usage.cache_read_tokens == 0
            p = get_price(s.llm.model)
            assert p is not None
            rate = p.for_prompt(s.llm.usage.input_tokens)
            cost = s.llm.cost
            if cost is not None and cost.source == "recorded" and cost.amount is not None:
                # the run is priced as paid: the recorded cost less its output part is the input cost
                oracle += cost.amount - Decimal(s.llm.usage.output_tokens) * rate.output / 10**6
            else:
                oracle += Decimal(s.llm.usage.input_tokens) * rate.input / 10**6
        carried = run_carried(run, run_costs(run))
        assert carried.total == oracle, run.name
        # tool outputs are charged to their tools, the simulated user's turns to the user model's spans
        kinds = {s.span_id: s.kind for s in run.spans}
        assert any(kinds[sid] == "tool" and v > 0 for sid, v in carried.cost.items()) or \
            not any(s.kind == "tool" for s in run.spans)


def test_report_model_carried_equals_input_cost(corpus: Path) -> None:
    from tokprof.reports.model import build_report

    m = build_report(_tau2_runs(corpus, 5))
    assert m.carried_total == m.input_cost > 0
    root = next(n for n in m.flame if n["parent"] is None)
    assert root["name"] == "all runs"
    assert abs(root["carried"] - float(m.headline.cost_before)) < 1e-9  # carried + output = what was paid


def test_demo_order_history_is_the_biggest_box(tmp_path: Path) -> None:
    from tokprof.reports.model import build_report

    from tokprof.demo import run_agent

    run, _ = run_agent(save=False)
    m = build_report(run)
    by_name = {n["name"]: n for n in m.flame}
    hist = by_name["get_order_history"]
    chain: set[int] = set()
    cur = hist
    while cur["parent"] is not None:
        cur = m.flame[cur["parent"]]
        chain.add(cur["id"])
    others = [n for n in m.flame if n["id"] not in chain and n["id"] != hist["id"]]
    # carried view: the order history tool outweighs every box that is not one of its callers
    assert all(hist["carried"] > n["carried"] for n in others)
    llm = by_name["resolve_ticket → claude-sonnet-4-5"]
    # own view (what a time profiler shows): the model owns the tokens and the tool owns none
    assert llm["cost"] > 0 and hist["cost"] == 0 and hist["carried"] > 0.5 * m.flame[0]["carried"]
    assert m.carried_total == m.input_cost
    assert m.headline.tools_share is not None and 0 < m.headline.tools_share < 1


def test_the_same_output_fetched_twice_is_charged_to_each_fetch() -> None:
    run = hand_run()
    o2 = {"role": "assistant", "content": "Again.", "tool_calls": [
        {"id": "t2", "type": "function", "function": {"name": "search", "arguments": "{\"q\": \"order\"}"}}]}
    t2 = {"role": "tool", "tool_call_id": "t2", "content": T["content"]}
    run.spans.append(Span("5", "1", "r", "tool", "search", 40, 40, 45,
                          attributes={"tool_call_id": "t2", "output": T["content"]}))
    run.spans.append(Span("6", "1", "r", "llm", "gpt-4.1", 50, 50, 55, llm=LLMCall(
        provider="openai", model="gpt-4.1", messages=[S, U, O1, T, o2, t2],
        usage=Usage.from_provider(input_tokens=4500, output_tokens=1))))
    SIZES["Again."] = 0
    try:
        c = carried_costs(run, {}, _tokens)
    finally:
        del SIZES["Again."]
    assert c.tokens["3"] == 1500 * 2 and c.tokens["5"] == 1500


def test_json_offers_own_and_carried(tmp_path: Path) -> None:
    from tokprof.demo import run_agent
    from tokprof.reports.json import report_dict
    from tokprof.reports.model import build_report

    run, _ = run_agent(save=False)
    doc = report_dict(build_report(run))
    assert doc["carried"]["total"] == doc["carried"]["input_cost"]
    tree = {n["name"]: n for n in doc["call_tree"]}
    hist = tree["get_order_history"]
    assert Decimal(hist["carried"]["cost"]) > Decimal(tree["resolve_ticket → claude-sonnet-4-5"]["carried"]["cost"])
    assert hist["own"]["tokens"] == 0 and Decimal(hist["own"]["cost"]) == 0
    root = next(n for n in doc["call_tree"] if n["parent"] is None)
    assert abs(Decimal(root["carried"]["cost"]) - Decimal(doc["headline"]["cost"]["before"])) < Decimal("1e-8")
    assert 0 < doc["headline"]["tools_share"] < 1
