"""``tokprof ingest FOLDER`` reads the trace files under the folder, as ``tokprof import FOLDER`` does.

Before: only ``*.jsonl`` run files were looked for under a named folder, so ``tokprof ingest
../shared/corpus`` (gzipped JSON traces) ingested nothing and said "ingested 0 files" with exit 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tokprof.cli import cli_warning, main
from tokprof.fleet.sources import expand_sources


def _ingest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:
    code = main(["ingest", *args, "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else {}), err


def test_a_folder_of_traces_is_ingested_like_the_files_named(corpus: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(f) for f in corpus.rglob("*") if f.is_file() and f.name != "README.md")
    code, by_folder, err = _ingest(capsys, str(corpus), "--ledger", str(tmp_path / "a.duckdb"))
    assert code == 0, err
    code, by_files, err = _ingest(capsys, *files, "--ledger", str(tmp_path / "b.duckdb"))
    assert code == 0, err
    # the corpus README names 10 trace files: 7 tau2, 1 tau1 (200 runs), 2 SWE-agent
    assert by_folder["files_ingested"] == by_files["files_ingested"] == len(files) == 10
    assert by_folder["runs"] == by_files["runs"] and by_folder["calls"] == by_files["calls"] > 0
    assert by_folder["errors"] == []
    # the same ledger file is read back by report --fleet and stats through --ledger (report had no --ledger)
    html = tmp_path / "fleet.html"
    assert main(["report", "--fleet", "--ledger", str(tmp_path / "a.duckdb"), "-o", str(html)]) == 0
    out = capsys.readouterr().out
    assert f"{by_folder['calls']:,} calls" in out
    assert "priced as paid with the provider's automatic caching simulated" in html.read_text()
    assert main(["stats", "--ledger", str(tmp_path / "a.duckdb")]) == 0
    assert "automatic prompt caching simulated" in " ".join(capsys.readouterr().out.split())  # wrapped at 80


def test_a_folder_with_no_trace_files_is_warned_about(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a trace")
    with pytest.warns(UserWarning, match="no run or trace files in this folder") as got:
        assert expand_sources([tmp_path / "empty"]) == []
    assert str(tmp_path / "empty") in str(got[0].message) and "*.json" in str(got[0].message)


def test_cli_warnings_are_one_line_without_python_source(tmp_path: Path) -> None:
    """An unpriced model in an ingested file warns as ``tokprof: warning: ...``: no Python file path and
    source line (the default warning format) on the user's terminal. A real CLI process: pytest's own
    warning capture would hide what the terminal shows."""
    line = {"request": {"model": "in-house-llm-7", "messages": [{"role": "user", "content": "hi"}]}}
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "c.jsonl").write_text(json.dumps(line) + "\n")
    out = subprocess.run([sys.executable, "-m", "tokprof.cli", "ingest", str(tmp_path / "t"), "--ledger",
                          str(tmp_path / "l.duckdb"), "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and json.loads(out.stdout)["calls"] == 1, out.stderr
    warned = [x for x in out.stderr.splitlines() if "in-house-llm-7" in x]
    assert warned and all(x.startswith("tokprof: warning: no price for model") for x in warned), out.stderr
    assert ".py:" not in out.stderr and "price = " not in out.stderr and "Traceback" not in out.stderr


def test_another_librarys_warning_says_its_kind() -> None:
    got = cli_warning(DeprecationWarning("old api"), DeprecationWarning, "/x/lib.py", 3, "code()")
    assert got == "tokprof: warning: DeprecationWarning: old api\n"
    got = cli_warning(UserWarning("tokprof: bad \x1b[31mname"), UserWarning, "/x/ours.py", 9)
    assert got == "tokprof: warning: bad [31mname\n"  # ours: no kind; the escape character removed


def test_a_bad_file_is_named_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t").mkdir()
    bad = tmp_path / "t" / "odd.json"
    bad.write_text('{"neither": "a run nor a known trace"}')
    code, doc, err = _ingest(capsys, str(tmp_path / "t"), "--ledger", str(tmp_path / "l.duckdb"))
    assert code in (0, 1)
    text = " ".join(doc.get("errors", [])) + err
    assert text.count(str(bad)) == 1, text
