"""The ReportModel, console and JSON renderers, and the `tokprof report` / `compare` commands, on hand-made
runs and ledgers (no dependence on importers or passes)."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
from rich.console import Console

from tokprof.profiler.model import LLMCall, Run, Span, Usage
from tokprof.reports.console import render_report, render_tree, tree_rows
from tokprof.reports.json import REPORT_SCHEMA, render_json, report_dict
from tokprof.reports.model import GROWTH_PARTS, build_comparison, build_report
from reports_samples import make_ledger, make_run


def one_call_run() -> Run:
    run = Run(name="one")
    llm = LLMCall(provider="openai", model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                  output={"role": "assistant", "content": "hello"},
                  usage=Usage.from_provider(input_tokens=8, output_tokens=2))
    run.spans.append(Span("a", None, run.run_id, "llm", "chat", 0, 0, end_ns=1_000_000, llm=llm))
    return run


def test_headline_and_waterfall_follow_the_ledger():
    run = make_run()
    after, ledger = make_ledger(run)
    m = build_report(run, optimized=[after], ledgers=[ledger])
    h = m.headline
    assert h.llm_calls == 6 and h.optimized
    assert h.input_before == sum(s.llm.usage.input_tokens for s in run.llm_spans()) == 7250
    assert h.input_after == 7250 - 4 * 700
    assert h.cost_before == Decimal("0.0500") and h.cost_after == Decimal("0.0300")
    assert h.cost_saved == Decimal("0.0200") and h.cost_saved_pct == pytest.approx(40.0)
    assert h.tokens_saved_pct == pytest.approx(100 * 2800 / 7505)
    assert h.token_sources["provider"] == pytest.approx(1.0)
    assert h.fidelity == pytest.approx(0.93)
    assert [s.pass_name for s in m.waterfall] == ["prompt-cache", "observation-mask"]
    w1, w2 = m.waterfall
    assert (w1.delta_cost, w1.delta_tokens, w1.risk, w1.calls_changed) == (Decimal("0.0080"), 0, "none", 1)
    assert (w2.delta_cost, w2.delta_tokens, w2.calls_changed) == (Decimal("0.0120"), 2800, 4)
    assert w2.risk == "low: only old observations" and w2.evidence == "simulated"


def test_growth_parts_add_up_to_each_calls_input_and_show_history_growth():
    run = make_run(6)
    m = build_report(run)
    assert m.growth_bucket == 1 and len(m.growth) == 6
    for bar, span in zip(m.growth, run.llm_spans()):
        assert sum(bar[p] for p in GROWTH_PARTS) == span.llm.usage.input_tokens
        assert bar["cached"] == span.llm.usage.cache_read_tokens
    assert m.growth[0]["tool_outputs"] == 0 and m.growth[-1]["tool_outputs"] > m.growth[2]["tool_outputs"] > 0
    assert all(b["system"] > 0 and b["tools"] > 0 for b in m.growth)


def test_growth_buckets_long_runs():
    from tokprof.reports import calls as rm  # the growth chart's home since the model split

    run = make_run(12)
    old = rm.GROWTH_MAX_BARS
    rm.GROWTH_MAX_BARS = 5
    try:
        m = build_report(run)
    finally:
        rm.GROWTH_MAX_BARS = old
    assert m.growth_bucket == 3 and len(m.growth) == 4


def test_flame_top_spans_and_graph():
    run = make_run()
    m = build_report(run)
    root = m.flame[0]
    assert root["name"] == "agent" and root["parent"] is None
    assert root["tokens"] == sum(s.llm.usage.total_tokens for s in run.llm_spans())
    assert root["excl_tokens"] == 0 and len(root["calls_idx"]) == 6
    kids = [n for n in m.flame if n["parent"] == root["id"]]
    assert {n["name"] for n in kids} == {"plan", "answer"} and sum(n["tokens"] for n in kids) == root["tokens"]
    top = m.top_spans[0]
    assert top["kind"] == "llm" and top["calls"] == 3 and top["excl_tokens"] == top["tokens"]
    assert top["call"] is not None and m.calls[top["call"]]["span_id"].startswith("llm")
    assert {n["id"] for n in m.graph["nodes"]} == {n["id"] for n in m.flame}
    assert len(m.graph["edges"]) == len(m.flame) - 1


def test_calls_payloads_are_deduplicated_and_carry_the_diff():
    run = make_run()
    after, ledger = make_ledger(run)
    m = build_report(run, optimized=[after], ledgers=[ledger])
    # The system prompt is sent 6 times (12 with the optimized copies) but stored once.
    system = [i for i, p in enumerate(m.payloads) if p["role"] == "system"]
    assert len(system) == 1 and all(c["msgs"][0] == system[0] for c in m.calls)
    c5 = m.calls[5]
    assert c5["after"]["in"] == c5["in"] - 700 and c5["msgs"] != c5["after"]["msgs"]
    assert c5["ledger"][0]["pass"] == "observation-mask"
    assert m.calls[0]["after"]["msgs"] == m.calls[0]["msgs"]


def test_diagnostics_find_oversized_tool_outputs_and_repeats():
    run = make_run()
    dup = Span("dup", "root", run.run_id, "llm", "chat gpt-4o", 10**9, 0, end_ns=10**9 + 5,
               llm=LLMCall(provider="openai", model="gpt-4o", messages=run.llm_spans()[3].llm.messages,
                           usage=Usage.from_provider(input_tokens=1750, output_tokens=43)))
    run.spans.append(dup)
    m = build_report(run)
    kinds = {d.kind: d for d in m.diagnostics}
    big = kinds["oversized-tool-output"]
    assert big.tokens > 0 and big.snippet and big.evidence == "estimated" and big.calls
    rep = kinds["repeated-calls"]
    assert rep.calls == [6] and rep.tokens == 1750 + 43


def test_attribution_by_tag_and_model():
    run = make_run()
    m = build_report(run)
    by = {(r["key"], r["value"]): r for r in m.attribution["by_tag"]}
    assert by[("team", "payments")]["calls"] == 6
    assert by[("customer", "acme")]["calls"] + by[("customer", "globex")]["calls"] == 5
    assert m.attribution["by_model"][0]["model"] == "gpt-4o" and m.attribution["by_model"][0]["calls"] == 6


def test_empty_and_one_call_runs():
    empty = build_report(Run(name="empty"))
    assert empty.headline.llm_calls == 0 and empty.flame == [] and empty.growth == [] and empty.calls == []
    assert empty.waterfall == [] and "passes" in empty.waterfall_note
    one = build_report(one_call_run())
    assert one.headline.tokens_before == 10 and len(one.calls) == 1 and len(one.flame) == 1
    assert one.growth[0]["new"] == 8
    for m in (empty, one):
        doc = json.loads(render_json(m))
        assert doc["schema"] == REPORT_SCHEMA


def test_comparison_of_two_runs_matches_calls_by_span_id():
    before = make_run()
    after, _ = make_ledger(before)
    m = build_comparison(before, after)
    assert m.headline.optimized and "measured" in m.waterfall_note
    # a pair of real runs: one measured bar carrying the whole difference
    (step,) = m.waterfall
    assert step.evidence == "measured" and step.pass_name == "after"
    assert step.delta_tokens == 2800 and step.delta_cost == m.headline.cost_before - m.headline.cost_after
    assert m.headline.tokens_after == m.headline.tokens_before - 2800
    assert all("after" in c for c in m.calls)


def test_several_runs_share_one_flame_root():
    runs = [make_run(3, name="a"), make_run(2, name="b")]
    m = build_report(runs)
    assert m.title == "2 runs" and m.headline.runs == 2 and m.headline.llm_calls == 5
    assert m.flame[0]["name"] == "all runs" and m.flame[0]["tokens"] == m.headline.tokens_before
    assert [c["run"] for c in m.calls] == [0, 0, 0, 1, 1]


def test_json_schema_fields():
    run = make_run()
    after, ledger = make_ledger(run)
    doc = report_dict(build_report(run, optimized=[after], ledgers=[ledger]))
    assert set(doc) >= {"schema", "headline", "waterfall", "top_spans", "context_growth", "diagnostics",
                        "attribution", "runs", "currency"}
    assert doc["headline"]["cost"] == {"before": "0.0500", "after": "0.0300", "saved": "0.0200",
                                       "saved_pct": 40.0, "basis": "billed (simulated)",
                                       "unpriced_calls": 0, "before_range": None, "saved_range": None}
    assert doc["waterfall"][1]["tokens_saved"] == 2800 and doc["waterfall"][1]["evidence"] == "simulated"
    json.dumps(doc)  # plain data only


def test_console_renderers():
    run = make_run()
    after, ledger = make_ledger(run)
    buf = io.StringIO()
    render_report(build_report(run, optimized=[after], ledgers=[ledger]), console=Console(file=buf, width=160))
    text = buf.getvalue()
    assert "7,505 → 4,705" in text and "$0.0500 → $0.0300" in text
    assert "observation-mask" in text and "simulated" in text and "chat gpt-4o" in text
    # The lead's tree renderer keeps working.
    buf = io.StringIO()
    render_tree(run, console=Console(file=buf, width=160))
    assert "get_reservation" in buf.getvalue()
    assert tree_rows(run)[0]["incl"]["input"] == 7250


def test_cli_report_and_compare(tmp_path, capsys):
    from tokprof.cli import main

    run = make_run()
    after, _ = make_ledger(run)
    after.run_id = "after0000000000"
    p1, p2 = run.save(), after.save()
    out = tmp_path / "r.html"
    assert main(["report", str(p1), "-o", str(out)]) == 0
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "Content-Security-Policy" in html
    assert "7,505" in capsys.readouterr().out  # the console summary
    assert main(["report", run.run_id[:8], "--json", "--currency", "CNY"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["currency"] == "CNY" and doc["headline"]["llm_calls"] == 6
    out2 = tmp_path / "c.html"
    assert main(["compare", str(p1), str(p2), "-o", str(out2)]) == 0
    assert "before / after" in out2.read_text()
    assert "37.3% saved" in capsys.readouterr().out
    assert main(["compare", run.run_id, "after0000", "--json", "--no-html"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["headline"]["tokens"]["after"]["total"] == doc["headline"]["tokens"]["before"]["total"] - 2800


def test_cli_report_with_unknown_pass_names_it(tmp_path, capsys):
    from tokprof.cli import main

    p = make_run().save()
    assert main(["report", str(p), "--passes", "no-such-pass", "-o", str(tmp_path / "x.html")]) == 1
    assert "no-such-pass" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_unknown_prices_are_unknown_not_zero():
    run = one_call_run()
    run.spans[0].llm.model = "no-such-model-xyz"
    m = build_report(run)
    assert m.headline.unpriced_calls == 1 and m.calls[0]["cost"] is None
    assert m.headline.cost_before is None
    doc = report_dict(m)
    assert doc["headline"]["cost"]["before"] is None and doc["headline"]["cost"]["unpriced_calls"] == 1


def test_flame_roll_up_matches_the_call_graph():
    from tokprof.profiler.graph import aggregate_by_path, call_graph

    run = make_run(5)
    m = build_report(run)
    costs = {c["span_id"]: Decimal(c["cost"]) for c in m.calls if c["cost"] is not None}
    agg = aggregate_by_path(call_graph(run, cost_of=lambda s: costs.get(s.span_id)))
    rows = {r["path"]: r for r in m.top_spans}
    for p, a in agg.nodes(data=True):
        r = rows.get(" / ".join(p))
        if r is None:
            assert a["incl_total_tokens"] == 0 and a["duration_ns"] == 0
            continue
        assert (r["calls"], r["tokens"], r["excl_tokens"], r["in"], r["cached"]) == (
            a["calls"], a["incl_total_tokens"], a["excl_total_tokens"], a["incl_input_tokens"],
            a["incl_cache_read_tokens"])
        assert r["cost"] == pytest.approx(float(a["incl_cost"]))


def test_attribution_csv_export_is_a_data_url_with_neutralised_formulas():
    import csv
    import urllib.parse

    from tokprof.reports.html import _attribution_csv

    run = make_run(3, tags={"team": "=HYPERLINK(\"http://x\")", "feature": "refunds"})
    url = _attribution_csv(build_report(run))
    assert url.startswith("data:text/csv;charset=utf-8,")
    rows = list(csv.reader(io.StringIO(urllib.parse.unquote(url.split(",", 1)[1]))))
    assert rows[0][:3] == ["group", "key", "value"]
    team = next(r for r in rows if r[1] == "team")
    assert team[2].startswith("'=") and int(team[3]) == 3
    assert any(r[0] == "model" and r[2] == "gpt-4o" for r in rows)


def test_cli_report_runs_real_passes(tmp_path, capsys):
    from tokprof.optimizers.base import available_passes
    from tokprof.cli import main

    if "prompt-cache" not in available_passes():
        pytest.skip("the prompt-cache pass is not available yet")
    p = make_run().save()
    assert main(["report", str(p), "--passes", "prompt-cache", "--json", "--no-html"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["pass"] for s in doc["waterfall"]] == ["prompt-cache"]
    assert doc["waterfall"][0]["evidence"] == "simulated" and doc["headline"]["optimized"] is True


def _drifting_system_prompt_run() -> Run:
    """Three calls whose system prompt carries the current time: each call breaks the cache prefix."""
    run = Run(name="drift")
    history = [{"role": "user", "content": "Find my booking. " + "context " * 400}]
    for i in range(3):
        system = {"role": "system", "content": f"Current time: 2025-01-0{i + 1} 10:0{i}:00. " + "Policy text. " * 300}
        llm = LLMCall(provider="anthropic", model="claude-sonnet-4-5", messages=[system, *history],
                      usage=Usage.from_provider(input_tokens=2000 + 300 * i, output_tokens=20))
        run.spans.append(Span(f"c{i}", None, run.run_id, "llm", "chat", i * 10, 0, end_ns=i * 10 + 5, llm=llm))
        history = history + [{"role": "assistant", "content": f"step {i}"}, {"role": "user", "content": "go on"}]
    return run


def test_diagnostics_find_prefix_breaks():
    m = build_report(_drifting_system_prompt_run())
    d = next(d for d in m.diagnostics if d.kind == "prefix-break")
    assert set(d.calls) == {1, 2} and d.tokens > 0 and "system" in d.detail.lower()
    assert "SYSTEM_PROMPT" in d.snippet


def test_prefix_analysis_skipped_on_huge_runs_says_so(monkeypatch):
    import tokprof.reports.diagnostics as diag

    monkeypatch.setattr(diag, "PREFIX_ANALYSIS_MAX_CALLS", 0)  # one home for prefix breaks: no quick copy
    m = build_report(_drifting_system_prompt_run())
    assert not any(d.kind == "prefix-break" for d in m.diagnostics)
    assert any("prefix-stability analysis skipped on 1 run" in n for n in m.diagnostics_notes)
