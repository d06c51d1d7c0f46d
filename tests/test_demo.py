"""`tokprof demo` end to end: two real runs of the bundled agent, identical answers, measured savings, report."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from tokprof.profiler.store import load_run
from tokprof import demo
from tokprof.cli import main
from tokprof.demo import DEMO_LIVE_PASSES as DEFAULT_LIVE_PASSES  # the live passes the demo re-runs with


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> demo.DemoResult:
    out = tmp_path_factory.mktemp("demo")
    from tokprof.demo_checks import run_checks

    return demo.run_demo(out / "tokprof-report.html", directory=out / "runs", checks=run_checks)


def test_two_runs_saved_and_loadable(result: demo.DemoResult) -> None:
    assert result.optimized is not None
    assert result.baseline.run_id != result.optimized.run_id
    for run in (result.baseline, result.optimized):
        assert run.path is not None and run.path.exists()
        loaded = load_run(run.path)
        assert loaded.complete
        assert len(loaded.llm_spans()) == demo.MODEL_CALLS_PER_RUN
        assert loaded.tags["team"] == "support"
    assert result.baseline.tags["variant"] == "baseline"
    assert result.optimized.tags["variant"] == "optimized"


def test_final_answer_identical_and_correct(result: demo.DemoResult) -> None:
    assert result.baseline.metadata["final_answer"] == result.optimized.metadata["final_answer"] == result.answer
    lines = result.answer.splitlines()
    assert lines[0].startswith("[T-101] Hi Dana,") and "266.43 USD" in lines[0] and "O-20636" in lines[0]
    assert lines[1] == "[T-102] merged into T-101 (same e-mail sent twice)"
    assert lines[2].startswith("[T-103] Hi Marcus,") and "2025-03-11" in lines[2]


def test_live_passes_recorded_and_acted(result: demo.DemoResult) -> None:
    meta = result.optimized.metadata
    assert meta["live_passes"] == list(DEFAULT_LIVE_PASSES)
    stats = meta["live_stats"]
    assert stats["response-cache"]["hits"] == 1  # the duplicate e-mail's triage request
    assert stats["minify"]["chars_removed"] > 0
    # the agent no longer fetches anything twice (issue #16.6), so dedupe has nothing to remove
    assert "live_passes" not in result.baseline.metadata


def test_savings_are_measured_from_the_runs(result: demo.DemoResult) -> None:
    before, after = result.before, result.after
    assert after is not None
    # Recomputed from the recorded spans, not taken from the demo's own arithmetic.
    b_in = sum(s.llm.usage.input_tokens for s in result.baseline.llm_spans())
    a_in = sum(s.llm.usage.input_tokens for s in result.optimized.llm_spans())
    assert (before.input_tokens, after.input_tokens) == (b_in, a_in)
    assert after.input_tokens < 0.7 * before.input_tokens  # compression visibly cuts the prompts
    assert before.cache_read_tokens == 0 and after.cache_read_tokens > 0  # prompt-cache planning
    assert before.cost is not None and after.cost is not None and after.cost < before.cost
    every_span_provider = all(s.llm.usage.source("input_tokens") == "provider"
                              for r in (result.baseline, result.optimized) for s in r.llm_spans())
    assert every_span_provider
    h = result.headline()
    assert h["evidence"] == "measured" and h["answer_identical"] is True
    assert h["saved"]["input_tokens"] == before.input_tokens - after.input_tokens
    assert Decimal(h["saved"]["cost"]) == before.cost - after.cost


def test_baseline_profile_shape(result: demo.DemoResult) -> None:
    run = result.baseline
    # the oversized tool output: the order history is thousands of tokens, sent again on every later step
    tool_outputs = [m for s in run.llm_spans() for m in s.llm.messages if m.get("role") == "tool"]
    assert max(len(m["content"]) for m in tool_outputs) > 30_000
    # the growing history: each agent step's prompt is at least as long as the previous one's
    steps = [s for s in run.llm_spans() if s.llm.tools]
    assert len(steps) == 10  # 6 refund steps + 4 shipping steps
    refund_prompts = [s.llm.usage.input_tokens for s in steps[:6]]
    assert refund_prompts == sorted(refund_prompts) and refund_prompts[-1] > 5 * refund_prompts[0]
    # the agent is not built to repeat itself: no tool is called twice with the same arguments
    calls = [(tc["function"]["name"], tc["function"]["arguments"]) for s in steps
             for tc in (s.llm.output or {}).get("tool_calls") or []]
    assert len(calls) == len(set(calls))


def test_report_written(result: demo.DemoResult) -> None:
    path = result.report_path
    assert path is not None and path.exists()
    text = path.read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html")
    assert result.baseline.run_id in text or "demo" in text
    assert len(text) > 2000


def test_fallback_report_is_self_contained(result: demo.DemoResult, tmp_path: Path) -> None:
    text = demo.fallback_html(result)
    assert "measured" in text and "<script" not in text and "http" not in text.replace("http-equiv", "")
    assert result.baseline.run_id in text and result.optimized.run_id in text


def test_answer_mismatch_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = demo.run_agent

    def altered(**kwargs):  # noqa: ANN003, ANN202
        run, answer = real(**kwargs)
        return run, answer + (" (changed)" if kwargs.get("optimize") else "")

    monkeypatch.setattr(demo, "run_agent", altered)
    with pytest.raises(demo.AnswerMismatch, match="different final answer"):
        demo.run_demo(tmp_path / "r.html", directory=tmp_path / "runs")


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    assert main(["demo", "--json", "-o", str(out), "--dir", str(tmp_path / "runs")]) == 0
    h = json.loads(capsys.readouterr().out)
    assert h["answer_identical"] is True and h["report"] == str(out) and out.exists()
    assert h["optimized"]["total_tokens"] < h["baseline"]["total_tokens"]
    assert len(list((tmp_path / "runs").glob("*.jsonl"))) == 2


def test_cli_no_optimize(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--no-optimize", "--dir", str(tmp_path / "runs"), "-o", str(tmp_path / "r.html")]) == 0
    text = capsys.readouterr().out
    assert "llm calls 13" in text and "baseline run saved" in text
    assert not (tmp_path / "r.html").exists()
    assert len(list((tmp_path / "runs").glob("*.jsonl"))) == 1


def test_recorded_without_the_langchain_handler(monkeypatch: pytest.MonkeyPatch, result: demo.DemoResult) -> None:
    """With no LangChain integration attached, the demo records each model call itself (what the provider
    saw), so its numbers do not depend on the callback handler."""
    import functools

    from tokprof.profiler import profile

    monkeypatch.setattr(demo, "profile", functools.partial(profile, langchain=False))
    base, answer = demo.run_agent()
    opt, answer2 = demo.run_agent(optimize=list(DEFAULT_LIVE_PASSES))
    assert answer == answer2
    assert len(base.llm_spans()) == len(opt.llm_spans()) == demo.MODEL_CALLS_PER_RUN
    hits = [s for s in opt.llm_spans() if (s.attributes or {}).get("response_cache") == "hit"]
    assert len(hits) == 1 and hits[0].llm.usage.input_tokens == 0
    assert opt.total_usage().input_tokens < base.total_usage().input_tokens
    # the same numbers the LangChain handler recorded
    assert base.total_usage().input_tokens == result.before.input_tokens
    assert opt.total_usage().input_tokens == result.after.input_tokens
    assert all(s.llm.usage.source("input_tokens") == "provider" for s in base.llm_spans())


def test_honest_headline(result: demo.DemoResult) -> None:
    """Issue #16.6: the scripted re-run is labelled, each pass's own part is shown, and a lossy pass that
    changes the agent's action is caught by the fidelity check."""
    h = result.headline()
    assert h["evidence_note"] == "scripted model: tokens sent are measured; answers could not change"
    assert "no automatic caching" in h["baseline_caching"]
    parts = {c["pass"]: c for c in h["pass_contributions"]}
    assert set(parts) == set(DEFAULT_LIVE_PASSES)
    assert parts["minify"]["lossless"] is True and parts["minify"]["fidelity"] == 1.0
    assert parts["observation-mask"]["lossless"] is False
    # each pass alone is credited with its own change: the parts never exceed the baseline's cost
    total = sum(Decimal(c["saved"]) for c in parts.values())
    assert 0 < total <= result.before.cost
    lc = h["lossy_check"]
    assert lc["pass"] == "truncate-outputs" and lc["actions_changed"] >= 1 and lc["caught"] is True
    wrong = lc["changed"][0]
    assert "O-20636" in wrong["original"] and "O-20636" not in wrong["rewritten"]
    assert wrong["fidelity"] < 0.9 and "O-20636" in wrong["lost"]


def test_demo_cost_is_what_the_optimizer_calls_paid(result: demo.DemoResult) -> None:
    """Issue #16.1: the demo's baseline cost and the optimizer's baseline agree to the cent."""
    from tokprof.optimizers.paid import paid_bills

    assert round(paid_bills([result.baseline])[0].total.expected, 2) == round(result.before.cost, 2)


def test_cli_headline_label_is_printed_not_eaten_as_markup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue #19.6: the "[measured …]" label survives rich's markup parser."""
    assert main(["demo", "--dir", str(tmp_path / "runs"), "-o", str(tmp_path / "r.html")]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "[measured on a live re-run; scripted model: tokens sent are measured; answers could not change]" in text
