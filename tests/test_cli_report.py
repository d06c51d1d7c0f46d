"""CLI rough edges found by a new user (issue #19 point 6) and the renderer registry (issue #13 point 6)."""

from __future__ import annotations

import io
import json
import re
import shutil
import stat
from pathlib import Path

import pytest
from reports_samples import make_ledger, make_run
from tokprof.profiler import keys
from tokprof.profiler.model import LLMCall, Run, Span, Usage

from tokprof.cli import main

TRUNCATED_NUMBER = re.compile(r"\d…|…\d")


def _tau2(corpus: Path) -> Path:
    files = sorted((corpus / "tau2").glob("claude-sonnet-4-5*.json.gz"))
    if not files:
        pytest.fail("the τ²-bench claude-sonnet-4-5 file is missing from the corpus")
    return files[0]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert re.fullmatch(r"tokprof \S+\n", capsys.readouterr().out)


def test_optimize_passes_list_needs_no_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["optimize", "--passes", "list"]) == 0
    out = capsys.readouterr().out
    assert "prompt-cache" in out and "observation-mask" in out
    assert main(["optimize"]) == 2
    assert "give at least one RUN" in capsys.readouterr().err


def test_report_a_folder_and_passes_before_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    a, b = make_run(3, name="a"), make_run(4, name="b")
    a.save(folder)
    b.save(folder)
    assert main(["report", str(folder), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert sorted(r["name"] for r in doc["runs"]) == ["a", "b"]
    # `--passes default RUN`: RUN is a run, not a pass name
    path = next(folder.glob("*.jsonl"))
    assert main(["report", "--passes", "default", str(path), "--json", "--no-html"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["runs"]) == 1 and doc["headline"]["optimized"] and len(doc["waterfall"]) >= 3


def test_renderers_by_name_and_html_is_owner_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tokprof.reports.model import build_report
    from tokprof.reports.renderers import get_renderer, renderer_names

    m = build_report(make_run(3))
    assert renderer_names() == ["console", "html", "json"]
    for name, ext in (("html", ".html"), ("json", ".json"), ("console", ".txt")):
        r = get_renderer(name)
        assert r.name == name and r.file_extension == ext and isinstance(r.render(m), str)
    assert json.loads(get_renderer("json").render(m))["schema"] == "tokprof.report/1"
    with pytest.raises(KeyError, match="unknown report format 'pdf'"):
        get_renderer("pdf")
    p = make_run(3).save(tmp_path)
    out = tmp_path / "r.html"
    out.write_text("old")
    out.chmod(0o644)  # an existing, world-readable file is narrowed too
    assert main(["report", str(p), "-o", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    out2 = tmp_path / "r2.html"
    assert main(["report", str(p), "-o", str(out2), "--format", "html"]) == 0
    assert stat.S_IMODE(out2.stat().st_mode) == 0o600 and "<!DOCTYPE html>" in out2.read_text()


def test_renderers_do_not_import_each_other() -> None:
    import ast

    root = Path(__file__).resolve().parent.parent / "reports"
    for name in ("html", "json", "console"):
        tree = ast.parse((root / f"{name}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        others = {f"tokprof.reports.{o}" for o in ("html", "json", "console") if o != name}
        assert not imported & others, (name, imported & others)


def test_console_report_fits_80_columns(corpus: Path) -> None:
    from tokprof.profiler.interchange import import_file
    from tokprof.reports.model import build_optimized_report
    from tokprof.reports.renderers import get_renderer

    m = build_optimized_report(import_file(_tau2(corpus)).runs[:3], ["default"])
    text = get_renderer("console").render(m)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert not TRUNCATED_NUMBER.search(text), [line for line in lines if TRUNCATED_NUMBER.search(line)]
    assert text.lstrip().startswith("Top fixes")
    assert "savings waterfall" in text and "top spans" in text


def test_show_tree_80_columns_carried_and_own(tmp_path: Path) -> None:
    from rich.console import Console
    from tokprof.reports.console import render_tree, tree_rows

    from tokprof.demo import run_agent

    run, _ = run_agent(save=False)
    for view in ("carried", "own"):
        buf = io.StringIO()
        render_tree(run, console=Console(file=buf, width=80, no_color=True), view=view)
        text = buf.getvalue()
        assert max(len(line) for line in text.splitlines()) <= 80
        assert not TRUNCATED_NUMBER.search(text)
    assert "resolve_ticket → claude-sonnet-4-5" in text  # LLM spans named by their caller
    rows = tree_rows(run)
    hist = [r for r in rows if r["name"] == "get_order_history"]
    llm = [r for r in rows if r["kind"] == "llm"]
    carried_hist = sum(float(r["carried"]["cost"]) for r in hist)
    assert carried_hist > max(float(r["carried"]["cost"]) for r in llm)


def test_ls_shows_model_and_source_of_imported_runs(tmp_path: Path, corpus: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bench-results.json.gz"
    shutil.copy(_tau2(corpus), src)
    runs = tmp_path / "runs"
    assert main(["import", str(src), "--out", str(runs)]) == 0
    assert "saved to" in capsys.readouterr().out
    assert main(["ls", "--dir", str(runs), "--json", "-n", "2"]) == 0
    rows = json.loads(capsys.readouterr().out)["runs"]
    assert rows[0]["source"] == "tau2" and rows[0]["source_file"] == "bench-results.json.gz"
    assert "claude-sonnet-4-5" in rows[0]["models"]
    assert main(["ls", "--dir", str(runs), "-n", "2"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the name column wraps at 80 columns
    assert "claude-sonnet-4-5" in out and "tau2: bench-results.json.gz" in out


def test_import_of_nothing_does_not_say_saved(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "odd.jsonl"
    bad.write_text('{"foo": 1}\n')
    assert main(["import", str(bad), "--out", str(tmp_path / "runs")]) == 1
    out = capsys.readouterr().out
    assert "saved to" not in out and "nothing imported" in out


def test_show_on_a_foreign_trace_points_to_import_and_report(tmp_path: Path, corpus: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.json.gz"
    shutil.copy(_tau2(corpus), src)
    assert main(["show", str(src)]) == 1
    err = capsys.readouterr().err
    assert "tau2 trace, not a tokprof run file" in err and "tokprof import" in err and "tokprof report" in err


def _one_call(name: str, user: str, tokens: int, task: str | None = None) -> Run:
    r = Run(name=name, tags={"task": task} if task else {})
    r.spans.append(Span("s", None, r.run_id, "llm", "gpt-4.1", 0, 0, end_ns=10, llm=LLMCall(
        provider="openai", model="gpt-4.1", messages=[{"role": "user", "content": user}],
        usage=Usage.from_provider(input_tokens=tokens, output_tokens=5))))
    return r


def test_compare_of_different_tasks_warns_and_is_not_measured(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    a = _one_call("a", "refund order 42", 1000).save(tmp_path)
    b = _one_call("b", "track order 7", 400).save(tmp_path)
    same = _one_call("c", "refund order 42", 600).save(tmp_path)
    assert main(["compare", str(a), str(b), "--json", "--no-html"]) == 0
    cap = capsys.readouterr()
    assert "not the same task" in cap.err
    doc = json.loads(cap.out)
    assert doc["waterfall"] and all(s["evidence"] != "measured" for s in doc["waterfall"])
    assert any("not the same task" in n for n in doc["notes"])
    assert main(["compare", str(a), str(same), "--json", "--no-html"]) == 0
    cap = capsys.readouterr()
    assert "not the same task" not in cap.err
    assert [s["evidence"] for s in json.loads(cap.out)["waterfall"]] == ["measured"]


def test_live_runs_show_each_pass() -> None:
    from tokprof.reports.model import build_comparison

    before = make_run(4)
    after, _ = make_ledger(before)
    after.metadata["live_passes"] = ["minify", "observation-mask"]
    removed = 0
    for k, s in enumerate(after.llm_spans()):
        s.attributes = dict(s.attributes or {})
        s.attributes[keys.LIVE_DELTAS] = {
            "minify": {"input_tokens_before": 1000, "input_tokens_after": 900},
            "observation-mask": {"input_tokens_before": 900, "input_tokens_after": 900 - 50 * k}}
        removed += 100 + 50 * k
    m = build_comparison(before, after)
    names = [s.pass_name for s in m.waterfall]
    assert names[:2] == ["live: minify", "live: observation-mask"]
    assert m.waterfall[0].delta_tokens == 400 and m.waterfall[1].delta_tokens == 50 * (0 + 1 + 2 + 3)
    assert all(s.evidence == "measured" for s in m.waterfall)
    # the steps plus "other differences" add up to the measured difference
    assert sum(s.delta_tokens for s in m.waterfall) == m.headline.tokens_before - m.headline.tokens_after


def test_live_runs_show_each_pass_from_the_live_layers_records() -> None:
    """Issue #19.3 end to end: the live layer's own per-request records (keys.LIVE_DELTAS) give one
    waterfall step per live pass that changed tokens, and the steps add up to the measured difference."""
    from tokprof.demo import run_agent
    from tokprof.reports.model import build_comparison

    before, _ = run_agent(save=False, name="live-before")
    after, _ = run_agent(save=False, name="live-after", optimize=["minify", "dedupe", "observation-mask"])
    assert any(keys.LIVE_DELTAS in (s.attributes or {}) for s in after.llm_spans())
    m = build_comparison([before], [after])
    live_steps = [s for s in m.waterfall if s.pass_name.startswith("live: ")]
    assert live_steps, [s.pass_name for s in m.waterfall]
    assert all(s.evidence == "measured" for s in live_steps)
    assert sum(s.delta_tokens for s in m.waterfall) == m.headline.tokens_before - m.headline.tokens_after


def test_show_currency_converts_the_tree_and_json(tmp_path: Path) -> None:
    """Issue #19.6: `show --currency CNY` converts every number: header, tree rows and --json."""
    import json as _json
    import subprocess
    import sys
    from decimal import Decimal

    from tokprof.demo import run_agent
    from tokprof.profiler.providers.prices import exchange_rate
    from tokprof.reports.console import tree_rows

    run, _ = run_agent(save=tmp_path, name="cur")
    usd = tree_rows(run, 2, 0, "USD")[0]["incl"]["cost"]
    cny = tree_rows(run, 2, 0, "CNY")[0]["incl"]["cost"]
    assert abs(Decimal(str(cny)) - Decimal(str(usd)) * exchange_rate()) < Decimal("0.000001")
    env = {**__import__("os").environ, "TOKPROF_DIR": str(tmp_path), "COLUMNS": "80"}
    text = subprocess.run([sys.executable, "-m", "tokprof.cli", "show", "--currency", "CNY"], env=env,
                          capture_output=True, text=True, timeout=120).stdout
    assert "¥" in text and "$" not in text
    doc = _json.loads(subprocess.run([sys.executable, "-m", "tokprof.cli", "show", "--currency", "CNY", "--json"],
                                     env=env, capture_output=True, text=True, timeout=120).stdout)
    assert "CNY" in _json.dumps(doc) and "USD" not in _json.dumps(doc)
