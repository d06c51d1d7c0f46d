"""Text holding a lone surrogate (JSON allows ``"\\ud800"``; Arrow and DuckDB want valid UTF-8) in a run
file: the ingest keeps every file and stores the text with the surrogate escaped, instead of failing the
whole ingest on one character."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokprof.cli import main
from tokprof.profiler.model import LLMCall, Run, Span, Usage
from tokprof.profiler.store import save_run


def _run(run_id: str, text: str, model: str = "gpt-4o", tag: str = "payments") -> Run:
    run = Run(name="n" + text, run_id=run_id, tags={"team": tag})
    u = Usage.from_provider(input_tokens=1000, output_tokens=100)
    run.spans.append(Span("s1", None, run_id, "llm", "chat" + text, 1, 1_764_000_000_000_000_000, end_ns=2,
                          llm=LLMCall(provider="openai", model=model, usage=u,
                                      messages=[{"role": "user", "content": "a" + text + "b"}],
                                      output={"role": "assistant", "content": "x" + text})))
    return run


def test_lone_surrogates_anywhere_are_stored_escaped_and_nothing_is_lost(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    save_run(_run("r-clean", ""), runs)
    save_run(_run("r-sur", "\ud800", model="gpt-4o", tag="v\udfff"), runs)
    ledger = tmp_path / "ledger.duckdb"
    assert main(["ingest", str(runs), "--ledger", str(ledger), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["calls"] == 2 and not rep.get("errors")
    assert main(["stats", "--by", "tag:team", "--ledger", str(ledger), "--json"]) == 0
    rows = {r["group"]["tag:team"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert set(rows) == {"payments", "v\\udfff"}  # the surrogate kept as its escape, not dropped
    # gpt-4o: 1000 x $2.50/1M + 100 x $10/1M = $0.0035 for each call, the surrogate one included
    assert all(r["cost"] == "0.0035" or float(r["cost"]) == pytest.approx(0.0035) for r in rows.values())
    import duckdb

    con = duckdb.connect(str(ledger), read_only=True)
    contents = [c for (c,) in con.execute("SELECT content FROM messages").fetchall()]
    con.close()
    assert any("a\\ud800b" in c for c in contents) and any('"ab"' in c for c in contents)
