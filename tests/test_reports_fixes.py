"""The report leads with the fix (issue #19 point 2): at most three fixes ranked by money, diagnostics
aggregated over runs (one finding per kind), comparisons within one call path only, tools named."""

from __future__ import annotations

import json
from decimal import Decimal

from tokprof.profiler.model import LLMCall, Run, Span, Usage
from tokprof.reports.fixes import top_fixes
from tokprof.reports.json import report_dict
from tokprof.reports.model import build_report
from tokprof.reports.types import Diagnostic, WaterfallStep


def _drift(name: str = "drift", parent: str | None = None, prefix: str = "") -> list[Span]:
    """Three calls whose system prompt carries the current time: each call breaks the cache prefix."""
    spans = []
    history = [{"role": "user", "content": "Find my booking. " + "context " * 400}]
    for i in range(3):
        system = {"role": "system", "content": f"Current time: 2025-01-0{i + 1} 10:0{i}:00. " + "Policy text. " * 300}
        llm = LLMCall(provider="anthropic", model="claude-sonnet-4-5", messages=[system, *history],
                      usage=Usage.from_provider(input_tokens=2000 + 300 * i, output_tokens=20))
        spans.append(Span(f"{prefix}c{i}", parent, "r", "llm", "claude-sonnet-4-5", i * 10, i, end_ns=i * 10 + 5,
                          llm=llm))
        history = history + [{"role": "assistant", "content": f"step {i}"}, {"role": "user", "content": "go on"}]
    return spans


def _run(name: str) -> Run:
    return Run(name=name, spans=_drift())


def test_one_finding_per_kind_over_many_runs() -> None:
    runs = [_run(f"drift {k}") for k in range(6)]
    m = build_report(runs)
    breaks = [d for d in m.diagnostics if d.kind == "prefix-break"]
    assert len(breaks) == 1  # never one card per run
    d = breaks[0]
    assert (d.runs_affected, d.runs_total) == (6, 6) and "in 6 of 6 runs" in d.detail
    assert len(set(d.calls)) == 12  # calls 2 and 3 of each run
    assert d.where == "chat" or "claude-sonnet-4-5" in d.where
    doc = report_dict(m)
    pb = next(x for x in doc["diagnostics"] if x["kind"] == "prefix-break")
    assert pb["runs_affected"] == 6 and pb["runs_total"] == 6
    # runs 2-6 repeat run 1 exactly: one repeated-calls finding, in 5 of 6 runs
    rep = [x for x in doc["diagnostics"] if x["kind"] == "repeated-calls"]
    assert len(rep) == 1 and rep[0]["runs_affected"] == 5 and "in 5 of 6 runs" in rep[0]["detail"]
    assert 1 <= len(doc["fixes"]) <= 3


def test_prefix_breaks_compare_one_call_path_only() -> None:
    # two sub-agents with the same model and different system prompts, interleaved: no break between
    # them; within each sub-agent the prompt is stable
    spans = [Span("a", None, "r", "agent", "agent", 0, 0, end_ns=100),
             Span("p", "a", "r", "chain", "planner", 1, 1, end_ns=90),
             Span("w", "a", "r", "chain", "writer", 1, 1, end_ns=90)]
    hist: dict[str, list] = {"p": [], "w": []}
    for i in range(4):
        for who, text in (("p", "You plan. " * 200), ("w", "You write. " * 200)):
            hist[who] = hist[who] + [{"role": "user", "content": f"{who} step {i}"}]
            llm = LLMCall(provider="anthropic", model="claude-sonnet-4-5",
                          messages=[{"role": "system", "content": text}, *hist[who]],
                          usage=Usage.from_provider(input_tokens=600 + 10 * i, output_tokens=5))
            spans.append(Span(f"{who}{i}", who, "r", "llm", "claude-sonnet-4-5", 2 + 2 * i, 2 + 2 * i,
                              end_ns=3 + 2 * i, llm=llm))
    m = build_report(Run(name="two agents", spans=spans))
    assert not [d for d in m.diagnostics if d.kind == "prefix-break"]


def test_fixes_ranked_by_money_at_most_three() -> None:
    def diag(kind: str, money: str, low: str | None = None) -> Diagnostic:
        return Diagnostic(kind, kind, "", Decimal(money), 10, "estimated", "", where=f"{kind} site",
                          low=Decimal(low) if low else None)

    step = WaterfallStep("prompt-cache", "cache", "simulated", 0, 0, Decimal("1"), 0, Decimal("0.50"), "none",
                         None, 3)
    worse = WaterfallStep("minify", "m", "simulated", 0, 0, Decimal("1"), 0, Decimal("-0.1"), "none", None, 3)
    fixes = top_fixes([diag("repeated-calls", "0.10"), diag("oversized-tool-output", "0.80", "0.40"),
                       diag("decomposition", "0.05")], [step, worse])
    assert [f.source for f in fixes] == ["oversized-tool-output", "prompt-cache", "repeated-calls"]
    assert fixes[0].low == Decimal("0.40") and fixes[0].saving == Decimal("0.80")
    assert fixes[0].evidence == "estimated" and "lossy" in fixes[0].risk and fixes[0].where
    assert fixes[1].evidence == "simulated" and fixes[1].saving == Decimal("0.50")


def test_demo_fix_names_the_tool_and_its_caller() -> None:
    from tokprof.demo import run_agent

    run, _ = run_agent(save=False)
    m = build_report(run)
    big = next(d for d in m.diagnostics if d.kind == "oversized-tool-output")
    assert "get_order_history" in big.title and big.where.startswith("tool get_order_history")
    assert "resolve_ticket" in big.where
    assert m.fixes and len(m.fixes) <= 3
    assert any(f.source == "oversized-tool-output" for f in m.fixes)
    # LLM calls are named by their caller
    assert any(c["name"] == "resolve_ticket → claude-sonnet-4-5" for c in m.calls)
    json.dumps(report_dict(m))
